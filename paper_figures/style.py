"""The house style every figure shares: labels from CF attributes, palette, sizes, saving.

* Axis labels are ``"long_name (units)"`` read from the Dataset's variable attributes
  (:func:`axis_label`); a variable without them is refused, so no figure has an unlabelled axis.
* Colours are the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), distinguishable
  under the common colour-vision deficiencies; :data:`SEQUENTIAL` (viridis) for maps.
* Widths are a journal's one column (3.4 in) and two columns (7.0 in) (APS / Elsevier layouts).
* :func:`save` writes PDF and PNG atomically, the provenance (study, git commit, dilution
  version, source files) in the PDF's Subject / Keywords and the PNG's text chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from dilution.io import atomic_write  # noqa: E402

__all__ = [
    "PALETTE",
    "SEQUENTIAL",
    "COLUMN_WIDTH",
    "RC",
    "axis_label",
    "colour",
    "new_figure",
    "band",
    "label",
    "provenance_text",
    "save",
]

# Okabe-Ito, black first dropped: black is kept for references (teacher, reference code).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
SEQUENTIAL = "viridis"
COLUMN_WIDTH = {1: 3.4, 2: 7.0}  # inches
RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.2,
    "lines.markersize": 3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # TrueType in the PDF: journals refuse Type 3 fonts
}
# Keys of the Dataset attrs that identify where a figure's data came from.
_PROVENANCE_KEYS = ("study", "git_commit", "dilution_version", "created")


def axis_label(da: xr.DataArray) -> str:
    """``"long_name (units)"`` from a variable's CF attributes.

    A long_name with an explanation after ``": "`` (``"pruning time: epoch after which ..."``) is
    cut there: the explanation belongs in the caption, not on an axis.

    Raises
    ------
    ValueError
        If ``long_name`` or ``units`` is missing or empty: the figure would have an unlabelled axis.
    """
    long_name, units = da.attrs.get("long_name"), da.attrs.get("units")
    if not long_name or not units:
        raise ValueError(
            f"variable {da.name!r} lacks the CF attributes long_name and units (its attrs: {sorted(da.attrs)}); "
            "expected a Dataset written by dilution, which labels every variable"
        )
    return f"{long_name.split(': ', 1)[0]} ({units})"


def fraction_panels_title(where: Sequence[str] = ()) -> str:
    """The title line of a figure whose panels are titled ``f = 0.99`` (one per pruning fraction:
    short enough for eleven in a two-column figure): ``where`` (e.g. ``"protocol = init"``) and the key."""
    return "; ".join([*where, "f: fraction of connections pruned"])


def colour(index: int) -> str:
    """The ``index``-th colour of :data:`PALETTE` (cycling)."""
    return PALETTE[index % len(PALETTE)]


def new_figure(columns: Literal[1, 2] = 1, *, nrows: int = 1, ncols: int = 1, aspect: float = 0.75,
               **subplot_kw) -> tuple[Figure, np.ndarray]:
    """A figure one or two journal columns wide, with a grid of axes.

    Parameters
    ----------
    columns : 1 or 2
        Journal columns the figure spans (:data:`COLUMN_WIDTH`).
    nrows, ncols : int
        The grid of panels.
    aspect : float
        Height of one panel row over the figure's width divided by ``ncols``.

    Returns
    -------
    (Figure, ndarray of Axes, shape (nrows, ncols))
    """
    if columns not in COLUMN_WIDTH:
        raise ValueError(f"columns must be 1 or 2 (journal columns), got {columns!r}")
    width = COLUMN_WIDTH[columns]
    height = max(1.6, nrows * aspect * width / ncols)
    # Global on purpose: text made after the axes (legends, titles) must get the house sizes too.
    matplotlib.rcParams.update(RC)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, constrained_layout=True,
                             **subplot_kw)
    for ax in axes.flat:
        ax.set_prop_cycle(color=PALETTE)
    return fig, axes


def label(fig: Figure, axes: np.ndarray, x: str | None = None, y: str | None = None) -> None:
    """Axis labels: on the axes when there is one panel, once for the figure when there are several
    (a label per panel would not fit a journal column)."""
    if axes.size == 1:
        ax = axes.flat[0]
        if x is not None:
            ax.set_xlabel(x)
        if y is not None:
            ax.set_ylabel(y)
        return
    if x is not None:
        fig.supxlabel(x, fontsize=RC["axes.labelsize"])
    if y is not None:
        fig.supylabel(y, fontsize=RC["axes.labelsize"])


def band(ax, x, lower, upper, colour_: str, *, label: str | None = None):
    """Shade the confidence band between ``lower`` and ``upper`` (NaN bounds leave gaps).

    Returns the ``PolyCollection`` (its vertices are the data's bounds; tests read them).
    """
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    return ax.fill_between(np.asarray(x, dtype=float), lower, upper, where=np.isfinite(lower) & np.isfinite(upper),
                           color=colour_, alpha=0.25, linewidth=0, label=label)


def provenance_text(datasets: Iterable[xr.Dataset]) -> str:
    """``"study=...; git_commit=...; ..."`` from the attrs of ``datasets`` (distinct values joined)."""
    found: dict[str, list[str]] = {}
    for ds in datasets:
        for key in _PROVENANCE_KEYS:
            value = ds.attrs.get(key)
            if value is not None and str(value) not in found.setdefault(key, []):
                found[key].append(str(value))
    return "; ".join(f"{k}={','.join(v)}" for k, v in found.items() if v)


def save(fig: Figure, stem: str | Path, *, caption: str, datasets: Sequence[xr.Dataset] = (),
         sources: Sequence[str | Path] = (), dpi: int = 200) -> tuple[Path, Path]:
    """Write ``fig`` as ``stem.pdf`` and ``stem.png``, each atomically, with provenance metadata.

    Parameters
    ----------
    fig : Figure
    stem : path
        Output path without suffix; its folder must exist.
    caption : str
        The figure's caption (PDF Subject, PNG Description).
    datasets : sequence of Dataset
        The data drawn; their provenance attrs (:func:`provenance_text`) go into the metadata.
    sources : sequence of path
        The files the data were read from.

    Returns
    -------
    (Path, Path)
        The PDF and the PNG.
    """
    stem = Path(stem)
    keywords = provenance_text(datasets)
    if sources:
        keywords = "; ".join(filter(None, [keywords, "sources=" + ",".join(str(s) for s in sources)]))
    metadata = {
        "pdf": {"Title": stem.name, "Subject": caption, "Keywords": keywords, "Creator": "paper_figures"},
        "png": {"Title": stem.name, "Description": caption, "Keywords": keywords, "Software": "paper_figures"},
    }
    out = []
    for fmt in ("pdf", "png"):
        path = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_write(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata[fmt])
        out.append(path)
    return out[0], out[1]
