"""Sample grids: many visible states as one PNG, each unit a square block of screen pixels.

The grid is rendered with matplotlib's Agg canvas (no display needed) with ``figimage``, so
each unit maps to exactly ``scale x scale`` screen pixels (nearest neighbour; by default small
images are scaled up until a tile is about ``MIN_TILE_PIXELS`` wide): 0 is black, 1 white, and
tiles are separated by ``padding`` grey units. An optional title sits in a white band of
``TITLE_PIXELS`` above the grid. The file is written atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .io import atomic_write
from .validation import check_int

__all__ = ["tile_samples", "save_sample_grid", "check_image_shape", "default_scale", "PAD_VALUE", "MIN_TILE_PIXELS",
           "TITLE_PIXELS"]

PAD_VALUE = 0.5
# Default upscaling: a tile's longer side spans at least this many screen pixels (2 px per unit
# at least), so that an 8 x 8 pattern is not an 8-pixel speck.
MIN_TILE_PIXELS = 56
# Height of the title band; its font is 11 px, and a character is about 7 px wide.
TITLE_PIXELS = 24
_TITLE_CHAR_PIXELS = 7


def _check_shape(image_shape) -> tuple[int, int]:
    try:
        rows, cols = (int(s) for s in image_shape)
    except (TypeError, ValueError):
        raise ValueError(f"image_shape must be a pair (rows, cols), got {image_shape!r}") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"image_shape must be positive, got {image_shape!r}")
    return rows, cols


def check_image_shape(image_shape, n_units: int) -> tuple[int, int]:
    """``image_shape`` as ``(rows, cols)`` if it holds exactly ``n_units`` units.

    Raises
    ------
    ValueError
        If it is not a pair of positive integers, or ``rows * cols != n_units``.
    """
    rows, cols = _check_shape(image_shape)
    if rows * cols != n_units:
        raise ValueError(f"image shape {rows}x{cols} holds {rows * cols} units, the samples have {n_units}")
    return rows, cols


def default_scale(image_shape) -> int:
    """Screen pixels per unit that make a tile's longer side at least ``MIN_TILE_PIXELS`` (at least 2)."""
    rows, cols = _check_shape(image_shape)
    return max(2, math.ceil(MIN_TILE_PIXELS / max(rows, cols)))


def tile_samples(samples, image_shape=(28, 28), n_cols: int | None = None, *, padding: int = 1) -> np.ndarray:
    """Arrange samples as tiles of one array (row-major order, left to right then down).

    Parameters
    ----------
    samples : array_like, shape (n, rows * cols)
        Values in [0, 1]: binary states or probabilities.
    image_shape : (int, int)
        (rows, cols) of one image; each sample is reshaped row-major.
    n_cols : int, optional
        Tiles per grid row; default ``ceil(sqrt(n))``.
    padding : int
        Grey (``PAD_VALUE``) pixels between tiles and around the grid.

    Returns
    -------
    ndarray of float64, shape (grid_rows * (rows + padding) + padding, n_cols * (cols + padding) + padding)
        Empty slots of an incomplete last row are grey.
    """
    rows, cols = _check_shape(image_shape)
    x = np.asarray(samples)
    if x.dtype == bool:
        x = x.astype(np.uint8)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise TypeError(f"samples must be real numbers in [0, 1], got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != rows * cols or x.shape[0] == 0:
        raise ValueError(
            f"samples must have shape (n >= 1, {rows * cols}) for image_shape {(rows, cols)}, got {np.shape(samples)}"
        )
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("samples contain NaN or infinite values; expected values in [0, 1]")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"samples must lie in [0, 1], found range [{x.min()}, {x.max()}]")
    n = x.shape[0]
    n_cols = math.ceil(math.sqrt(n)) if n_cols is None else check_int("n_cols", n_cols, low=1)
    n_cols = min(n_cols, n)
    n_rows = math.ceil(n / n_cols)
    padding = check_int("padding", padding, low=0)
    grid = np.full((n_rows * (rows + padding) + padding, n_cols * (cols + padding) + padding), PAD_VALUE)
    for k in range(n):
        r0 = padding + (k // n_cols) * (rows + padding)
        c0 = padding + (k % n_cols) * (cols + padding)
        grid[r0:r0 + rows, c0:c0 + cols] = x[k].reshape(rows, cols)
    return grid


def save_sample_grid(
    samples,
    path: str | os.PathLike,
    image_shape=(28, 28),
    n_cols: int | None = None,
    *,
    padding: int = 1,
    scale: int | None = None,
    title: str | None = None,
) -> Path:
    """Write samples as a grid of grey-level images to a PNG file (atomically).

    Parameters
    ----------
    samples : array_like, shape (n, rows * cols)
        Values in [0, 1].
    path : path-like
        Target ``.png`` file; replaced if it exists.
    image_shape : (int, int)
    n_cols : int, optional
        Tiles per grid row; default ``ceil(sqrt(n))``.
    padding : int
        Grey units between tiles.
    scale : int, optional
        Screen pixels per unit along each axis (nearest-neighbour upscaling); default
        :func:`default_scale` (2 for 28 x 28 digits, 7 for 8 x 8 patterns).
    title : str, optional
        A line of text in a white band of ``TITLE_PIXELS`` above the grid; the image is widened
        (grid centred) if the title needs it.

    Returns
    -------
    Path
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ValueError(f"save_sample_grid writes PNG; path must end in .png, got {target}")
    grid = tile_samples(samples, image_shape, n_cols, padding=padding)
    scale = default_scale(image_shape) if scale is None else check_int("scale", scale, low=1)
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a string, got {type(title).__name__}")
    grid = np.kron(grid, np.ones((scale, scale)))
    grid_height, grid_width = grid.shape
    width, height = grid_width, grid_height
    if title:
        width = max(width, _TITLE_CHAR_PIXELS * len(title) + 2 * _TITLE_CHAR_PIXELS)
        height += TITLE_PIXELS
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="white")
    fig.figimage(grid, xo=(width - grid_width) // 2, yo=0, cmap="gray", vmin=0.0, vmax=1.0, origin="upper",
                 resize=False)
    if title:
        # 11 px font: points = pixels * 72 / dpi
        fig.text(0.5, 1 - TITLE_PIXELS / 2 / height, title, ha="center", va="center", fontsize=11 * 72 / dpi)
    canvas = FigureCanvasAgg(fig)
    with atomic_write(target) as tmp:
        canvas.print_png(str(tmp))
    return target
