"""The phase diagram: pruning fraction x pruning time, colour = seed-mean quality.

The colour bar is labelled with the quality's long_name and units; its values are seed means.

Inputs: a merged study and its transition table. One panel per protocol that has data, at the
largest ``n_hidden``; rows are the ``pruning_time`` labels in the study's order, columns the
pruning fractions (cells centred on them). Cells without data are blank. One colour scale for all
panels. The phase boundary: in each row whose ``verdict`` is ``"transition"``, a white diamond at
``location`` with a horizontal bar over [``location_lower``, ``location_upper``].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .intervals import seed_interval
from .quality_fraction import MERGED, QUALITY, TRANSITION, largest_size, panel_title
from .schema import load as load_checked
from .style import SEQUENTIAL, axis_label, label, new_figure

__all__ = ["load", "draw", "cell_edges"]


def load(merged: Path, transition: Path) -> tuple[xr.Dataset, xr.Dataset]:
    return load_checked(merged, MERGED), load_checked(transition, TRANSITION)


def cell_edges(centres: np.ndarray) -> np.ndarray:
    """Edges of cells centred on sorted ``centres``: midpoints inside, half a gap beyond the ends."""
    c = np.asarray(centres, dtype=float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def draw(merged: xr.Dataset, transition: xr.Dataset) -> Figure:
    """The figure; each panel's ``QuadMesh`` holds the seed means, rows = pruning times; its errorbar
    container (if any transition is located) the boundary, one point per located row."""
    size = largest_size(merged)
    mean = seed_interval(merged[QUALITY].sel(n_hidden=size))["mean"].sortby("pruning_fraction")
    protocols = [p for p in merged["protocol"].values if bool(mean.sel(protocol=p).notnull().any())]
    fig, axes = new_figure(2 if len(protocols) > 1 else 1, ncols=len(protocols), aspect=1.0, sharey=True)
    finite = mean.values[np.isfinite(mean.values)]
    vmin, vmax = float(finite.min()), float(finite.max())
    times = [str(t) for t in mean["pruning_time"].values]
    x_edges = cell_edges(mean["pruning_fraction"].values)
    y_edges = np.arange(len(times) + 1) - 0.5
    mesh = None
    for ax, protocol in zip(axes.flat, protocols):
        grid = np.ma.masked_invalid(mean.sel(protocol=protocol).transpose("pruning_time", "pruning_fraction").values)
        mesh = ax.pcolormesh(x_edges, y_edges, grid, cmap=SEQUENTIAL, vmin=vmin, vmax=vmax)
        rows = transition.sel({k: v for k, v in {"protocol": protocol, "n_hidden": size}.items()
                               if k in transition.dims})
        located = [(i, rows.sel(pruning_time=t)) for i, t in enumerate(times) if t in rows["pruning_time"].values
                   and str(rows.sel(pruning_time=t)["verdict"].values) == "transition"]
        if located:
            x = np.array([float(r["location"]) for _, r in located])
            xerr = np.array([[x_ - float(r["location_lower"]), float(r["location_upper"]) - x_]
                             for x_, (_, r) in zip(x, located)]).T
            ax.errorbar(x, np.array([i for i, _ in located], dtype=float), xerr=xerr, fmt="D", color="white",
                        markeredgecolor="black", ecolor="white", capsize=2, label="transition")
        ax.set_title(str(protocol))
        ax.set_yticks(np.arange(len(times)), [panel_title(t).removeprefix("pruned ") for t in times])
    label(fig, axes, axis_label(merged["pruning_fraction"]), axis_label(merged["pruning_time"]))
    bar = fig.colorbar(mesh, ax=list(axes.flat), shrink=0.9)
    bar.set_label(axis_label(merged[QUALITY]))
    fig.suptitle(f"{merged.attrs.get('study', 'study')}: {size} hidden units", fontsize=8)
    return fig
