"""Divergence of a rewiring algorithm's mask law from the reference posterior against steps.

Input: ``stationary-divergence.nc`` with ``divergence``, ``divergence_lower`` and
``divergence_upper`` of dims (``estimator``, ``steps``), ``estimator`` the gradient estimator
(e.g. ``"exact"``, ``"cd-1"``, ``"cd-10"``, ``"pcd"``); optionally ``divergence_floor`` (dims
``estimator`` and/or ``steps``), the noise floor set by the effective sample size. Log-log axes,
one line per estimator with its confidence band, the floor dotted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .schema import Schema
from .schema import load as load_checked
from .style import axis_label, band, colour, new_figure

__all__ = ["DIVERGENCE", "load", "draw"]

_DIMS = ("estimator", "steps")
DIVERGENCE = Schema(variables={k: _DIMS for k in ("divergence", "divergence_lower", "divergence_upper")},
                    optional={"divergence_floor": ("estimator",)},
                    description="divergence from the reference against steps per gradient estimator")


def load(path: Path) -> tuple[xr.Dataset]:
    return (load_checked(path, DIVERGENCE),)


def draw(ds: xr.Dataset) -> Figure:
    """The figure: the first len(estimator) lines are the divergences, in the file's order."""
    fig, axes = new_figure(1, aspect=0.9)
    ax = axes[0, 0]
    steps = ds["steps"].values
    for k, est in enumerate(ds["estimator"].values):
        row = ds.sel(estimator=est)
        ax.plot(steps, row["divergence"].values, marker="o", color=colour(k), label=str(est))
        band(ax, steps, row["divergence_lower"].values, row["divergence_upper"].values, colour(k))
    if "divergence_floor" in ds:
        for k, est in enumerate(ds["estimator"].values):
            floor = np.broadcast_to(ds["divergence_floor"].sel(estimator=est).values, steps.shape)
            ax.plot(steps, floor, linestyle=":", color=colour(k), linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(axis_label(ds["steps"]))
    ax.set_ylabel(axis_label(ds["divergence"]))
    ax.legend(loc="best", title="gradient", title_fontsize=7)
    return fig
