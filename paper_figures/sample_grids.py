"""Samples of the trained models across pruning fractions: one tile grid per fraction.

Input: ``samples.nc``: the ``samples`` of ``dilution sample`` (final visible states, dims
``sample``, ``visible``) of one model per pruning fraction, stacked over ``pruning_fraction``,
i.e. ``samples`` of dims (``pruning_fraction``, ``sample``, ``visible``); any other dims are
taken at their first value and named in the title. The image shape is the attr ``image_shape``
of the variable or of the file, else the square of side sqrt(n_visible), else one row. Each panel
tiles the first :data:`TILES` samples (rows x columns), one grey pixel between tiles; 1 is black.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .schema import Schema
from .schema import load as load_checked
from .style import fraction_panels_title, new_figure

__all__ = ["SAMPLES", "TILES", "load", "image_shape", "tile", "draw"]

TILES = (4, 4)
# grey gaps: white would read as pixels that are off
_CMAP = matplotlib.colormaps["gray_r"].with_extremes(bad="#b0b0b0")
SAMPLES = Schema(variables={"samples": ("pruning_fraction", "sample", "visible")},
                 description="model samples per pruning fraction (dilution sample, stacked)")


def load(path: Path) -> tuple[xr.Dataset]:
    return (load_checked(path, SAMPLES),)


def image_shape(ds: xr.Dataset) -> tuple[int, int]:
    """(rows, columns) of one sample's image (see the module docstring)."""
    n = ds.sizes["visible"]
    shape = ds["samples"].attrs.get("image_shape", ds.attrs.get("image_shape"))
    if shape is not None:
        rows, cols = (int(s) for s in np.ravel(shape))
        if rows * cols != n:
            raise ValueError(f"image_shape {rows}x{cols} does not hold the {n} visible units of the samples file")
        return rows, cols
    side = math.isqrt(n)
    return (side, side) if side * side == n else (1, n)


def tile(samples: np.ndarray, shape: tuple[int, int], grid: tuple[int, int] = TILES) -> np.ndarray:
    """Samples of shape (n, visible) as one image of ``grid`` tiles, NaN in the gaps and empty tiles.

    Returns
    -------
    ndarray, shape (grid[0] * (rows + 1) - 1, grid[1] * (cols + 1) - 1)
    """
    rows, cols = shape
    out = np.full((grid[0] * (rows + 1) - 1, grid[1] * (cols + 1) - 1), np.nan)
    for i, s in enumerate(samples[: grid[0] * grid[1]]):
        r, c = divmod(i, grid[1])
        out[r * (rows + 1): r * (rows + 1) + rows, c * (cols + 1): c * (cols + 1) + cols] = s.reshape(rows, cols)
    return out


def draw(ds: xr.Dataset) -> Figure:
    """The figure: panel i holds :func:`tile` of fraction i's samples."""
    samples = ds["samples"]
    others = {d: 0 for d in samples.dims if d not in ("pruning_fraction", "sample", "visible")}
    samples = samples.isel(others).transpose("pruning_fraction", "sample", "visible")
    fractions = samples["pruning_fraction"].values
    shape = image_shape(ds)
    fig, axes = new_figure(2, ncols=len(fractions), aspect=1.0)
    for ax, f, block in zip(axes.flat, fractions, samples.values.astype(float)):
        ax.imshow(np.ma.masked_invalid(tile(block, shape)), cmap=_CMAP, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"f = {f:g}")
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
    where = [f"{d} = {samples[d].values.item() if d in samples.coords else 0}" for d in others]
    fig.suptitle(fraction_panels_title([", ".join(where)] if where else []), fontsize=8)
    return fig
