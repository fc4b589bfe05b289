"""dilution: statistical physics of diluted (masked, pruned, rewired) Restricted Boltzmann Machines."""

from __future__ import annotations

from . import exact
from .gibbs import sample
from .model import RBM

__version__ = "0.1.0"

__all__ = ["RBM", "exact", "sample", "__version__"]
