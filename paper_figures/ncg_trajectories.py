"""NCG's density and NLL against epochs, this toolkit's implementation beside the reference code's.

Input: ``rewiring-ncg.nc`` with ``density`` and ``nll`` of dims (``implementation``,
``initial_density``, ``seed``, ``epoch``), as ``studies.rewiring.ncg_trajectories`` writes it;
``implementation`` holds :data:`TOOLKIT` (this toolkit's NCG) and references: the authors' C++
code's runs, or ``"reference-quirks"`` (this toolkit with the reference code's quirks). One
colour per initial density, solid for this toolkit and dashed for every reference; lines are
seed means with Student-t bands over seeds. The epoch axis is symmetric-log so that epoch 0 is
drawn.
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr
from matplotlib.figure import Figure

from .intervals import seed_interval
from .schema import Schema
from .schema import load as load_checked
from .style import axis_label, band, colour, new_figure

__all__ = ["TRAJECTORIES", "TOOLKIT", "load", "draw"]

TOOLKIT = "dilution"
_DIMS = ("implementation", "initial_density", "seed", "epoch")
TRAJECTORIES = Schema(variables={"density": _DIMS, "nll": _DIMS},
                      description="NCG trajectories of this toolkit and of the reference code")


def load(path: Path) -> tuple[xr.Dataset]:
    return (load_checked(path, TRAJECTORIES),)


def draw(ds: xr.Dataset) -> Figure:
    """The figure: axes[0, 0] density, axes[0, 1] NLL; lines in order (implementation, initial density)."""
    fig, axes = new_figure(2, ncols=2, aspect=0.9, sharex=True)
    epochs = ds["epoch"].values
    for ax, name in zip(axes[0], ("density", "nll")):
        for impl in ds["implementation"].values:
            for k, p in enumerate(ds["initial_density"].values):
                s = seed_interval(ds[name].sel(implementation=impl, initial_density=p))
                c = colour(k)
                ax.plot(epochs, s["mean"].values, color=c, linestyle="-" if impl == TOOLKIT else "--",
                        label=f"{impl}, p = {p:g}")
                band(ax, epochs, s["lower"].values, s["upper"].values, c)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel(axis_label(ds["epoch"]))
        ax.set_ylabel(axis_label(ds[name]))
    axes[0, 1].legend(loc="best", ncols=2)
    return fig
