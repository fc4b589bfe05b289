"""Discretisation bias of the stationary law against the learning rate, log-log, per rewiring rule.

Inputs: ``stationary-discretisation.nc`` (:func:`studies.stationary.discretisation_bias`: the
stationary means of the posterior experiment against a long-run reference) and
``stationary-discretisation-prior.nc`` (:func:`studies.stationary.prior_discretisation_bias`:
the prior-only dynamics against their exact stationary means). Each holds ``deviation``,
``deviation_lower`` and ``deviation_upper`` (the 95 % interval) of dims (``rule``,
``learning_rate``, ``statistic``), the statistics labelled by the coordinates
``statistic_long_name`` and ``statistic_units``.

Layout: one column per rule (DEEP R, soft-DEEP R), the posterior experiment in the top row and
the prior-only one in the bottom row; one colour per statistic, shared by both rows.

What is drawn at each learning rate, on log axes:

* where the 95 % interval of the deviation excludes 0 (both ends of one sign): a filled circle at
  ``|deviation|`` with an error bar from the smaller to the larger ``|end|`` of the interval;
* where it includes 0: an open downward triangle at the larger ``|end|``, i.e. the upper bound
  the data put on ``|deviation|`` (a log axis cannot show 0 or a sign change, and ``|deviation|``
  of an interval straddling 0 would be a spurious point);
* a statistic whose deviation and interval are 0 at every rate (DEEP R's active count: fixed at
  K by the rule) has nothing to draw; its legend entry says ``= 0 exactly``.

The guide lines are ``c * eta`` (dashed, an O(eta) bias) and ``c * sqrt(eta)`` (dotted, O(sqrt eta)),
both through the geometric mean of the panel's drawn points at the largest learning rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatterSciNotation, NullLocator

from .schema import MissingData, Schema
from .schema import load as load_checked
from .style import axis_label, colour, new_figure

__all__ = ["DISCRETISATION", "GUIDE_SLOPES", "Points", "points", "load", "draw"]

_CUBE = ("rule", "learning_rate", "statistic")
DISCRETISATION = Schema(
    variables={"deviation": _CUBE, "deviation_lower": _CUBE, "deviation_upper": _CUBE,
               "statistic_long_name": ("statistic",), "statistic_units": ("statistic",)},
    description="stationary means minus the reference against the learning rate "
                "(studies.stationary.discretisation_bias / prior_discretisation_bias)")
# Slope in log-log -> (legend label, line style).
GUIDE_SLOPES = {1.0: ("O(eta)", "--"), 0.5: ("O(sqrt eta)", ":")}


class Points(NamedTuple):
    """What one statistic of one rule puts on the log axes, per learning rate (NaN: not drawn there).

    All arrays have shape (n_learning_rate,).
    """

    significant: np.ndarray  # bool: the 95 % interval excludes 0
    magnitude: np.ndarray  # |deviation| where significant
    lower: np.ndarray  # smaller |end| of the interval where significant
    upper: np.ndarray  # larger |end| of the interval where significant
    bound: np.ndarray  # larger |end| where the interval includes 0 (and is not [0, 0])


def points(ds: xr.Dataset, rule: str, statistic: str) -> Points:
    """The drawn values of ``statistic`` for ``rule`` (module docstring)."""
    row = ds.sel(rule=rule, statistic=statistic)
    dev, lo, hi = (np.asarray(row[v].values, dtype=float) for v in ("deviation", "deviation_lower", "deviation_upper"))
    significant = (lo > 0) | (hi < 0)
    ends = np.sort(np.abs(np.stack([lo, hi])), axis=0)
    nan = np.full(dev.shape, np.nan)
    bounded = ~significant & (ends[1] > 0)
    return Points(significant, np.where(significant, np.abs(dev), nan), np.where(significant, ends[0], nan),
                  np.where(significant, ends[1], nan), np.where(bounded, ends[1], nan))


def load(posterior: Path, prior: Path) -> tuple[xr.Dataset, xr.Dataset]:
    return load_checked(posterior, DISCRETISATION), load_checked(prior, DISCRETISATION)


def _statistic_label(ds: xr.Dataset, statistic: str) -> str:
    row = ds.sel(statistic=statistic)
    return f"{row['statistic_long_name'].item()} ({row['statistic_units'].item()})"


def draw(posterior: xr.Dataset, prior: xr.Dataset) -> Figure:
    """The figure: rows (posterior, prior only), one column per rule of ``posterior``; in each
    panel, per statistic in the file's order, the error bars (gid ``"deviation <statistic>"``) and
    the open bound triangles (gid ``"bound <statistic>"``), then the two guide lines (labelled as
    in :data:`GUIDE_SLOPES`). One legend for the figure, below the panels: each statistic's
    ``long_name (units)``, the triangle and the guides."""
    rules = [str(r) for r in posterior["rule"].values]
    statistics = list(dict.fromkeys([str(s) for s in posterior["statistic"].values]
                                    + [str(s) for s in prior["statistic"].values]))
    fig, axes = new_figure(2, nrows=2, ncols=len(rules), aspect=0.55)
    legend: dict[str, object] = {}
    for r, ds in enumerate((posterior, prior)):
        reference = ds["reference"].attrs.get("long_name", "reference") if "reference" in ds else "reference"
        eta = np.asarray(ds["learning_rate"].values, dtype=float)
        top = int(np.argmax(eta))
        for c, rule in enumerate(rules):
            ax = axes[r, c]
            anchors, zero = [], []
            for s in (str(s) for s in ds["statistic"].values):
                k = statistics.index(s)
                p = points(ds, rule, s)
                label = _statistic_label(ds, s)
                if not (p.significant.any() or np.isfinite(p.bound).any()):
                    zero.append(str(ds["statistic_long_name"].sel(statistic=s).item()))
                    continue
                bars = ax.errorbar(eta, p.magnitude, yerr=[p.magnitude - p.lower, p.upper - p.magnitude], fmt="o",
                                   color=colour(k), capsize=2, elinewidth=0.8, label=label)
                bars.lines[0].set_gid(f"deviation {s}")
                legend.setdefault(label, bars)
                (bound,) = ax.plot(eta, p.bound, linestyle="none", marker="v", markerfacecolor="none",
                                   color=colour(k), gid=f"bound {s}")
                if np.isfinite(p.bound).any():
                    legend.setdefault("_bound", bound)
                anchors.extend(v for v in (p.magnitude[top], p.bound[top]) if np.isfinite(v))
            if anchors:
                through = float(np.exp(np.mean(np.log(anchors))))
                grid = np.geomspace(eta.min(), eta[top], 20)
                for slope, (name, style) in GUIDE_SLOPES.items():
                    (guide,) = ax.plot(grid, through * (grid / eta[top]) ** slope, linestyle=style, color="black",
                                       linewidth=0.8, label=name)
                    legend.setdefault(name, guide)
            if zero:
                ax.text(0.02, 0.98, "; ".join(zero) + ": deviation = 0 exactly", transform=ax.transAxes,
                        va="top", ha="left", fontsize=6)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(eta, [f"{v:g}" for v in eta])
            ax.xaxis.set_minor_locator(NullLocator())
            # a panel spanning about one decade would otherwise show one labelled tick or none
            ax.yaxis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(1.2, 0.5)))
            ax.set_title(f"{rule}: {reference.split(' (')[0]}")
    if not any(key != "_bound" and key not in {n for n, _ in GUIDE_SLOPES.values()} for key in legend):
        raise MissingData("no statistic of either file has a non-zero deviation or interval to draw")
    guides = [name for name, _ in GUIDE_SLOPES.values() if name in legend]
    labels = [key for key in legend if key != "_bound" and key not in guides] + guides
    handles = [legend[key] for key in labels]
    if "_bound" in legend:
        handles.append(legend["_bound"])
        labels.append("95 % interval includes 0: its larger |end| (an upper bound)")
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=6, frameon=False)
    fig.supxlabel(axis_label(posterior["learning_rate"]), fontsize=8)
    dev = posterior["deviation"].attrs.get("long_name", "deviation")
    fig.supylabel(f"|{dev}| (units in the legend)", fontsize=8)
    return fig
