"""dilution: statistical physics of diluted (masked, pruned, rewired) Restricted Boltzmann Machines."""

from __future__ import annotations

from . import ais, connectivity, data, exact, io, schedules, tempering
from .gibbs import sample
from .io import load, save
from .model import RBM
from .training import TrainConfig, train
from .version import __version__

__all__ = [
    "RBM",
    "TrainConfig",
    "ais",
    "connectivity",
    "data",
    "exact",
    "io",
    "load",
    "sample",
    "save",
    "schedules",
    "tempering",
    "train",
    "__version__",
]
