"""dilution: statistical physics of diluted (masked, pruned, rewired) Restricted Boltzmann Machines."""

from __future__ import annotations

from . import connectivity, data, exact, io
from .gibbs import sample
from .io import load, save
from .model import RBM
from .training import TrainConfig, train

__version__ = "0.1.0"

__all__ = ["RBM", "TrainConfig", "connectivity", "data", "exact", "io", "load", "sample", "save", "train", "__version__"]
