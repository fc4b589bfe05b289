"""dilution: statistical physics of diluted (masked, pruned, rewired) Restricted Boltzmann Machines.

The names below are imported on first use (PEP 562): ``import dilution`` (and so the
``dilution`` command's start-up, and its Ctrl-C handling) does not wait for numba and the
kernels until something needs them.
"""

from __future__ import annotations

import importlib

# typing's import takes 10-30 ms, all of it in the window before the dilution command installs its
# quiet Ctrl-C handler (its annotations are strings here: `from __future__ import annotations`)
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from . import ais, connectivity, data, estimators, exact, io, pruning, pruning_rules, schedules, tempering
    from .gibbs import sample
    from .io import load, save
    from .model import RBM
    from .training import TrainConfig, TrainState, train

_SUBMODULES = {
    "ais", "connectivity", "data", "estimators", "exact", "io", "pruning", "pruning_rules", "schedules", "tempering",
}
_NAMES = {
    "sample": "gibbs",
    "load": "io",
    "save": "io",
    "RBM": "model",
    "TrainConfig": "training",
    "TrainState": "training",
    "train": "training",
}

__all__ = sorted(_SUBMODULES | set(_NAMES) | {"__version__"})


def __getattr__(name: str) -> Any:
    if name == "__version__":
        # lazy as well: reading the distribution's metadata takes 25 ms, in the window before the
        # dilution command installs its quiet Ctrl-C handler
        from .version import __version__

        return __version__
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'dilution' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
