"""Divergence of a rewiring algorithm's mask law from the reference posterior against run length.

Input: ``stationary-divergence.nc``: :func:`analysis.stationary.mask_divergence` results stacked
over ``estimator`` (the gradient estimator: ``"exact"``, ``"cd-1"``, ``"cd-10"``, ``"pcd"``, ...)
and ``steps`` (the run length in updates). ``total_variation`` is required; ``kl_reference_estimate``
and ``kl_estimate_reference`` are drawn when present, one panel per divergence. For each divergence
``<name>``: optional ``<name>_lower`` / ``<name>_upper`` (a confidence band), ``<name>_floor`` (the
noise floor from the effective sample size, dotted) and ``<name>_floor_upper`` (the floor's upper
quantile, a grey band from the floor up to it): a divergence inside that band is noise. Log-log axes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .schema import Schema
from .schema import load as load_checked
from .style import axis_label, band, colour, new_figure

__all__ = ["DIVERGENCES", "DIVERGENCE", "load", "draw"]

DIVERGENCES = ("kl_reference_estimate", "kl_estimate_reference", "total_variation")
_DIMS = ("estimator", "steps")
DIVERGENCE = Schema(variables={"total_variation": _DIMS},
                    optional={f"{name}{suffix}": _DIMS for name in DIVERGENCES
                              for suffix in ("", "_lower", "_upper")},
                    description="mask divergences from the reference against steps per gradient estimator "
                                "(analysis.stationary.mask_divergence, stacked)")


def load(path: Path) -> tuple[xr.Dataset]:
    return (load_checked(path, DIVERGENCE),)


def draw(ds: xr.Dataset) -> Figure:
    """The figure: one panel per divergence present (in :data:`DIVERGENCES` order); in each, the
    estimators' lines in the file's order, then their dotted floors (in the same order)."""
    names = [n for n in DIVERGENCES if n in ds]
    fig, axes = new_figure(2 if len(names) > 1 else 1, ncols=len(names), aspect=1.2 if len(names) > 1 else 0.9)
    steps = ds["steps"].values
    for ax, name in zip(axes.flat, names):
        for k, est in enumerate(ds["estimator"].values):
            row = ds.sel(estimator=est)
            ax.plot(steps, row[name].values, marker="o", color=colour(k), label=str(est))
            if f"{name}_lower" in ds and f"{name}_upper" in ds:
                band(ax, steps, row[f"{name}_lower"].values, row[f"{name}_upper"].values, colour(k))
        if f"{name}_floor" in ds:
            for k, est in enumerate(ds["estimator"].values):
                floor = np.broadcast_to(ds[f"{name}_floor"].sel(estimator=est).values, steps.shape)
                ax.plot(steps, floor, linestyle=":", color=colour(k), linewidth=0.8,
                        label="noise floor (dotted; grey: its upper quantile)" if k == 0 else "_nolegend_")
                if f"{name}_floor_upper" in ds:
                    upper = np.broadcast_to(ds[f"{name}_floor_upper"].sel(estimator=est).values, steps.shape)
                    ax.fill_between(steps, floor, upper, color="grey", alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(axis_label(ds["steps"]))
        ax.set_ylabel(textwrap.fill(axis_label(ds[name]), 30))  # three panels: a long label would be cut
    axes.flat[0].legend(loc="best", title="gradient", title_fontsize=7)
    return fig
