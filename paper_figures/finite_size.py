"""Finite-size scaling of the transition: its location and width against the number of hidden units.

Input: a transition table (``transition.nc``) with dims ``protocol``, ``pruning_time`` and
``n_hidden``. One line per (protocol, pruning time) that has a located transition at some size,
with error bars from ``location_lower``/``location_upper`` and ``width_lower``/``width_upper``;
sizes whose ``verdict`` is not ``"transition"`` are left out (their location is undefined).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .quality_fraction import panel_title
from .schema import Schema
from .schema import load as load_checked
from .style import axis_label, colour, new_figure

__all__ = ["TABLE", "load", "draw"]

_DIMS = ("protocol", "pruning_time", "n_hidden")
TABLE = Schema(
    variables={k: _DIMS for k in ("location", "location_lower", "location_upper", "width", "width_lower",
                                  "width_upper", "verdict")},
    description="a transition table over sizes (analysis.transition.transition_table)",
)


def load(transition: Path) -> tuple[xr.Dataset]:
    return (load_checked(transition, TABLE),)


def draw(table: xr.Dataset) -> Figure:
    """The figure: axes[0, 0] location, axes[0, 1] width; one errorbar container per curve, in order."""
    fig, axes = new_figure(2, ncols=2, aspect=0.7, sharex=True)
    sizes = table["n_hidden"].values.astype(float)
    k = 0
    for protocol in table["protocol"].values:
        for time in table["pruning_time"].values:
            row = table.sel(protocol=protocol, pruning_time=time)
            located = row["verdict"].values.astype(str) == "transition"
            if not located.any():
                continue
            label = f"{protocol}, {panel_title(time)}"
            for ax, name in zip(axes[0], ("location", "width")):
                y = np.where(located, row[name].values, np.nan)
                lower = np.where(located, row[f"{name}_lower"].values, np.nan)
                upper = np.where(located, row[f"{name}_upper"].values, np.nan)
                ax.errorbar(sizes, y, yerr=[y - lower, upper - y], marker="o", capsize=2, color=colour(k),
                            label=label)
            k += 1
    for ax, name in zip(axes[0], ("location", "width")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [f"{s:g}" for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel(axis_label(table["n_hidden"]))
        ax.set_ylabel(axis_label(table[name]))
    if k:
        axes[0, 0].legend(loc="best")
    else:
        axes[0, 0].text(0.5, 0.5, "no transition located at any size", transform=axes[0, 0].transAxes,
                        ha="center")
    return fig
