"""The rewiring comparison as a table: what deep-r-vs-static draws, with the numbers and the flags.

Input: ``rewiring-mnist.nc`` or ``rewiring-mnist-500.nc`` (``studies.rewiring.mnist_comparison``;
the schema of :mod:`paper_figures.deep_r_comparison`). :func:`tabulate` makes one row per method
and connectivity, one row per method for the methods whose value is repeated along
``connectivity`` (the dense model, NCG), at the budgets the figure draws
(:func:`paper_figures.deep_r_comparison.at_drawn_budget`: the largest AIS budget; each model's
early-stopped training budget when the file has it, else the largest). A row holds the seed mean
of the test log-likelihood with its 95 % Student-t interval over seeds (the figure's bars), the
number of seeds scored, the mean final density, the training budgets used, the generalisation gap
(train - test, under the same log Z), the classifier's inception score, the median training time,
and three counts of seeds that make the number less than a result:

* ``rising_seeds``: the model was drawn at the largest budget scored and the last doubling of the
  training budget still gained more than :data:`RISING_SIGMAS` paired standard errors
  (``epoch_gain`` / ``epoch_gain_se``): the number still moves with the budget, and more training may
  raise it (a trend, or a PCD-trained model's wandering: the seeds' agreement tells which);
* ``ais_unconverged_seeds``: the AIS budgets of the file disagree (``log_partition_converged`` is
  0): the forward score is an upper bound of unknown slack;
* ``ais_degenerate_seeds``: the AIS populations collapsed at the largest AIS budget.

:func:`markdown` and :func:`latex` format it for a note or a paper (the flags as marks after the
score, explained under the table), and :func:`write` saves ``.md``, ``.tex`` and ``.csv`` (the
table's every number, one row per table row) atomically. A variable the file does not have is a
column the table does not have. ``python -m paper_figures.comparison_table FILE [--latex]`` prints
the table of one file (:func:`main`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from dilution.io import atomic_write

from .deep_r_comparison import (COMPARISON, DEEP_R, QUALITY, RISING_SIGMAS, TRAIN, at_drawn_budget, drawn_epochs,
                                still_rising)
from .intervals import seed_interval
from .schema import MissingData, check
from .schema import load as load_checked
from .style import provenance_text

__all__ = ["RISING_SIGMAS", "load", "tabulate", "markdown", "latex", "write", "main"]

_CLASSIFIER = "classifier_inception_score"
_MARKS = (("rising_seeds", "†"), ("ais_unconverged_seeds", "‡"), ("ais_degenerate_seeds", "*"))


def load(path: Path) -> tuple[xr.Dataset]:
    return (load_checked(path, COMPARISON),)


def _attrs(long_name: str, units: str) -> dict:
    return {"long_name": long_name, "units": units}


def _single_budget(ds: xr.Dataset) -> float:
    """The training budget of a file without an ``epochs`` dim, from its ``experiment`` attr (NaN if absent)."""
    try:
        epochs = json.loads(ds.attrs.get("experiment", "{}")).get("epochs")
    except (TypeError, ValueError):
        return math.nan
    return float(epochs) if isinstance(epochs, (int, float)) and not isinstance(epochs, bool) else math.nan


def _per_model(ds: xr.Dataset) -> dict[str, xr.DataArray]:
    """Per model (method, connectivity, seed) at the drawn budget: the budget, and the flag counts' inputs."""
    drawn = at_drawn_budget(ds)
    scored = drawn[QUALITY].notnull()
    out = {"quality": drawn[QUALITY]}
    if "epochs" in ds.dims:
        out["budget"] = drawn_epochs(ds).where(scored)
        rising = still_rising(ds)
        if rising is not None:
            out["rising"] = rising
    else:
        out["budget"] = xr.full_like(drawn[QUALITY], _single_budget(ds)).where(scored)
    if "log_partition_converged" in drawn:
        out["ais_unconverged"] = drawn["log_partition_converged"] == 0
    if "ais_degenerate" in drawn:
        out["ais_degenerate"] = drawn["ais_degenerate"] == 1
    for name in ("final_density", "train_seconds", _CLASSIFIER):
        if name in drawn:
            out[name] = drawn[name]
    if TRAIN in drawn:
        out["gap"] = drawn[TRAIN] - drawn[QUALITY]
    return {name: values.where(scored) if values.dtype.kind == "f" else values & scored
            for name, values in out.items()}


def tabulate(ds: xr.Dataset) -> xr.Dataset:
    """The comparison as a table (module docstring).

    Parameters
    ----------
    ds : xarray.Dataset
        ``studies.rewiring.mnist_comparison``'s result: ``test_log_likelihood`` over (``method``,
        ``connectivity``, ``seed``), possibly ``epochs`` and ``ais_betas``; every other variable the
        table reads is optional.

    Returns
    -------
    xarray.Dataset
        Along ``row`` (methods in the file's order, connectivities ascending within one): ``method``,
        ``connectivity`` (NaN on the rows of methods repeated along it), ``n_seeds``,
        ``test_log_likelihood`` with ``_lower`` / ``_upper``, ``epochs_min`` / ``epochs_max``, and as the
        file allows ``rising_seeds``, ``ais_unconverged_seeds``, ``ais_degenerate_seeds``,
        ``final_density``, ``generalisation_gap``, ``classifier_inception_score``, ``train_seconds``;
        each with ``long_name`` and ``units``; the file's ``deep_r_alpha`` and ``git_commit`` attrs.

    Raises
    ------
    SchemaError
        ``ds`` is not such a comparison (a variable or dimension missing, named).
    MissingData
        No model is scored.
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds must be an xarray.Dataset (mnist_comparison's result), got {type(ds).__name__}")
    check(ds, COMPARISON, "the comparison")
    if not ds[QUALITY].notnull().any():
        raise MissingData("the comparison has no scored model (every test log-likelihood is NaN)")
    per = _per_model(ds)
    repeated = ds["uses_connectivity"] if "uses_connectivity" in ds.coords else None
    rows = []  # positions: `sel(method=...)` would be sel's own `method` keyword (inexact matching), not the dim
    for m, method in enumerate(ds["method"].values):
        once = method == "dense" or (repeated is not None and not int(repeated.isel(method=m)))
        for c in range(1 if once else ds.sizes["connectivity"]):
            rows.append((m, c, once))
    columns: dict[str, list] = {}

    def put(name, value):
        columns.setdefault(name, []).append(value)

    for m, c, once in rows:
        at = {"method": m, "connectivity": c}
        quality = seed_interval(per["quality"].isel(at))
        put("method", str(ds["method"].values[m]))
        put("connectivity", math.nan if once else float(ds["connectivity"].values[c]))
        put("n_seeds", int(quality["n"]))
        for name in ("mean", "lower", "upper"):
            put(f"test_log_likelihood{'' if name == 'mean' else '_' + name}", float(quality[name]))
        budget = per["budget"].isel(at)
        put("epochs_min", float(budget.min(skipna=True)) if budget.notnull().any() else math.nan)
        put("epochs_max", float(budget.max(skipna=True)) if budget.notnull().any() else math.nan)
        for name, key in (("rising", "rising_seeds"), ("ais_unconverged", "ais_unconverged_seeds"),
                          ("ais_degenerate", "ais_degenerate_seeds")):
            if name in per:
                put(key, int(per[name].isel(at).sum()))
        for name, key in (("final_density", "final_density"), ("gap", "generalisation_gap"),
                          (_CLASSIFIER, _CLASSIFIER)):
            if name in per:
                put(key, float(per[name].isel(at).mean(skipna=True)))
        if "train_seconds" in per:
            put("train_seconds", float(per["train_seconds"].isel(at).median(skipna=True)))
    units = ds[QUALITY].attrs.get("units", "nats per sample")
    meaning = {
        "method": _attrs("method", "1"),
        "connectivity": _attrs("target connectivity (NaN: the method sets its own, repeated along connectivity)",
                               "1"),
        "n_seeds": _attrs("seeds scored", "1"),
        "test_log_likelihood": _attrs(f"{ds[QUALITY].attrs.get('long_name', QUALITY)}, mean over seeds", units),
        "test_log_likelihood_lower": _attrs("lower end of the 95% Student-t interval of the seed mean", units),
        "test_log_likelihood_upper": _attrs("upper end of the 95% Student-t interval of the seed mean", units),
        "epochs_min": _attrs("smallest training budget drawn among the seeds", "epochs"),
        "epochs_max": _attrs("largest training budget drawn among the seeds", "epochs"),
        "rising_seeds": _attrs(f"seeds at their largest budget whose last doubling gained > {RISING_SIGMAS:g} "
                               "paired standard errors", "1"),
        "ais_unconverged_seeds": _attrs("seeds whose AIS budgets disagree (log_partition_converged = 0)", "1"),
        "ais_degenerate_seeds": _attrs("seeds whose AIS populations collapsed at the largest AIS budget", "1"),
        "final_density": _attrs("fraction of connected pairs, mean over seeds", "1"),
        "generalisation_gap": _attrs("train - test log-likelihood, mean over seeds", units),
        _CLASSIFIER: _attrs("classifier inception score of the model's samples, mean over seeds", "1"),
        "train_seconds": _attrs("training time, median over seeds", "s"),
    }
    return xr.Dataset({name: ("row", values, meaning[name]) for name, values in columns.items()},
                      coords={"row": ("row", np.arange(len(rows)), _attrs("table row", "1"))},
                      attrs={k: v for k, v in ds.attrs.items() if k in ("deep_r_alpha", "git_commit", "study")})


def _number(value: float, digits: int) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{digits}f}"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 2 * 3600 else f"{seconds / 3600:.1f} h"


def _cells(table: xr.Dataset, latex: bool) -> tuple[list[str], list[list[str]]]:
    """Header and body cells, the columns the table has (``latex``: math and marks for LaTeX)."""
    pm, dash = (r"$\pm$", "--") if latex else ("±", "–")
    alpha = float(table.attrs.get("deep_r_alpha", 0.0))
    header = ["method", "connectivity", "seeds", "test log-likelihood"]
    optional = [(name, title) for name, title in (
        ("final_density", "density (%)"), ("epochs_max", "epochs"), ("generalisation_gap", "train - test"),
        (_CLASSIFIER, "inception score"), ("train_seconds", "training time")) if name in table]
    if not np.isfinite(table["epochs_max"].values).any():
        optional = [(n, t) for n, t in optional if n != "epochs_max"]
    header += [title for _, title in optional]
    body = []
    for i in range(table.sizes["row"]):
        row = table.isel(row=i)
        method = str(row["method"].values)
        if method == DEEP_R and alpha > 0:
            method += f" (alpha {alpha:g})"
        c = float(row["connectivity"])
        mean, low, high = (float(row[f"test_log_likelihood{s}"]) for s in ("", "_lower", "_upper"))
        score = _number(mean, 2)
        if math.isfinite(low) and math.isfinite(high):
            score += f" {pm} {(high - low) / 2:.2f}"
        marks = "".join(mark for name, mark in _MARKS if name in table and int(row[name]) > 0)
        if marks:
            score += f"$^{{{marks}}}$" if latex else marks
        cells = [method, dash if not math.isfinite(c) else f"{c:g}", str(int(row["n_seeds"])), score]
        for name, _ in optional:
            value = float(row[name])
            if name == "final_density":
                cells.append(_number(100 * value, 1))
            elif name == "epochs_max":
                low_e = float(row["epochs_min"])
                cells.append(dash if not math.isfinite(value) else
                             f"{low_e:.0f}" if low_e == value else f"{low_e:.0f}{dash}{value:.0f}")
            elif name == "generalisation_gap":
                cells.append(_number(value, 1))
            elif name == _CLASSIFIER:
                cells.append(_number(value, 2))
            else:
                cells.append(_duration(value))
        body.append([cell.replace("–", dash) if latex else cell for cell in cells])
    return header, body


def _footnotes(table: xr.Dataset) -> list[str]:
    notes = ["± is the half-width of the 95 % Student-t interval of the seed mean (none with one seed)."]
    meaning = {"rising_seeds": f"still rising: the last doubling of the training budget gained more than "
                               f"{RISING_SIGMAS:g} paired standard errors (the number still moves; more training may "
                               "raise it)",
               "ais_unconverged_seeds": "the AIS budgets disagree (the score is an upper bound of unknown slack)",
               "ais_degenerate_seeds": "the AIS populations collapsed at the largest AIS budget"}
    for name, mark in _MARKS:
        if name in table and int(table[name].sum()) > 0:
            notes.append(f"{mark} in at least one seed: {meaning[name]}.")
    return notes


def markdown(table: xr.Dataset, caption: str = "") -> str:
    """The table in Markdown: the caption, the table, then what its marks mean.

    Parameters
    ----------
    table : xarray.Dataset
        :func:`tabulate`'s result.
    caption : str
        A first paragraph (none when empty).

    Returns
    -------
    str
        Columns for the variables the table has; the score as ``mean ± half-width`` with ``†``, ``‡``,
        ``*`` where a seed is flagged, and a line per mark used saying what it means.
    """
    header, body = _cells(table, latex=False)
    lines = ([caption, ""] if caption else []) + ["| " + " | ".join(header) + " |",
                                                  "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines + [""] + _footnotes(table)) + "\n"


def latex(table: xr.Dataset, caption: str = "") -> str:
    """The table as a LaTeX ``table`` float with a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``):
    :func:`markdown`'s columns and marks (``\\dag``, ``\\ddag``, ``*`` as superscripts); the caption is
    ``caption`` followed by what the marks mean."""
    header, body = _cells(table, latex=True)

    def escape(text: str) -> str:
        for plain, tex in (("%", r"\%"), ("_", r"\_"), ("±", r"$\pm$"), ("†", r"\dag{}"), ("‡", r"\ddag{}")):
            text = text.replace(plain, tex)
        return text

    def marks(cell: str) -> str:  # inside $^{...}$ already: the symbols only
        return cell.replace("†", r"\dag").replace("‡", r"\ddag")

    text = " ".join([caption] * bool(caption) + _footnotes(table))
    lines = [r"\begin{table}", r"\centering", r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
             " & ".join(escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(marks(cell.replace("%", r"\%").replace("_", r"\_")) for cell in row) + r" \\"
              for row in body]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{escape(text)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write(table: xr.Dataset, stem: str | Path, *, caption: str, datasets: Sequence[xr.Dataset] = (),
          sources: Sequence[str | Path] = ()) -> tuple[Path, Path, Path]:
    """Save ``table`` (:func:`tabulate`'s result) as ``stem.md``, ``stem.tex`` and ``stem.csv``.

    Each file is written atomically; the Markdown (an HTML comment) and the LaTeX (a ``%`` line) end with
    the provenance of ``datasets`` and the ``sources`` read, as :func:`paper_figures.style.save` puts them
    in a figure's metadata; the CSV holds every variable of ``table``, one line per row. Returns the
    three paths, in that order; ``stem``'s folder must exist.
    """
    stem = Path(stem)
    provenance = "; ".join(filter(None, [provenance_text(datasets),
                                         "sources=" + ",".join(str(s) for s in sources) if sources else ""]))
    texts = {"md": markdown(table, caption) + (f"\n<!-- {provenance} -->\n" if provenance else ""),
             "tex": latex(table, caption) + (f"% {provenance}\n" if provenance else ""),
             "csv": table.drop_vars("row").to_dataframe().to_csv(index=False)}
    out = []
    for suffix, text in texts.items():
        path = stem.with_name(f"{stem.name}.{suffix}")
        with atomic_write(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        out.append(path)
    return out[0], out[1], out[2]


def main(argv: list[str] | None = None) -> int:
    """``python -m paper_figures.comparison_table FILE [--latex]``: print the table of one comparison file.
    Exit status 0, or 2 with a one-line error when the file cannot be read or is not a comparison."""
    parser = argparse.ArgumentParser(prog="python -m paper_figures.comparison_table",
                                     description="Print the rewiring comparison table of a file written by "
                                                 "studies.rewiring.mnist_comparison (Markdown, or LaTeX).")
    parser.add_argument("file", type=Path, help="the comparison's netCDF file (e.g. rewiring-mnist-500.nc)")
    parser.add_argument("--latex", action="store_true", help="print a LaTeX table instead of Markdown")
    args = parser.parse_args(argv)
    try:
        table = tabulate(*load(args.file))
    except (OSError, ValueError) as err:  # SchemaError and MissingData are ValueErrors
        print(f"error: {err}", file=sys.stderr)
        return 2
    print((latex if args.latex else markdown)(table), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
