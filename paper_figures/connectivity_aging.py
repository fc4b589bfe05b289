"""Aging of DEEP R's connectivity: the mask overlap with the previous training budget against the budget.

Input: ``rewiring-mnist-500.nc`` with ``mask_overlap`` and ``mask_overlap_chance`` of dims
(``method``, ``connectivity``, ``seed``, ``epochs``), as ``studies.rewiring.mnist_comparison``
writes them with several budgets: the normalised overlap ``|A & B| / sqrt(|A| |B|)`` of the
connections present after budget ``t`` and after the previous budget ``t_w``
(``analysis.masks.two_time_overlap``; NaN at the first budget) and its chance level, that of
independent uniformly random masks with those counts.

One line per (method, connectivity) whose mask moves during a run: the seed mean against the
budget on a log2 axis, each seed a point, and the seed-mean chance level dashed in the same colour.
A method whose overlap is 1 wherever it is finite (static masks, the dense model) is left out, and
so is ``magnitude``, whose budgets are separate runs (their overlap is not the two-time overlap of
one run). A method whose ``uses_connectivity`` coordinate is 0 (NCG: its value repeated along
``connectivity``) is one line. A file with several AIS budgets (``ais_betas``) is drawn at the
largest; the overlap does not depend on it.

With doubling budgets, a run whose connectivity ages (a glass) has an overlap that depends on the
ratio ``t / t_w`` alone, a flat line; a sampler at equilibrium has one that depends on the lag
``t - t_w``, which doubles with every budget, so it falls to the chance level.

A file without ``mask_overlap`` (written before the comparison recorded it, or with one budget)
is missing data (:class:`~paper_figures.schema.MissingData`), not a broken file, and so is one with
no finite overlap of a moving mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from .schema import MissingData, Schema, check
from .style import axis_label, colour, new_figure

__all__ = ["OVERLAP", "CHANCE", "FIXED", "AGING", "load", "draw", "moving_methods"]

OVERLAP = "mask_overlap"
CHANCE = "mask_overlap_chance"
# a run per budget: the overlap of two runs' masks, not of one run's at two times
FIXED = ("magnitude",)
_DIMS = ("method", "connectivity", "seed", "epochs")
AGING = Schema(variables={OVERLAP: _DIMS, CHANCE: _DIMS},
               description="mask overlap of the rewiring comparison's models with the previous training budget")


def load(path: Path) -> tuple[xr.Dataset]:
    from dilution.io import load_dataset

    ds = load_dataset(path)
    if OVERLAP not in ds.variables:
        raise MissingData(f"{path} has no {OVERLAP!r}: it was written before studies.rewiring.mnist_comparison "
                          "recorded the mask overlap between training budgets, or with one budget; remake it with "
                          "several epochs budgets")
    return (check(ds, AGING, path),)


def moving_methods(ds: xr.Dataset) -> list[str]:
    """The methods drawn: those whose overlap is finite somewhere and not 1 everywhere it is, but
    :data:`FIXED`."""
    overlap = ds[OVERLAP]
    out = []
    for method in ds["method"].values:
        values = overlap.sel({"method": method}).values
        finite = values[np.isfinite(values)]
        if str(method) not in FIXED and finite.size and not np.all(finite == 1.0):
            out.append(str(method))
    return out


def draw(ds: xr.Dataset) -> Figure:
    """The figure: on axes[0, 0], per line in the order (method, connectivity) of the file, the
    seed-mean overlap (a line with markers, labelled ``"<method>, connectivity <c>"``, or
    ``"<method>"`` when it does not use the connectivity), the seeds (points, ``"_seeds <label>"``)
    and the seed-mean chance level (dashed, ``"_chance <label>"``), all in the line's colour;
    budgets with no finite overlap of a drawn method (the first) are left out."""
    if "ais_betas" in ds.dims:
        ds = ds.isel(ais_betas=-1)
    methods = moving_methods(ds)
    if not methods:
        raise MissingData(f"no method's mask moves in this file (finite {OVERLAP} below 1): methods "
                          f"{[str(m) for m in ds['method'].values]}")
    scored = ds[OVERLAP].sel({"method": methods}).notnull().any(("method", "connectivity", "seed"))
    ds = ds.sel({"epochs": ds["epochs"].values[scored.values]})
    x = ds["epochs"].values.astype(float)
    fig, axes = new_figure(1, aspect=1.0)
    ax = axes[0, 0]
    k = 0
    for method in methods:
        one = ds.sel({"method": method})
        repeated = "uses_connectivity" in ds.coords and not int(one["uses_connectivity"])
        for connectivity in one["connectivity"].values[:1] if repeated else one["connectivity"].values:
            at = one.sel({"connectivity": connectivity})
            overlap, chance = at[OVERLAP].transpose("seed", "epochs").values, at[CHANCE].mean("seed").values
            c = colour(k)
            k += 1
            name = method if repeated else f"{method}, connectivity {connectivity:g}"
            ax.plot(x, at[OVERLAP].mean("seed").values, marker="o", color=c, label=name)
            # labels starting with "_" stay out of the legend
            ax.plot(np.broadcast_to(x, overlap.shape).ravel(), overlap.ravel(), linestyle="none", marker=".",
                    markersize=2, alpha=0.5, color=c, label=f"_seeds {name}")
            # a marker too: with two budgets the chance level is a single point
            ax.plot(x, chance, linestyle="--", linewidth=0.8, marker="_", markersize=8, color=c,
                    label=f"_chance {name}")
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], linestyle="--", linewidth=0.8, marker="_", markersize=8, color="grey",
                          label="chance (random masks)"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)  # below: covers no point
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("training budget t (epochs)")
    ax.set_ylabel(axis_label(ds[OVERLAP]))
    return fig
