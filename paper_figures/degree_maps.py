"""Degree maps: how many hidden units each visible unit keeps, drawn on the image grid.

Input: a masks file (``masks.nc``) with ``mask`` of dims (``pruning_fraction``, ``visible``,
``hidden``), True where a connection survives; any other dims (protocol, seed, ...) are taken at
their first value and named in the title. The image shape is the attr ``image_shape`` of
``mask`` or of the file, else the square of side sqrt(n_visible), else one row. One panel per
pruning fraction, one colour scale from 0 to n_hidden.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .schema import Schema
from .schema import load as load_checked
from .style import SEQUENTIAL, new_figure

__all__ = ["MASKS", "load", "image_shape", "degrees", "draw"]

MASKS = Schema(variables={"mask": ("pruning_fraction", "visible", "hidden")},
               description="surviving connections per pruning fraction")


def load(masks: Path) -> tuple[xr.Dataset]:
    return (load_checked(masks, MASKS),)


def image_shape(ds: xr.Dataset) -> tuple[int, int]:
    """(rows, columns) of the visible units (see the module docstring)."""
    n = ds.sizes["visible"]
    shape = ds["mask"].attrs.get("image_shape", ds.attrs.get("image_shape"))
    if shape is not None:
        rows, cols = (int(s) for s in np.ravel(shape))
        if rows * cols != n:
            raise ValueError(f"image_shape {rows}x{cols} does not hold the {n} visible units of the masks file")
        return rows, cols
    side = math.isqrt(n)
    return (side, side) if side * side == n else (1, n)


def degrees(ds: xr.Dataset) -> tuple[xr.DataArray, dict]:
    """Visible degrees, dims (pruning_fraction, visible), and the first values taken of the other dims."""
    mask = ds["mask"]
    others = {d: mask[d].values[0] if d in mask.coords else 0 for d in mask.dims
              if d not in ("pruning_fraction", "visible", "hidden")}
    return mask.isel({d: 0 for d in others}).astype(int).sum("hidden"), others


def draw(ds: xr.Dataset) -> Figure:
    """The figure; panel i's image is fraction i's visible degrees in image layout."""
    degree, others = degrees(ds)
    rows, cols = image_shape(ds)
    fractions = degree["pruning_fraction"].values
    fig, axes = new_figure(2, ncols=len(fractions), aspect=1.0 * rows / cols + 0.2)
    image = None
    for ax, f in zip(axes.flat, fractions):
        image = ax.imshow(degree.sel(pruning_fraction=f).values.reshape(rows, cols), cmap=SEQUENTIAL, vmin=0,
                          vmax=ds.sizes["hidden"], interpolation="nearest")
        ax.set_title(f"fraction {f:g}")
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(image, ax=list(axes.flat), shrink=0.8)
    bar.set_label("hidden units connected (1)")
    if others:
        fig.suptitle(", ".join(f"{k} = {v}" for k, v in others.items()), fontsize=8)
    return fig
