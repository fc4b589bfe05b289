"""dilution: statistical physics of diluted (masked, pruned, rewired) Restricted Boltzmann Machines."""

from __future__ import annotations

from . import ais, connectivity, data, estimators, exact, io, pruning, pruning_rules, schedules, tempering
from .gibbs import sample
from .io import load, save
from .model import RBM
from .training import TrainConfig, TrainState, train
from .version import __version__

__all__ = [
    "RBM",
    "TrainConfig",
    "TrainState",
    "ais",
    "connectivity",
    "data",
    "estimators",
    "exact",
    "io",
    "load",
    "pruning",
    "pruning_rules",
    "sample",
    "save",
    "schedules",
    "tempering",
    "train",
    "__version__",
]
