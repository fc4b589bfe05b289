"""Retrained against trained from scratch at equal sparsity.

Inputs: a merged study with a protocol of kind ``scratch`` (the mask that ``after`` pruning gives,
trained from a fresh initialisation) and at least one retrained protocol (kind ``after``,
``rewind`` or ``reinit``); and its gap table (``gap.nc``, :func:`analysis.transition.gap_table`
of the first ``after`` protocol against the first ``scratch`` one: ``gap``, ``gap_lower``,
``gap_upper`` over ``pruning_time``, ``pruning_fraction``, ``n_hidden``). The protocol kinds come
from a ``protocol_kind`` coordinate along ``protocol`` if the study has one, else from the study
spec in the attrs (``spec``, its ``protocols`` table), else a protocol's name is taken as its kind.

Top row: the seed-mean quality of each protocol against the pruning fraction, one panel per
pruning time at which ``scratch`` has data, with Student-t bands over seeds. Bottom row: the gap
table's retrained-minus-scratch gap with its bootstrap interval (the numbers the study report
prints; unconverged points excluded as the table says); above zero the retrained network is better.
"""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr
from matplotlib.figure import Figure

from .intervals import seed_interval
from .quality_fraction import MERGED, QUALITY, largest_size, panel_title
from .schema import MissingData, Schema
from .schema import load as load_checked
from .style import RC, axis_label, band, colour, new_figure

__all__ = ["RETRAINED_KINDS", "GAP", "load", "protocol_kinds", "draw"]

RETRAINED_KINDS = ("after", "rewind", "reinit")
GAP = Schema(variables={k: ("pruning_time", "pruning_fraction", "n_hidden") for k in ("gap", "gap_lower", "gap_upper")},
             description="the study's retrained-minus-scratch gap table (analysis.transition.gap_table)")


def load(merged: Path, gap: Path) -> tuple[xr.Dataset, xr.Dataset]:
    ds = load_checked(merged, MERGED)
    if "scratch" not in protocol_kinds(ds).values():
        raise MissingData(f"{merged} has no protocol of kind 'scratch' (protocols and kinds: {protocol_kinds(ds)}); "
                          "add a [protocols.scratch] table with kind = \"scratch\" to the study")
    return ds, load_checked(gap, GAP)


def protocol_kinds(merged: xr.Dataset) -> dict[str, str]:
    """Protocol label -> kind (see the module docstring for where the kinds are read)."""
    names = [str(p) for p in merged["protocol"].values]
    if "protocol_kind" in merged.coords:
        return dict(zip(names, map(str, merged["protocol_kind"].values)))
    spec = merged.attrs.get("spec")
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError:
            spec = None
    tables = spec.get("protocols", {}) if isinstance(spec, dict) else {}
    return {n: str(tables.get(n, {}).get("kind", n)) for n in names}


def draw(merged: xr.Dataset, gap: xr.Dataset) -> Figure:
    """The figure: axes[0, i] quality, axes[1, i] gap, for the i-th pruning time with scratch data."""
    kinds = protocol_kinds(merged)
    scratch = [p for p, k in kinds.items() if k == "scratch"]
    retrained = [p for p, k in kinds.items() if k in RETRAINED_KINDS]
    if not scratch or not retrained:
        raise ValueError(f"need a 'scratch' protocol and one of kinds {RETRAINED_KINDS}; the study has {kinds}")
    size = largest_size(merged)
    quality = merged[QUALITY].sel(n_hidden=size)
    base = quality.sel(protocol=scratch[0])
    times = [t for t in merged["pruning_time"].values if bool(base.sel(pruning_time=t).notnull().any())]
    fig, axes = new_figure(2 if len(times) > 1 else 1, nrows=2, ncols=max(len(times), 1), aspect=0.8,
                           sharex=True, sharey="row")
    fractions = merged["pruning_fraction"].values
    order = [str(p) for p in merged["protocol"].values]
    for i, time in enumerate(times):
        top, bottom = axes[0, i], axes[1, i]
        for protocol in [scratch[0], *retrained]:
            s = seed_interval(quality.sel(protocol=protocol, pruning_time=time))
            if not bool(s["mean"].notnull().any()):
                continue
            c = colour(order.index(protocol))
            top.plot(fractions, s["mean"].values, marker="o", color=c, label=f"{protocol} ({kinds[protocol]})")
            band(top, fractions, s["lower"].values, s["upper"].values, c)
        if time in gap["pruning_time"].values and size in gap["n_hidden"].values:
            g = gap.sel(pruning_time=time, n_hidden=size).sortby("pruning_fraction")
            x = g["pruning_fraction"].values
            bottom.plot(x, g["gap"].values, marker="o", color="black", label="retrained - scratch")
            band(bottom, x, g["gap_lower"].values, g["gap_upper"].values, "black")
        bottom.axhline(0.0, color="black", linewidth=0.6)
        top.set_title(panel_title(time))
    units = merged[QUALITY].attrs.get("units")
    axes[0, 0].set_ylabel(axis_label(merged[QUALITY]))
    axes[1, 0].set_ylabel(f"retrained - scratch ({units})")
    fig.supxlabel(axis_label(merged["pruning_fraction"]), fontsize=RC["axes.labelsize"])
    axes[0, 0].legend(loc="lower left")
    axes[1, 0].legend(loc="lower left")
    return fig
