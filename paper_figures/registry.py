"""Every figure of the paper: its data files, caption and the command that makes its data.

:data:`FIGURES` is the table; :func:`render_all` draws every figure whose files exist under a
data folder (PDF and PNG through :func:`paper_figures.style.save`), lists the others with the
commands that make their data, and writes an ``index.html`` gallery (thumbnail, caption,
command) beside the figures.

A figure's inputs are glob patterns relative to the data folder; each must match at least one
file, else the figure is missing. Single-file patterns pass their file to the figure module's
``load``; a pattern with a wildcard passes every match, sorted.

:data:`TABLES` are the tables of the paper, made the same way from the same files: their module's
``load``, then ``tabulate`` (a Dataset along ``row``) and ``write`` (``.md``, ``.tex`` and ``.csv``);
:func:`render_all` writes them beside the figures and the gallery shows them.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal, NamedTuple

import matplotlib.pyplot as plt
import xarray as xr

from dilution.io import atomic_write

from . import (
    comparison_table,
    connectivity_aging,
    deep_r_comparison,
    degree_maps,
    discretisation_bias,
    divergence,
    estimator_bias,
    finite_size,
    inclusion_maps,
    ising_couplings,
    ncg_trajectories,
    phase_diagram,
    quality_fraction,
    retrain_scratch,
    sample_grids,
    training_curves,
)
from .schema import MissingData
from .style import save

__all__ = ["STUDY_FILE", "TRANSITION_FILE", "MASKS_FILE", "ISING_FILE", "SAMPLES_FILE", "GAP_FILE", "study_input",
           "DATA_COMMANDS", "FigureSpec", "FIGURES", "TABLES",
           "Status", "Outcome", "Report", "find_inputs", "render", "render_table", "render_all", "write_gallery"]

# The files of a study folder ``study-<name>/``: ``dilution study run`` writes study.nc (the merged
# study, studies.merge); its --report (studies.report) the transition table, the mask summary, the
# effective couplings of a dense and a pruned model, samples per fraction and the gap table.
STUDY_FILE, TRANSITION_FILE, MASKS_FILE = "study.nc", "transition.nc", "masks.nc"
ISING_FILE, SAMPLES_FILE, GAP_FILE = "ising.nc", "samples.nc", "gap.nc"
# ``dilution reproduce --output DIR`` writes every file into DIR/data: {reproduce} is that DIR
# when the data folder is named "data", else a placeholder saying so.
REPRODUCE = "dilution reproduce --scale smoke --output {reproduce}"


def study_input(study: str, file: str) -> str:
    """The pattern of one file of a study's folder, relative to the data folder."""
    return f"study-{study}/{file}"


def _study_commands(study: str) -> dict[str, str]:
    # the run writes study.nc; --report writes the analysis files beside it (studies.report)
    command = f"dilution study run {study} --output {{data}}/study-{study} --report"
    return {study_input(study, f): command
            for f in (STUDY_FILE, TRANSITION_FILE, MASKS_FILE, ISING_FILE, SAMPLES_FILE, GAP_FILE)}


# Data file pattern -> the command that makes it ({data}: the data folder).
DATA_COMMANDS = {
    **_study_commands("quick"), **_study_commands("teacher"), **_study_commands("mnist"),
    "rewiring-ncg.nc": REPRODUCE,
    "rewiring-mnist.nc": REPRODUCE,
    "rewiring-mnist-500.nc": REPRODUCE,
    "stationary-inclusion.nc": REPRODUCE,
    "stationary-divergence.nc": REPRODUCE,
    "stationary-divergence-soft-deep-r.nc": REPRODUCE,
    # studies.stationary.run_bias_experiments (also `python -m studies.stationary --bias --out {data}`)
    "stationary-discretisation.nc": REPRODUCE,
    "stationary-discretisation-prior.nc": REPRODUCE,
    "stationary-estimator-bias.nc": REPRODUCE,
    "stationary-estimator-bias-deep-r.nc": REPRODUCE,
    "train-*/history.nc": "dilution train --output {data}/train-teacher",
}


@dataclass(frozen=True)
class FigureSpec:
    """One figure.

    Parameters
    ----------
    name : str
        File stem of the figure (``<name>.pdf``, ``<name>.png``).
    caption : str
    inputs : tuple of str
        Glob patterns relative to the data folder (keys of :data:`DATA_COMMANDS`).
    module : module
        Has ``load(*paths) -> tuple`` and ``draw(*loaded) -> Figure``.
    """

    name: str
    caption: str
    inputs: tuple[str, ...]
    module: ModuleType

    def commands(self, data: str | Path, inputs: Sequence[str] | None = None) -> list[str]:
        """The distinct commands that make this figure's data (or only ``inputs`` of it), in input order."""
        out = []
        data = Path(data)
        reproduce = data.parent if data.name == "data" else "DIR (it writes DIR/data: pass --data DIR/data)"
        for pattern in self.inputs if inputs is None else inputs:
            command = DATA_COMMANDS[pattern].format(data=data, reproduce=reproduce)
            if command not in out:
                out.append(command)
        return out


_STUDY_FIGURES = (
    # (name, caption, files of the study folder, module, studies)
    ("quality-vs-fraction",
     "Test log-likelihood against the pruning fraction, one panel per pruning time, seed means with 95 % "
     "Student-t bands over seeds; the dash-dotted line and shaded span are the located transition and its "
     "bootstrap interval; open circles mark fractions where a seed did not converge.",
     (STUDY_FILE, TRANSITION_FILE), quality_fraction, ("quick", "teacher", "mnist")),
    ("phase-diagram",
     "Phase diagram: seed-mean test log-likelihood over pruning fraction and pruning time, one panel per "
     "protocol; white diamonds: the located transition with its bootstrap interval.",
     (STUDY_FILE, TRANSITION_FILE), phase_diagram, ("quick", "mnist")),
    ("retrain-vs-scratch",
     "Retrained (fine-tuned, rewound or re-initialised survivors) against trained from scratch on the same mask; "
     "bottom: the gap from the study's gap table with its 95 % bootstrap interval.", (STUDY_FILE, GAP_FILE),
     retrain_scratch, ("quick", "mnist")),
    ("finite-size-scaling",
     "Location and width of the transition against the number of hidden units, with bootstrap intervals over "
     "seeds.", (TRANSITION_FILE,), finite_size, ("teacher",)),
    ("degree-maps",
     "Visible-unit degrees (hidden units still connected, mean over seeds) on the image grid at each pruning "
     "fraction; with a planted teacher, the fraction of its connections the pruned student kept.",
     (MASKS_FILE,), degree_maps, ("quick", "mnist")),
    ("ising-couplings",
     "Effective Ising couplings J_jk of the visible marginal (the generalized Ising mapping) of a dense and a "
     "pruned model: distribution over pairs, and the strongest couplings on the image grid (blue J > 0, "
     "vermillion J < 0).", (ISING_FILE,), ising_couplings, ("quick", "mnist")),
    ("sample-grids",
     "Samples of the trained model at each pruning fraction (Gibbs chains from random states; black = 1).",
     (SAMPLES_FILE,), sample_grids, ("quick", "mnist")),
)

FIGURES = tuple(
    FigureSpec(f"{name}-{study}", f"{caption} Study: {study}.", tuple(study_input(study, f) for f in files), module)
    for name, caption, files, module, studies in _STUDY_FIGURES for study in studies
) + (
    FigureSpec("ncg-trajectories",
               "NCG on bars-and-stripes: connection density and exact NLL against epochs, this toolkit (solid) "
               "against the reference (dashed: the authors' code, or this toolkit with its quirks), seed means with "
               "95 % bands.", ("rewiring-ncg.nc",),
               ncg_trajectories),
    FigureSpec("deep-r-vs-static",
               "DEEP R against static random masks and magnitude pruning at equal connectivity: test "
               "log-likelihood (each model at the training budget its validation log-likelihood picks, when the file "
               "has several), seed means with 95 % intervals; open circles: a seed still rising at the budget drawn "
               "(its last doubling gained more than 3 paired standard errors: the number still moves); beside it, "
               "when the file has the training images' log-likelihood, the generalisation gap (train - test).",
               ("rewiring-mnist.nc",), deep_r_comparison),
    FigureSpec("deep-r-vs-static-500",
               "As deep-r-vs-static with 500 hidden units (784 x 500 at paper scale): test log-likelihood by AIS "
               "with resampling, seed means with 95 % intervals.", ("rewiring-mnist-500.nc",), deep_r_comparison),
    FigureSpec("connectivity-aging",
               "Aging of the connectivity: overlap C(t_w, t) = |A & B| / sqrt(|A| |B|) of the connections present "
               "after t epochs (A) with those after the previous training budget t_w (B), against t (log2 axis), per "
               "rewiring method and connectivity (the 784 x 500 models of deep-r-vs-static-500): seed means (lines) "
               "and seeds (points); dashed, the chance level of independent random masks with those counts. A "
               "rewiring at equilibrium forgets its mask at a fixed rate: the overlap depends on the lag t - t_w, "
               "which doubles with every doubling of the budget, so it falls towards the chance level. An aging "
               "(glassy) one slows down as it ages: the overlap depends on the ratio t / t_w alone, a flat line at "
               "doubling budgets, far above chance. Static masks and the dense model (overlap 1) and magnitude "
               "pruning (a run per budget) are not drawn.", ("rewiring-mnist-500.nc",), connectivity_aging),
    FigureSpec("inclusion-maps",
               "Marginal inclusion probabilities of every connection: the reference posterior beside DEEP R, "
               "soft-DEEP R and NCG.", ("stationary-inclusion.nc",), inclusion_maps),
    FigureSpec("divergence-vs-steps",
               "Divergence (KL and total variation) of DEEP R's mask law from the size-K reference posterior "
               "against run length, per gradient estimator; dotted: the noise floor set by the effective sample "
               "size, grey up to its 95 % quantile.",
               ("stationary-divergence.nc",), divergence),
    FigureSpec("divergence-vs-steps-soft-deep-r",
               "As divergence-vs-steps, for soft-DEEP R against its unrestricted reference posterior.",
               ("stationary-divergence-soft-deep-r.nc",), divergence),
    FigureSpec("discretisation-bias",
               "Discretisation bias: |stationary mean - reference| of each statistic against the learning rate at "
               "equal time eta x steps, one column per rule; top: the posterior against a long-run reference "
               "sampler, bottom: the prior-only dynamics against their exact stationary means. Filled: the 95 % "
               "interval excludes 0 (bars: its ends); open triangles: it includes 0 (drawn at its larger |end|). "
               "Dashed and dotted: slopes 1 (O(eta)) and 1/2 (O(sqrt eta)).",
               ("stationary-discretisation.nc", "stationary-discretisation-prior.nc"), discretisation_bias),
    FigureSpec("estimator-bias",
               "Inclusion probability of every connection minus the reference posterior's, per gradient estimator "
               "(exact, CD-1, CD-10, PCD), with 95 % intervals; top soft-DEEP R, bottom DEEP R.",
               ("stationary-estimator-bias.nc", "stationary-estimator-bias-deep-r.nc"), estimator_bias),
    FigureSpec("training-curves",
               "Exact log-likelihood (or reconstruction error) of training runs against parameter updates.",
               ("train-*/history.nc",), training_curves),
)


# The tables: FigureSpecs whose module has ``load``, ``tabulate`` and ``write`` (render_table).
TABLES = (
    FigureSpec("deep-r-vs-static-table",
               "DEEP R against static random masks, magnitude pruning, the dense model and NCG on MNIST (the models of "
               "deep-r-vs-static, at the budgets it draws): test log-likelihood, seed mean with the half-width of its "
               "95 % Student-t interval.", ("rewiring-mnist.nc",), comparison_table),
    FigureSpec("deep-r-vs-static-500-table",
               "As deep-r-vs-static-table with 500 hidden units (the models of deep-r-vs-static-500): test "
               "log-likelihood by AIS with resampling at the largest AIS budget of the file.",
               ("rewiring-mnist-500.nc",), comparison_table),
)


Status = Literal["drawn", "missing", "failed"]


class Outcome(NamedTuple):
    """What became of one figure."""

    figure: FigureSpec
    status: Status
    files: tuple[Path, ...]  # the PDF and PNG when drawn, the missing input patterns when missing
    error: str = ""  # why it failed, or what a file that exists lacks when missing


class Report(NamedTuple):
    """The outcome of every figure, in :data:`FIGURES` order, the gallery written, and the outcome of
    every table ("drawn": its files written)."""

    outcomes: tuple[Outcome, ...]
    gallery: Path
    tables: tuple[Outcome, ...] = ()

    def by_status(self, status: Status) -> list[Outcome]:
        """The figures with ``status`` (the tables: :meth:`tables_by_status`)."""
        return [o for o in self.outcomes if o.status == status]

    def tables_by_status(self, status: Status) -> list[Outcome]:
        return [o for o in self.tables if o.status == status]


def find_inputs(figure: FigureSpec, data: Path) -> tuple[list[Path], list[str]]:
    """The files matching ``figure``'s inputs under ``data`` and the patterns that match nothing."""
    found, missing = [], []
    for pattern in figure.inputs:
        matches = sorted(p for p in data.glob(pattern) if p.is_file())
        if matches:
            found.extend(matches)
        else:
            missing.append(pattern)
    return found, missing


def _datasets(loaded) -> list[xr.Dataset]:
    """The Datasets inside a module's ``load`` result (training curves nest them in (name, ds) pairs)."""
    out = []
    for item in loaded:
        if isinstance(item, xr.Dataset):
            out.append(item)
        elif isinstance(item, (list, tuple)):
            out.extend(_datasets(item))
    return out


def _attempt(spec: FigureSpec, data: Path, make) -> Outcome:
    """``make(paths, loaded)`` -> the files written, for ``spec`` if its data exist; never raises (the
    outcome says what failed, so one bad file, figure or table does not stop the others)."""
    paths, missing = find_inputs(spec, data)
    if missing:
        return Outcome(spec, "missing", tuple(Path(m) for m in missing))
    try:
        written = make(paths, spec.module.load(*paths))
    except MissingData as err:
        return Outcome(spec, "missing", (), str(err))
    except Exception as err:  # noqa: BLE001 - one failure must not stop the others; it is reported
        return Outcome(spec, "failed", tuple(paths), f"{type(err).__name__}: {err}")
    return Outcome(spec, "drawn", tuple(written))


def render(figure: FigureSpec, data: Path, out: Path, dpi: int = 200) -> Outcome:
    """Draw one figure if its data exist (PNG at ``dpi``); never raises (:func:`_attempt`)."""

    def draw(paths, loaded):
        fig = figure.module.draw(*loaded)
        try:
            return save(fig, out / figure.name, caption=figure.caption, datasets=_datasets(loaded), sources=paths,
                        dpi=dpi)
        finally:
            plt.close(fig)

    return _attempt(figure, data, draw)


def render_table(table: FigureSpec, data: Path, out: Path) -> Outcome:
    """Write one table (``.md``, ``.tex``, ``.csv``) if its data exist; never raises, as :func:`render`."""
    return _attempt(table, data, lambda paths, loaded: table.module.write(
        table.module.tabulate(*loaded), out / table.name, caption=table.caption, datasets=_datasets(loaded),
        sources=paths))


def write_gallery(outcomes: Sequence[Outcome], out: Path, data: Path, tables: Sequence[Outcome] = ()) -> Path:
    """``out/index.html``: each drawn figure's thumbnail (linking to its PDF), caption and data command;
    each written table (its Markdown, linking to the three files); then the missing and failed ones
    with their commands."""
    parts = ["<!doctype html>", '<html><head><meta charset="utf-8"><title>paper figures</title>',
             "<style>body{font-family:sans-serif;max-width:60em;margin:auto}figure{margin:2em 0}"
             "img{max-width:28em;border:1px solid #ccc}code{background:#f4f4f4}</style></head><body>",
             "<h1>Paper figures</h1>", f"<p>Data folder: <code>{html.escape(str(data))}</code></p>"]
    for o in outcomes:
        commands = "<br>".join(f"<code>{html.escape(c)}</code>" for c in o.figure.commands(data))
        name = html.escape(o.figure.name)
        if o.status == "drawn":
            pdf, png = (p.name for p in o.files)
            parts.append(f'<figure id="{name}"><a href="{html.escape(pdf)}"><img src="{html.escape(png)}" '
                         f'alt="{name}"></a><figcaption><b>{name}</b>: {html.escape(o.figure.caption)}<br>'
                         f"Data made by: {commands}</figcaption></figure>")
    written = [o for o in tables if o.status == "drawn"]
    if written:
        parts.append("<h2>Tables</h2>")
    for o in written:
        name = html.escape(o.figure.name)
        links = ", ".join(f'<a href="{html.escape(p.name)}">{html.escape(p.suffix[1:])}</a>' for p in o.files)
        commands = "<br>".join(f"<code>{html.escape(c)}</code>" for c in o.figure.commands(data))
        text = o.files[0].read_text(encoding="utf-8")
        parts.append(f'<section id="{name}"><p><b>{name}</b> ({links})</p><pre>{html.escape(text)}</pre>'
                     f"<p>Data made by: {commands}</p></section>")
    not_drawn = [o for o in (*outcomes, *tables) if o.status != "drawn"]
    if not_drawn:
        parts.append("<h2>Not drawn</h2><ul>")
        for o in not_drawn:
            why = o.error or "missing " + ", ".join(str(p) for p in o.files)
            missing = [str(p) for p in o.files] if o.status == "missing" and o.files else None
            needed = o.figure.commands(data, missing)
            commands = "<br>".join(f"<code>{html.escape(c)}</code>" for c in needed)
            parts.append(f"<li><b>{html.escape(o.figure.name)}</b> ({html.escape(why)}); make its data with: "
                         f"{commands}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    path = out / "index.html"
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path


def render_all(data: str | Path, out: str | Path, figures: Sequence[FigureSpec] = FIGURES, dpi: int = 200,
               tables: Sequence[FigureSpec] = TABLES) -> Report:
    """Draw every figure of ``figures`` and write every table of ``tables`` whose data exist under
    ``data`` into ``out`` (created), and the gallery."""
    if not isinstance(dpi, int) or isinstance(dpi, bool) or dpi < 10:
        raise ValueError(f"dpi must be an integer >= 10 (the PNG resolution), got {dpi!r}")
    data, out = Path(data), Path(out)
    if not data.is_dir():
        what = "is a file, not a folder" if data.exists() else "does not exist"
        raise FileNotFoundError(f"data folder {data} {what} (pass --data DIR, the folder holding "
                                "study-<name>/, rewiring-*.nc, stationary-*.nc, train-*/)")
    out.mkdir(parents=True, exist_ok=True)
    outcomes = tuple(render(f, data, out, dpi) for f in figures)
    written = tuple(render_table(t, data, out) for t in tables)
    return Report(outcomes, write_gallery(outcomes, out, data, written), written)
