"""Bias of each gradient estimator in the inclusion probabilities, per connection, per rewiring rule.

Inputs: ``stationary-estimator-bias.nc`` (soft-DEEP R) and ``stationary-estimator-bias-deep-r.nc``
(DEEP R), each written by :func:`studies.stationary.estimator_bias`: ``difference`` (inclusion
probability minus the reference posterior's) with its 95 % interval ``difference_lower`` /
``difference_upper``, of dims (``estimator``, ``visible``, ``hidden``); the rule is the Dataset
attr ``rule``.

One panel per file (stacked); the connections (visible, hidden) along x in row-major order, the
estimators (exact, CD-1, CD-10, PCD, in the file's order) side by side within each connection,
one colour each: a marker at the difference and an error bar spanning its interval. A horizontal
line at 0: an unbiased estimator's intervals cross it (about 95 % of them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .schema import Schema
from .schema import load as load_checked
from .style import axis_label, colour, new_figure

__all__ = ["ESTIMATOR_BIAS", "OFFSET", "positions", "load", "draw"]

_CUBE = ("estimator", "visible", "hidden")
ESTIMATOR_BIAS = Schema(
    variables={"difference": _CUBE, "difference_lower": _CUBE, "difference_upper": _CUBE},
    description="inclusion probability minus the reference per gradient estimator (studies.stationary.estimator_bias)")
OFFSET = 0.8  # width of one connection's group of estimators on the x axis (connections are 1 apart)


def positions(n_estimators: int, n_connections: int) -> np.ndarray:
    """x of each (estimator, connection), shape (n_estimators, n_connections): connection ``c``'s
    group is centred on ``c``, the estimators evenly spread over :data:`OFFSET`."""
    shift = (np.arange(n_estimators) - (n_estimators - 1) / 2) * OFFSET / max(n_estimators, 1)
    return np.arange(n_connections)[None, :] + shift[:, None]


def load(*paths: Path) -> tuple[xr.Dataset, ...]:
    return tuple(load_checked(p, ESTIMATOR_BIAS) for p in paths)


def draw(*datasets: xr.Dataset) -> Figure:
    """The figure: panel i draws ``datasets[i]``; per estimator one error bar container labelled
    with the estimator's name (its markers' gid ``"difference <estimator>"``), x from
    :func:`positions`, values flattened over (visible, hidden)."""
    fig, axes = new_figure(2, nrows=len(datasets), ncols=1, aspect=0.3)
    for i, (ax, ds) in enumerate(zip(axes.flat, datasets)):
        cube = {v: ds[v].transpose(*_CUBE).values.reshape(ds.sizes["estimator"], -1)
                for v in ("difference", "difference_lower", "difference_upper")}
        n_est, n_conn = cube["difference"].shape
        x = positions(n_est, n_conn)
        ax.axhline(0.0, color="black", linewidth=0.6, zorder=0)
        for k, est in enumerate(ds["estimator"].values):
            y, lo, hi = cube["difference"][k], cube["difference_lower"][k], cube["difference_upper"][k]
            bars = ax.errorbar(x[k], y, yerr=[y - lo, hi - y], fmt="o", color=colour(k), capsize=1.5,
                               elinewidth=0.8, markersize=2.5, label=str(est))
            bars.lines[0].set_gid(f"difference {est}")
        pairs = [(int(v), int(h)) for v in ds["visible"].values for h in ds["hidden"].values]
        ax.set_xticks(range(n_conn))
        ax.set_xticklabels([f"({v},{h})" for v, h in pairs])
        ax.set_xlim(-0.6, n_conn - 0.4)
        ax.set_title(str(ds.attrs.get("rule", f"file {i + 1}")))
        ax.legend(loc="best", ncol=n_est, title=axis_label(ds["estimator"]).split(" (")[0], title_fontsize=6)
    labels = [axis_label(datasets[0][d]).split(" (")[0] for d in ("visible", "hidden")]
    fig.supxlabel(f"connection ({labels[0]}, {labels[1]})", fontsize=8)
    fig.supylabel(axis_label(datasets[0]["difference"]), fontsize=8)
    return fig
