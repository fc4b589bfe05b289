"""Quality against pruning fraction, one panel per pruning time, with the located transition.

Inputs: a merged study (``merged.nc``) and its transition table (``transition.nc``).
One line per protocol: the seed mean of ``test_log_likelihood`` at the largest ``n_hidden``,
with its Student-t confidence band over seeds (:func:`paper_figures.intervals.seed_interval`).
When the table was fitted along ``-log10(1 - f)`` (its ``axis`` attribute is ``"log-remaining"``),
the x axis is drawn in those decades, labelled in fractions.

Where the table's ``verdict`` is ``"transition"``, a vertical line marks ``location`` and a
shaded span its interval [``location_lower``, ``location_upper``]; otherwise the verdict
("no step", "edge", ...) is written in the panel's corner. Fractions where a finished
seed did not converge get an open marker. Horizontal references: the planted teacher's and the
independent-pixel model's test log-likelihood when the study has them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .intervals import seed_interval
from .schema import MissingData, Schema
from .schema import load as load_checked
from .style import axis_label, band, colour, label, new_figure

__all__ = ["MERGED", "TRANSITION", "QUALITY", "load", "draw", "panel_title", "largest_size"]

QUALITY = "test_log_likelihood"
_POINT_DIMS = ("protocol", "pruning_time", "pruning_fraction", "n_hidden", "seed")
MERGED = Schema(
    variables={QUALITY: _POINT_DIMS},
    optional={"converged": _POINT_DIMS, "finished": _POINT_DIMS, "teacher_test_log_likelihood": (),
              "independent_test_log_likelihood": ()},
    description="a merged study: dilution study run, then its merge",
)
TRANSITION = Schema(
    variables={k: ("protocol", "pruning_time", "n_hidden")
               for k in ("location", "location_lower", "location_upper", "verdict")},
    description="the study's transition table (analysis.transition.transition_table)",
)
_REFERENCES = (("teacher_test_log_likelihood", "planted teacher", "--"),
               ("independent_test_log_likelihood", "independent pixels", ":"))


def load(merged: Path, transition: Path) -> tuple[xr.Dataset, xr.Dataset]:
    """The merged study and its transition table, checked against :data:`MERGED` / :data:`TRANSITION`."""
    return load_checked(merged, MERGED), load_checked(transition, TRANSITION)


def panel_title(time: str) -> str:
    """Words for a ``pruning_time`` label (``"0"``, ``"20"``, ``"converged"``)."""
    if str(time) == "0":
        return "pruned at initialisation"
    if str(time) == "converged":
        return "pruned after convergence"
    return f"pruned after epoch {time}"


def largest_size(merged: xr.Dataset) -> int:
    """The largest ``n_hidden`` with at least one finite quality value."""
    has = merged[QUALITY].notnull().any([d for d in merged[QUALITY].dims if d != "n_hidden"])
    sizes = merged["n_hidden"].values[has.values]
    if sizes.size == 0:
        raise MissingData(f"the merged study has no finite {QUALITY!r} at any n_hidden: nothing to draw")
    return int(sizes.max())


def _unconverged(merged: xr.Dataset, at: dict) -> np.ndarray | None:
    """Per fraction: some finished seed did not converge (None without a ``converged`` variable)."""
    if "converged" not in merged:
        return None
    converged = merged["converged"].sel(at).astype(bool)
    finished = merged["finished"].sel(at).astype(bool) if "finished" in merged else merged[QUALITY].sel(at).notnull()
    return (finished & ~converged).any("seed").values


def _decades(f):
    return -np.log10(np.clip(1.0 - np.asarray(f, dtype=float), 1e-6, None))


def _fractions(x):
    return 1.0 - 10.0 ** -np.asarray(x, dtype=float)


def _decades_scale(ax, fractions: np.ndarray) -> None:
    """The x axis in decades of connections removed, ``-log10(1 - f)``, labelled in fractions: the
    transition table was fitted along it (``axis = "log-remaining"``), and a collapse between 0.99
    and 0.9999 is then as wide as one between 0 and 0.9."""
    ax.set_xscale("function", functions=(_decades, _fractions))
    ticks = [t for t in (0.0, 0.9, 0.99, 0.999, 0.9999, 0.99999) if t <= fractions.max() + 1e-12]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])


def draw(merged: xr.Dataset, transition: xr.Dataset) -> Figure:
    """The figure; its axes are the pruning times in the merged study's order (panels without data are hidden)."""
    size = largest_size(merged)
    quality = merged[QUALITY].sel(n_hidden=size)
    times = [t for t in merged["pruning_time"].values if bool(quality.sel(pruning_time=t).notnull().any())]
    fig, axes = new_figure(2 if len(times) > 1 else 1, ncols=max(len(times), 1), aspect=1.1, sharey=True)
    summary = seed_interval(quality)
    fractions = merged["pruning_fraction"].values
    log_axis = transition.attrs.get("axis") == "log-remaining"
    for ax, time in zip(axes.flat, times):
        if log_axis:
            _decades_scale(ax, fractions)
        notes = []  # curves without a located transition, with the table's verdict
        for p, protocol in enumerate(merged["protocol"].values):
            at = {"protocol": protocol, "pruning_time": time}
            s = summary.sel(at)
            if not bool(s["mean"].notnull().any()):
                continue
            c = colour(p)
            ax.plot(fractions, s["mean"].values, marker="o", color=c, label=str(protocol))
            band(ax, fractions, s["lower"].values, s["upper"].values, c)
            flags = _unconverged(merged, {**at, "n_hidden": size})
            if flags is not None and flags.any():
                ax.plot(fractions[flags], s["mean"].values[flags], linestyle="none", marker="o", ms=6,
                        markerfacecolor="white", markeredgecolor=c, label=f"{protocol}: a seed unconverged")
            row = transition.sel({k: v for k, v in {**at, "n_hidden": size}.items() if k in transition.dims})
            verdict = str(row["verdict"].values)
            if verdict != "transition":
                notes.append(f"{protocol}: {verdict}")
            else:
                ax.axvspan(float(row["location_lower"]), float(row["location_upper"]), color=c, alpha=0.15,
                           linewidth=0)
                ax.axvline(float(row["location"]), color=c, linestyle="-.", linewidth=1,
                           label=f"{protocol}: transition")
        for name, text, style in _REFERENCES:
            if name in merged and np.isfinite(float(merged[name])):
                ax.axhline(float(merged[name]), color="black", linestyle=style, linewidth=0.8, label=text)
        ax.set_title(panel_title(time))
        if notes:
            ax.text(0.98, 0.98, "\n".join(notes), transform=ax.transAxes, ha="right", va="top", fontsize=6,
                    gid="verdicts")
    label(fig, axes, axis_label(merged["pruning_fraction"]), axis_label(merged[QUALITY]))
    for ax in axes.flat[: len(times)]:  # each panel names its own protocols; clear of its verdict notes
        noted = any(t.get_gid() == "verdicts" for t in ax.texts)
        ax.legend(loc="lower left" if noted else "best", fontsize=6)
    fig.suptitle(f"{merged.attrs.get('study', 'study')}: {size} hidden units", fontsize=8)
    return fig
