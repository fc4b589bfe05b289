"""Marginal inclusion probabilities P(M_ij = 1), one map per method, side by side.

Input: ``stationary-inclusion.nc``: :func:`analysis.stationary.inclusion_probabilities` results
stacked over ``method``, i.e. ``inclusion`` of dims (``method``, ``visible``, ``hidden``), ``method``
e.g. ``"deep-r"``, ``"soft-deep-r"``, ``"ncg"``. The reference posterior is either a ``method``
named ``"reference"`` or the variable ``reference`` (``visible``, ``hidden``, and possibly
``method``: the same map repeated, the first is drawn). The reference is drawn first. One colour
scale from 0 to 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .schema import Schema
from .schema import load as load_checked
from .style import SEQUENTIAL, axis_label, new_figure

__all__ = ["INCLUSION", "load", "panels", "draw"]

INCLUSION = Schema(variables={"inclusion": ("method", "visible", "hidden")},
                   description="inclusion probabilities per method (analysis.stationary.inclusion_probabilities)")


def load(path: Path) -> tuple[xr.Dataset]:
    return (load_checked(path, INCLUSION),)


def panels(ds: xr.Dataset) -> list[tuple[str, np.ndarray]]:
    """(title, map of shape (visible, hidden)) in drawing order: the reference first."""
    inclusion = ds["inclusion"].transpose("method", "visible", "hidden")
    methods = [str(m) for m in ds["method"].values]
    out = [(m, inclusion.values[i]) for i, m in enumerate(methods)]
    if "reference" not in methods and "reference" in ds:
        ref = ds["reference"]
        ref = ref.isel(method=0) if "method" in ref.dims else ref
        out.append(("reference", ref.transpose("visible", "hidden").values))
    return sorted(out, key=lambda item: item[0] != "reference")


def draw(ds: xr.Dataset) -> Figure:
    """The figure: panel i shows panels(ds)[i]'s map, rows = visible, columns = hidden units."""
    maps = panels(ds)
    fig, axes = new_figure(2, ncols=len(maps), aspect=1.4)
    image = None
    for ax, (title, probabilities) in zip(axes.flat, maps):
        image = ax.imshow(probabilities, cmap=SEQUENTIAL, vmin=0, vmax=1, interpolation="nearest", aspect="auto")
        ax.set_title(title)
        ax.set_xticks(range(ds.sizes["hidden"]))
        ax.set_yticks(range(ds.sizes["visible"]))
        ax.set_xlabel(axis_label(ds["hidden"]))
    axes.flat[0].set_ylabel(axis_label(ds["visible"]))
    bar = fig.colorbar(image, ax=list(axes.flat), shrink=0.8)
    bar.set_label(axis_label(ds["inclusion"]))
    return fig
