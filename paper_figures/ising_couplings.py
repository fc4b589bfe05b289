"""Effective Ising couplings of a dense and a pruned model: their distribution and their network.

Input: ``ising.nc``: :func:`analysis.ising.ising_parameters` of several models stacked over
``model`` (labels such as ``"dense"``, ``"pruned 0.8"``), i.e. ``coupling`` of dims (``model``,
``visible``, ``visible_2``), symmetric with a zero diagonal. First panel: the number of pairs
j < k per bin of J_jk (shared bins, log count), one step line per model. Then one panel per
model: the :data:`TOP` strongest non-zero couplings by |J| drawn as segments between the two pixels on
the image grid (shape from the attr ``image_shape``, else square, else one row), blue for J > 0
and vermillion for J < 0, width proportional to |J| over the largest |J| of all models.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from .schema import Schema
from .schema import load as load_checked
from .style import PALETTE, axis_label, colour, new_figure

__all__ = ["COUPLINGS", "TOP", "BINS", "load", "pair_values", "strongest", "positions", "draw"]

TOP = 60
BINS = 40
COUPLINGS = Schema(variables={"coupling": ("model", "visible", "visible_2")},
                   description="effective couplings of several models (analysis.ising.ising_parameters, stacked)")


def load(path: Path) -> tuple[xr.Dataset]:
    return (load_checked(path, COUPLINGS),)


def pair_values(coupling: np.ndarray) -> np.ndarray:
    """J_jk over pairs j < k (row-major upper triangle), shape (n (n - 1) / 2,)."""
    return coupling[np.triu_indices(coupling.shape[0], 1)]


def strongest(coupling: np.ndarray, top: int = TOP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(j, k, J_jk) of the ``top`` pairs j < k with the largest non-zero |J|, strongest first (ties by
    pair order); pairs without a coupling (no shared hidden unit) are never drawn."""
    j, k = np.triu_indices(coupling.shape[0], 1)
    values = coupling[j, k]
    nonzero = np.flatnonzero(values != 0)
    order = nonzero[np.argsort(-np.abs(values[nonzero]), kind="stable")][:top]
    return j[order], k[order], values[order]


def positions(ds: xr.Dataset) -> np.ndarray:
    """(x, y) of each visible unit on the image grid, row-major, row 0 at the top; shape (n_visible, 2)."""
    n = ds.sizes["visible"]
    shape = ds["coupling"].attrs.get("image_shape", ds.attrs.get("image_shape"))
    if shape is not None:
        rows, cols = (int(s) for s in np.ravel(shape))
        if rows * cols != n:
            raise ValueError(f"image_shape {rows}x{cols} does not hold the {n} visible units of the couplings file")
    else:
        side = math.isqrt(n)
        rows, cols = (side, side) if side * side == n else (1, n)
    index = np.arange(n)
    return np.stack([index % cols, rows - 1 - index // cols], axis=1).astype(float)


def draw(ds: xr.Dataset) -> Figure:
    """The figure: axes[0] the histograms (one step line per model, in order), then one network per model."""
    coupling = ds["coupling"].transpose("model", "visible", "visible_2")
    models = [str(m) for m in ds["model"].values]
    values = [pair_values(c) for c in coupling.values]
    fig, axes = new_figure(2, ncols=len(models) + 1, aspect=1.0)
    edges = np.histogram_bin_edges(np.concatenate(values), bins=BINS)
    hist_ax = axes.flat[0]
    for k, (model, v) in enumerate(zip(models, values)):
        counts, _ = np.histogram(v, bins=edges)
        hist_ax.stairs(counts, edges, color=colour(k), label=model, linewidth=1.2)
    hist_ax.set_yscale("log")
    hist_ax.set_xlabel(textwrap.fill(axis_label(ds["coupling"]), 36))  # a long_name wider than one panel
    hist_ax.set_ylabel("pairs j < k (1)")
    hist_ax.legend(loc="upper right")
    xy = positions(ds)
    largest = max(float(np.abs(v).max()) for v in values) or 1.0
    for ax, model, c in zip(axes.flat[1:], models, coupling.values):
        j, k, J = strongest(c)
        segments = np.stack([xy[j], xy[k]], axis=1)
        lines = LineCollection(segments, colors=[PALETTE[0] if x > 0 else PALETTE[3] for x in J],
                               linewidths=0.3 + 2.0 * np.abs(J) / largest)
        ax.add_collection(lines)
        ax.scatter(xy[:, 0], xy[:, 1], s=2, color="grey", linewidths=0)
        ax.set_title(f"{model}: {len(J)} strongest |J|")
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
    return fig
