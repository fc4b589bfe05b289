"""Degree maps: how many hidden units each visible unit keeps, drawn on the image grid, and the
overlap of the pruned student's connections with a planted teacher's.

Input: a study's mask summary (``masks.nc``, :func:`analysis.masks.mask_summary` of the study's
final masks) with ``mean_visible_degree`` of dims (``pruning_fraction``, ``visible``) and any of
``protocol``, ``pruning_time``, ``n_hidden``; optionally ``teacher_recall`` and
``teacher_chance_recall`` (those dims and ``seed``). The maps are drawn for one grid point of the
other dims: the last combination with data, in dim order (named in the title). The image shape is
the attr ``image_shape`` of the variable or of the file, else the square of side sqrt(n_visible),
else one row. One panel per pruning fraction with data, one colour scale from 0 to n_hidden. With
the teacher variables, a last panel shows the seed mean of ``teacher_recall`` against the
fraction with its 95 % band and the chance level (dashed).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .intervals import seed_interval
from .schema import Schema
from .schema import load as load_checked
from .style import SEQUENTIAL, axis_label, band, colour, fraction_panels_title, new_figure

__all__ = ["DEGREE", "MASKS", "load", "image_shape", "chosen_point", "draw"]

DEGREE = "mean_visible_degree"
MASKS = Schema(variables={DEGREE: ("pruning_fraction", "visible")},
               optional={"teacher_recall": ("pruning_fraction", "seed"),
                         "teacher_chance_recall": ("pruning_fraction", "seed")},
               description="a study's mask summary (analysis.masks.mask_summary)")


def load(masks: Path) -> tuple[xr.Dataset]:
    return (load_checked(masks, MASKS),)


def image_shape(ds: xr.Dataset) -> tuple[int, int]:
    """(rows, columns) of the visible units (see the module docstring)."""
    n = ds.sizes["visible"]
    shape = ds[DEGREE].attrs.get("image_shape", ds.attrs.get("image_shape"))
    if shape is not None:
        rows, cols = (int(s) for s in np.ravel(shape))
        if rows * cols != n:
            raise ValueError(f"image_shape {rows}x{cols} does not hold the {n} visible units of the masks file")
        return rows, cols
    side = math.isqrt(n)
    return (side, side) if side * side == n else (1, n)


def chosen_point(ds: xr.Dataset) -> dict:
    """The values of the dims besides fraction and visible at which the maps are drawn: the last
    combination, in the order of the dims and of their values, with any finite degree (so the
    last protocol, and its largest n_hidden with data: sizes are sorted)."""
    degree = ds[DEGREE]
    others = [d for d in degree.dims if d not in ("pruning_fraction", "visible")]
    has = degree.notnull().any(["pruning_fraction", "visible"]).transpose(*others).values
    if not has.any():
        raise ValueError(f"{DEGREE!r} holds no finite value: no degree map to draw")
    index = np.unravel_index(np.flatnonzero(has.ravel())[-1], has.shape)
    return {d: degree[d].values[i].item() for d, i in zip(others, index)}


def draw(ds: xr.Dataset) -> Figure:
    """The figure: one image per fraction with data (in order), then the teacher panel if any."""
    at = chosen_point(ds)
    degree = ds[DEGREE].sel(at)
    fractions = [f for f in degree["pruning_fraction"].values if bool(degree.sel(pruning_fraction=f).notnull().all())]
    teacher = "teacher_recall" in ds
    rows, cols = image_shape(ds)
    fig, axes = new_figure(2, ncols=len(fractions) + teacher, aspect=rows / cols + 0.3,
                           gridspec_kw={"width_ratios": [1.0] * len(fractions) + [1.6] * teacher})
    image = None
    for ax, f in zip(axes.flat, fractions):
        image = ax.imshow(degree.sel(pruning_fraction=f).values.reshape(rows, cols), cmap=SEQUENTIAL, vmin=0,
                          vmax=ds.sizes.get("hidden", float(np.nanmax(degree.values))), interpolation="nearest")
        ax.set_title(f"f = {f:g}")
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(image, ax=list(axes.flat[:len(fractions)]), shrink=0.8, location="bottom", aspect=40)
    bar.set_label(axis_label(ds[DEGREE]))
    if teacher:
        ax = axes.flat[-1]
        x = ds["pruning_fraction"].values
        recall = seed_interval(ds["teacher_recall"].sel(at))
        ax.plot(x, recall["mean"].values, marker="o", color=colour(0), label="student")
        band(ax, x, recall["lower"].values, recall["upper"].values, colour(0))
        if "teacher_chance_recall" in ds:
            chance = seed_interval(ds["teacher_chance_recall"].sel(at))["mean"].values
            ax.plot(x, chance, linestyle="--", color="black", linewidth=0.8, label="random masks")
        ax.set_xlabel(textwrap.fill(axis_label(ds["pruning_fraction"]), 32))
        # wrapped: the long_name is longer than a map-sized panel is tall
        ax.set_ylabel(textwrap.fill(axis_label(ds["teacher_recall"]), 32))
        ax.legend(loc="best")
    fig.suptitle(fraction_panels_title([", ".join(f"{k} = {v}" for k, v in at.items())] if at else []), fontsize=8)
    return fig
