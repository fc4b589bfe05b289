"""The report of a finished study: the analysis files beside ``study.nc``, a text table and the figures.

:func:`study_report` merges the study and writes, atomically, into its output folder:

* ``transition.nc``: :func:`analysis.transition.transition_table`, with the variables of
  :func:`analysis.transition.scaling_table` merged in when the study has several ``n_hidden``;
* ``masks.nc``: :func:`analysis.masks.mask_summary` of the final masks of the largest
  ``n_hidden`` (over ``protocol``, ``pruning_time``, ``pruning_fraction``, ``seed``), with the
  planted teacher's mask for teacher studies (``teacher_recall``: the planted-core overlap);
* ``ising.nc``: :func:`analysis.ising.ising_parameters` of a dense and the most pruned model
  of one replica, stacked over ``model``;
* ``samples.nc``: Gibbs samples (:func:`dilution.gibbs.sample`, seeded) of one model per
  pruning fraction, stacked over ``pruning_fraction``;
* ``gap.nc``: :func:`analysis.transition.gap_table` of the first retrained protocol (kind
  ``after``) against the first ``scratch`` one, when the study has both;
* ``report.json``: what the files were made from (the spec and the finished points), so a
  rerun on an unchanged study recomputes nothing.

The files follow the schemas documented in :mod:`paper_figures`; :func:`draw_figures` draws a
study's figures by running ``python -m paper_figures`` in a subprocess (``studies`` does not
import ``paper_figures``: the figures only read files).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import xarray as xr

from dilution import io
from dilution.model import RBM
from dilution.provenance import provenance
from dilution.rng import derive_seed

from .merge import merge
from .point import task_paths
from .refine import refined_spec
from .spec import MnistData, StudySpec, TeacherData
from .tasks import build_graph

__all__ = ["REPORT_FILES", "StudyReport", "study_report", "format_transitions", "figure_study_name",
           "draw_study_figures", "draw_figures"]

REPORT_FILES = ("transition.nc", "masks.nc", "ising.nc", "samples.nc", "gap.nc")
_STAMP = "report.json"
_MNIST_SHAPE = (28, 28)


class StudyReport(NamedTuple):
    """What :func:`study_report` made.

    Attributes
    ----------
    study : xarray.Dataset
        The merged study.
    transition : xarray.Dataset
    files : dict of str to Path
        The report files written (or found up to date), by name.
    recomputed : bool
        False when every file was up to date and nothing was computed.
    """

    study: xr.Dataset
    transition: xr.Dataset
    files: dict[str, Path]
    recomputed: bool


def _stamp(spec: StudySpec, study: xr.Dataset, n_samples: int, n_sweeps: int, axis: str) -> dict:
    return {"spec": spec.to_json(), "finished": np.flatnonzero(study["finished"].values.ravel()).tolist(),
            "n_samples": n_samples, "n_sweeps": n_sweeps, "axis": axis}


def _readable(path: Path) -> xr.Dataset | None:
    """The Dataset in ``path``, or None when it cannot be read (a file the report remakes)."""
    try:
        return io.load_dataset(path)
    except (OSError, ValueError):
        return None


def _cached(out: Path, stamp: dict) -> tuple[xr.Dataset, dict[str, Path]] | None:
    """The transition and the files of an up-to-date report in ``out``; None when something is
    stale, missing or unreadable (a truncated file, a damaged report.json), which is then remade."""
    try:
        saved = json.loads((out / _STAMP).read_text(encoding="utf-8"))
        if saved.get("stamp") != stamp or not all((out / f).exists() for f in saved.get("files", ())):
            return None
        transition = _readable(out / "transition.nc")
        if transition is None or _readable(out / "study.nc") is None:
            return None
        return transition, {f: out / f for f in saved["files"]}
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def _model(path: Path) -> RBM:
    ds = io.load_dataset(path)
    return RBM(*(np.ascontiguousarray(ds[k].values) for k in ("weights", "visible_bias", "hidden_bias")),
               np.ascontiguousarray(ds["mask"].values.astype(bool)))


def _cells(spec: StudySpec, study: xr.Dataset) -> dict[tuple, Path]:
    """(protocol, pruning_time, pruning_fraction, n_hidden, seed) -> result file, finished points only."""
    out = {}
    for p, key in build_graph(spec).cells.items():
        at = {"protocol": p.protocol, "pruning_time": p.pruning_time, "pruning_fraction": p.pruning_fraction,
              "n_hidden": p.n_hidden, "seed": p.seed}
        if bool(study["finished"].sel(at)):
            out[tuple(at.values())] = task_paths(spec.output, key)["result"]
    return out


def _teacher_mask(data: TeacherData) -> np.ndarray:
    from dilution.data.teacher import planted_teacher

    # The same call as studies.data.load_data: the study's data were drawn from this teacher.
    teacher = planted_teacher(
        data.n_visible, data.n_hidden, connectivity=data.connectivity, weight_scale=data.weight_scale,
        visible_bias_scale=data.visible_bias_scale, hidden_bias_scale=data.hidden_bias_scale,
        visible_bias_mean=data.visible_bias_mean, hidden_bias_mean=data.hidden_bias_mean, seed=data.seed,
    )
    return np.asarray(teacher.rbm.mask, dtype=bool)


def _image_attrs(spec: StudySpec) -> dict:
    return {"image_shape": list(_MNIST_SHAPE)} if isinstance(spec.data, MnistData) else {}


def _mask_dataset(spec: StudySpec, study: xr.Dataset, cells: dict) -> xr.Dataset | None:
    """mask_summary per (protocol, pruning_time) block of the largest size, over the seeds that
    finished every fraction of the block; blocks without such a seed are left out (NaN)."""
    from analysis.masks import mask_summary

    size = max(spec.n_hidden)
    teacher = _teacher_mask(spec.data) if isinstance(spec.data, TeacherData) else None
    fractions = [float(f) for f in study["pruning_fraction"].values]
    parts = []
    for protocol in study["protocol"].values:
        for time in study["pruning_time"].values:
            seeds = [int(s) for s in study["seed"].values
                     if all((protocol, time, f, size, int(s)) in cells for f in fractions)]
            if not seeds:
                continue
            stack = np.stack([[_model(cells[(protocol, time, f, size, s)]).mask for s in seeds]
                              for f in fractions])
            masks = xr.DataArray(stack, dims=("pruning_fraction", "seed", "visible", "hidden"),
                                 coords={"pruning_fraction": study["pruning_fraction"], "seed": np.array(seeds)})
            summary = mask_summary(masks, teacher_mask=teacher,
                                   seed=int(derive_seed(0, "studies.report.masks").generate_state(1)[0]))
            parts.append(summary.expand_dims(protocol=[str(protocol)], pruning_time=[str(time)]))
    if not parts:
        return None
    ds = xr.combine_by_coords(parts, combine_attrs="drop_conflicts", join="outer")
    for name, (long_name, units) in {"protocol": ("pruning protocol", "1"),
                                     "pruning_time": ("pruning time", "1"),
                                     "seed": ("replica seed", "1")}.items():
        ds[name].attrs.update(long_name=long_name, units=units)
    ds.attrs = provenance(title=f"study {spec.name!r}: mask statistics of the final masks at n_hidden = {size}",
                          study=spec.name, n_hidden=size, teacher=int(teacher is not None), **_image_attrs(spec))
    return ds


def _replica(study: xr.Dataset, cells: dict, size: int) -> tuple[str, str, int, list[float]] | None:
    """The first (protocol, pruning_time, seed) at ``size`` with the most finished fractions."""
    best = None
    for protocol in study["protocol"].values:
        for time in study["pruning_time"].values:
            for seed in study["seed"].values:
                done = [float(f) for f in study["pruning_fraction"].values
                        if (protocol, time, float(f), size, int(seed)) in cells]
                if done and (best is None or len(done) > len(best[3])):
                    best = (str(protocol), str(time), int(seed), done)
    return best


def _ising_dataset(spec: StudySpec, cells: dict, replica) -> xr.Dataset | None:
    from analysis.ising import ising_parameters

    protocol, time, seed, done = replica
    size = max(spec.n_hidden)
    if len(done) < 2:
        return None
    picks = {"dense": min(done), f"pruned {max(done):g}": max(done)}
    couplings = [ising_parameters(_model(cells[(protocol, time, f, size, seed)]))["coupling"] for f in picks.values()]
    coupling = xr.concat(couplings, dim="model").assign_coords(
        model=("model", list(picks), {"long_name": "model (dense, or pruned at this fraction)", "units": "1"}),
        pruning_fraction=("model", list(picks.values()), {"long_name": "fraction of connections pruned", "units": "1"}))
    coupling.attrs.setdefault("long_name", "effective pairwise coupling J_jk")
    coupling.attrs.setdefault("units", "1")
    ds = coupling.to_dataset(name="coupling")
    for dim in ("visible", "visible_2"):
        if dim not in ds.coords:
            ds = ds.assign_coords({dim: (dim, np.arange(ds.sizes[dim]), {"long_name": "visible unit index",
                                                                          "units": "1"})})
    ds.attrs = provenance(title=f"study {spec.name!r}: effective Ising couplings", study=spec.name, protocol=protocol,
                          pruning_time=time, n_hidden=size, seed=seed, **_image_attrs(spec))
    return ds


def _samples_dataset(spec: StudySpec, cells: dict, replica, n_samples: int, n_sweeps: int) -> xr.Dataset:
    from dilution.gibbs import sample

    protocol, time, seed, done = replica
    size = max(spec.n_hidden)
    draws = []
    for i, f in enumerate(done):
        chain_seed = int(derive_seed(seed, "studies.report.samples", size, i).generate_state(1)[0])
        draws.append(np.asarray(sample(_model(cells[(protocol, time, f, size, seed)]), n_samples, n_sweeps,
                                       seed=chain_seed, progress=False), dtype=np.int8))
    coords = {"pruning_fraction": ("pruning_fraction", np.array(done),
                                   {"long_name": "fraction of connections pruned", "units": "1"}),
              "sample": ("sample", np.arange(n_samples), {"long_name": "Gibbs chain", "units": "1"}),
              "visible": ("visible", np.arange(draws[0].shape[1]), {"long_name": "visible unit index", "units": "1"})}
    samples = ("pruning_fraction", "sample", "visible"), np.stack(draws), {
        "long_name": f"visible state after {n_sweeps} Gibbs sweeps from a uniform random state", "units": "1"}
    return xr.Dataset({"samples": samples}, coords=coords, attrs=provenance(
        title=f"study {spec.name!r}: samples per pruning fraction", study=spec.name, protocol=protocol,
        pruning_time=time, n_hidden=size, seed=seed, n_sweeps=n_sweeps, **_image_attrs(spec)))


def _gap_dataset(spec: StudySpec, study: xr.Dataset) -> xr.Dataset | None:
    from analysis.transition import gap_table

    kinds = {p.name: p.kind for p in spec.protocols}
    after = [n for n, k in kinds.items() if k == "after"]
    scratch = [n for n, k in kinds.items() if k == "scratch"]
    if not (after and scratch):
        return None
    return gap_table(study, {"protocol": after[0]}, {"protocol": scratch[0]},
                     seed=int(derive_seed(0, "studies.report.gap").generate_state(1)[0]))


def _transition_dataset(study: xr.Dataset, axis: str) -> xr.Dataset:
    from analysis.transition import scaling_table, transition_table

    seed = int(derive_seed(0, "studies.report.transition").generate_state(1)[0])
    table = transition_table(study, seed=seed, axis=axis)
    if study.sizes["n_hidden"] > 1:
        scaling = scaling_table(study, table)
        table = table.assign({k: scaling[k] for k in scaling.data_vars if k not in table})
    return table


def study_report(spec: StudySpec, *, study: xr.Dataset | None = None, n_samples: int = 64, n_sweeps: int = 1000,
                 force: bool = False, axis: str = "fraction") -> StudyReport:
    """Merge ``spec``'s study and write its report files beside ``study.nc`` (module docstring).

    Parameters
    ----------
    spec : StudySpec
        The study (its ``[refine]`` fractions included, as :func:`studies.refine.refined_spec`).
    study : xarray.Dataset, optional
        ``spec``'s merged study, when the caller has it (:func:`studies.runner.run_study`'s);
        default: merged here.
    n_samples : int
        Gibbs chains per model of ``samples.nc``.
    n_sweeps : int
        Sweeps of each chain.
    force : bool
        Recompute even when ``report.json`` says the files are up to date.
    axis : "fraction" or "log-remaining"
        The axis of the transition fit (:func:`analysis.transition.fit_transition`).

    Returns
    -------
    StudyReport
    """
    for name, value in (("n_samples", n_samples), ("n_sweeps", n_sweeps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    spec = refined_spec(spec)
    out = Path(spec.output)
    study_path = out / "study.nc"
    study = merge(spec) if study is None else study
    from analysis.transition import axis_position

    axis_position(0.0, axis)  # an unknown axis fails before anything is written
    stamp = _stamp(spec, study, n_samples, n_sweeps, axis)
    stamp_path = out / _STAMP
    if not force and stamp_path.exists() and study_path.exists():
        cached = _cached(out, stamp)
        if cached is not None:
            return StudyReport(study, *cached, False)
    on_disk = _readable(study_path) if study_path.exists() else None
    if on_disk is None or not study.identical(on_disk):
        io.save(study, study_path)
    files = {"study.nc": study_path}
    transition = _transition_dataset(study, axis)
    files["transition.nc"] = io.save(transition, out / "transition.nc")
    cells = _cells(spec, study)
    masks = _mask_dataset(spec, study, cells)
    if masks is not None:
        files["masks.nc"] = io.save(masks, out / "masks.nc")
    replica = _replica(study, cells, max(spec.n_hidden))
    if replica is not None:
        ising = _ising_dataset(spec, cells, replica)
        if ising is not None:
            files["ising.nc"] = io.save(ising, out / "ising.nc")
        files["samples.nc"] = io.save(_samples_dataset(spec, cells, replica, n_samples, n_sweeps), out / "samples.nc")
    gap = _gap_dataset(spec, study)
    if gap is not None:
        files["gap.nc"] = io.save(gap, out / "gap.nc")
    with io.atomic_write(stamp_path) as tmp:
        tmp.write_text(json.dumps({"stamp": stamp, "files": sorted(p.name for p in files.values())}), encoding="utf-8")
    return StudyReport(study, transition, files, True)


def _fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.3f}"


def format_transitions(study: xr.Dataset, transition: xr.Dataset) -> str:
    """The transition table as text: per protocol x pruning time x n_hidden, the location with its
    interval, the width, the verdict, the seeds used, the grid points excluded, and how many
    finished points did not converge.

    Under a row whose fit left unconverged points out, a second line gives the fit with them kept
    (same axis and seed), marked as depending on the training budget: it says where the curve
    falls at this ``max_epochs``, which the default fit may be unable to say at all.
    """
    from analysis.transition import transition_table

    unconverged = (study["finished"] & ~study["converged"]).sum(("pruning_fraction", "seed"))
    conf = transition.attrs.get("confidence", 0.95)
    head = (f"{'protocol':<10} {'time':<10} {'n_hidden':>8}  {'location [' + format(float(conf), '.0%') + ' CI]':<26}"
            f" {'width':>7}  {'verdict':<17} {'seeds':>5} {'excluded':>8} {'not conv.':>9}")
    lines = [head, "-" * len(head)]
    if transition.attrs.get("axis") == "log-remaining":
        lines.insert(0, "step fitted along -log10(1 - f); locations are pruning fractions, widths decades of 1 - f")
    kept = None
    if transition.attrs.get("exclude", "unconverged") == "unconverged" and int(unconverged.sum()) > 0:
        kept = transition_table(study, exclude="none", axis=transition.attrs.get("axis", "fraction"),
                                seed=int(transition.attrs.get("seed", 0)), keep_bootstrap=False)
    for protocol in transition["protocol"].values:
        for time in transition["pruning_time"].values:
            for size in transition["n_hidden"].values:
                at = {"protocol": protocol, "pruning_time": time, "n_hidden": size}
                if not bool(study["planned"].sel(at).any()):
                    continue
                row = transition.sel(at)
                lines.append(f"{protocol!s:<10} {time!s:<10} {int(size):>8}  {_where(row):<26} "
                             f"{_fmt(float(row['width'])):>7}  {str(row['verdict'].values):<17} "
                             f"{int(row['n_seeds']):>5} {int(row['n_excluded']):>8} {int(unconverged.sel(at)):>9}")
                n_out = int(unconverged.sel(at))
                if kept is not None and n_out > 0:
                    alt = kept.sel(at)
                    lines.append(f"{'':<10} {'':<10} {'':>8}  {_where(alt):<26} {_fmt(float(alt['width'])):>7}  "
                                 f"{str(alt['verdict'].values):<17} with the {n_out} unconverged kept: "
                                 f"depends on max_epochs")
    return "\n".join(lines)


def _where(row: xr.Dataset) -> str:
    return (f"{_fmt(float(row['location']))} [{_fmt(float(row['location_lower']))}, "
            f"{_fmt(float(row['location_upper']))}]")


def figure_study_name(spec: StudySpec) -> str:
    """The study name under which :mod:`paper_figures` draws ``spec``'s figures: its own for a
    built-in name the figures know (quick, teacher, mnist), else by its kind: ``mnist`` for MNIST
    data, ``teacher`` with several sizes (finite-size scaling), else ``quick``."""
    if spec.name in ("quick", "teacher", "mnist"):
        return spec.name
    if isinstance(spec.data, MnistData):
        return "mnist"
    return "teacher" if len(spec.n_hidden) > 1 else "quick"


def draw_figures(data: str | Path, figures: str | Path) -> subprocess.CompletedProcess:
    """``python -m paper_figures --data DATA --out FIGURES`` in a subprocess (output captured)."""
    return subprocess.run([sys.executable, "-m", "paper_figures", "--data", str(data), "--out", str(figures)],
                          capture_output=True, text=True, check=False)


def draw_study_figures(spec: StudySpec, figures: str | Path) -> subprocess.CompletedProcess:
    """Draw the figures of one study's folder: it is linked as ``study-<figure_study_name>`` into
    a temporary data folder, so only its figures are drawn (the others are listed as missing).

    A study drawn under another study's name (a custom spec, drawn as ``quick``, ``teacher`` or
    ``mnist``) has its files renamed to its own name, ``<figure>-<spec.name>.pdf``, so that two
    such studies reported into one ``figures`` folder do not replace each other's figures; the
    gallery and the printed paths say the new names."""
    kind = figure_study_name(spec)
    with tempfile.TemporaryDirectory(prefix="dilution-report-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        (data / f"study-{kind}").symlink_to(Path(spec.output).resolve(), target_is_directory=True)
        if kind == spec.name:
            return draw_figures(data, figures)
        drawn_in = Path(tmp) / "figures"
        done = draw_figures(data, drawn_in)
        return _renamed(done, drawn_in, Path(figures), f"-{kind}", f"-{_file_stem(spec.name)}")


def _file_stem(name: str) -> str:
    """``name`` as part of a file name: characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _renamed(done: subprocess.CompletedProcess, drawn_in: Path, figures: Path, old: str,
             new: str) -> subprocess.CompletedProcess:
    """The figures drawn in ``drawn_in``, moved to ``figures`` with ``old`` (before the suffix) replaced by
    ``new`` in their names, and the gallery and the output lines rewritten to match."""
    figures.mkdir(parents=True, exist_ok=True)
    drawn = [path for path in (sorted(drawn_in.iterdir()) if drawn_in.is_dir() else ())
             if path.suffix in (".pdf", ".png") and path.stem.endswith(old)]
    stems = {path.stem: path.stem[: -len(old)] + new for path in drawn}
    gallery = drawn_in / "index.html"
    text = gallery.read_text(encoding="utf-8") if gallery.is_file() else None
    stdout = done.stdout.replace(str(drawn_in), str(figures))
    # Longest first: no stem is a prefix of another's replacement.
    for stem in sorted(stems, key=len, reverse=True):
        stdout = stdout.replace(stem, stems[stem])
        if text is not None:
            text = text.replace(f'"{stem}', f'"{stems[stem]}').replace(f"<b>{stem}</b>", f"<b>{stems[stem]}</b>")
    for path in drawn:
        with io.atomic_write(figures / f"{stems[path.stem]}{path.suffix}") as tmp:
            shutil.copyfile(path, tmp)
    if text is not None:
        with io.atomic_write(figures / "index.html") as tmp:
            tmp.write_text(text, encoding="utf-8")
    return subprocess.CompletedProcess(done.args, done.returncode, stdout, done.stderr)
