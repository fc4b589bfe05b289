"""Finite-size scaling of the transition: its location and width against the number of hidden units.

Input: a transition table (``transition.nc``) with dims ``protocol``, ``pruning_time`` and
``n_hidden``. One line per (protocol, pruning time) that has a located transition at some size,
with error bars from ``location_lower``/``location_upper`` and ``width_lower``/``width_upper``;
sizes whose ``verdict`` is not ``"transition"`` are left out (their location is undefined).

When the table also holds the fit of :func:`analysis.transition.finite_size_scaling` (variables
``f_inf``, ``inverse_size_slope``, ``width_amplitude``, ``width_exponent`` over ``protocol`` and
``pruning_time``, merged into the file), the fitted laws f*(N) = f_inf + a / N and
w(N) = c N^-theta are drawn dashed over the sizes' range, and f_inf is given in the legend.
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

__all__ = ["TABLE", "FIT", "load", "fitted", "draw"]

_DIMS = ("protocol", "pruning_time", "n_hidden")
TABLE = Schema(
    variables={k: _DIMS for k in ("location", "location_lower", "location_upper", "width", "width_lower",
                                  "width_upper", "verdict")},
    description="a transition table over sizes (analysis.transition.transition_table)",
)


FIT = ("f_inf", "inverse_size_slope", "width_amplitude", "width_exponent")


def fitted(row: xr.Dataset, n: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The fitted location and width at sizes ``n`` for one (protocol, pruning time), or None
    without a (finite) fit."""
    if not all(k in row for k in FIT):
        return None
    f_inf, a, c, theta = (float(row[k]) for k in FIT)
    if not np.isfinite([f_inf, a]).all():
        return None
    return f_inf + a / n, c * n ** -theta


def load(transition: Path) -> tuple[xr.Dataset]:
    return (load_checked(transition, TABLE),)


def draw(table: xr.Dataset) -> Figure:
    """The figure: axes[0, 0] location, axes[0, 1] width; one errorbar container per curve, in order."""
    fig, axes = new_figure(2, ncols=2, aspect=0.9, sharex=True)
    sizes = table["n_hidden"].values.astype(float)
    k = 0
    for protocol in table["protocol"].values:
        for time in table["pruning_time"].values:
            row = table.sel(protocol=protocol, pruning_time=time)
            located = row["verdict"].values.astype(str) == "transition"
            if not located.any():
                continue
            label = f"{protocol}, {panel_title(time)}"
            n = np.geomspace(sizes.min(), sizes.max(), 50)
            fit = fitted(row, n)
            if fit is not None:
                label += f" (f_inf = {float(row['f_inf']):.3g})"
                for ax, curve in zip(axes[0], fit):
                    ax.plot(n, curve, linestyle="--", linewidth=0.8, color=colour(k), label=f"{label}: fit")
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
