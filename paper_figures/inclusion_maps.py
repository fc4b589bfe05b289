"""Marginal inclusion probabilities P(M_ij = 1), one map per method, side by side.

Input: ``stationary-inclusion.nc`` with ``inclusion`` of dims (``method``, ``visible``,
``hidden``), ``method`` e.g. ``"reference"``, ``"deep-r"``, ``"soft-deep-r"``, ``"ncg"``; the
reference is drawn first. One colour scale from 0 to 1.
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr
from matplotlib.figure import Figure

from .schema import Schema
from .schema import load as load_checked
from .style import SEQUENTIAL, axis_label, new_figure

__all__ = ["INCLUSION", "load", "method_order", "draw"]

INCLUSION = Schema(variables={"inclusion": ("method", "visible", "hidden")},
                   description="inclusion probabilities per method (analysis.stationary.inclusion_probabilities)")


def load(path: Path) -> tuple[xr.Dataset]:
    return (load_checked(path, INCLUSION),)


def method_order(ds: xr.Dataset) -> list[str]:
    methods = [str(m) for m in ds["method"].values]
    return sorted(methods, key=lambda m: m != "reference")


def draw(ds: xr.Dataset) -> Figure:
    """The figure: panel i shows method_order(ds)[i]'s map, rows = visible, columns = hidden units."""
    methods = method_order(ds)
    fig, axes = new_figure(2, ncols=len(methods), aspect=0.9)
    image = None
    for ax, method in zip(axes.flat, methods):
        probabilities = ds["inclusion"].sel({"method": method}).transpose("visible", "hidden").values
        image = ax.imshow(probabilities, cmap=SEQUENTIAL, vmin=0, vmax=1, interpolation="nearest", aspect="auto")
        ax.set_title(method)
        ax.set_xticks(range(ds.sizes["hidden"]))
        ax.set_yticks(range(ds.sizes["visible"]))
        ax.set_xlabel(axis_label(ds["hidden"]))
    axes.flat[0].set_ylabel(axis_label(ds["visible"]))
    bar = fig.colorbar(image, ax=list(axes.flat), shrink=0.8)
    bar.set_label(axis_label(ds["inclusion"]))
    return fig
