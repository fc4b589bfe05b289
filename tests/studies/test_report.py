"""studies.report: the report files of the smoke study against direct computations from its task files."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from analysis.ising import ising_parameters
from analysis.transition import transition_table
from dilution import io
from dilution.gibbs import sample
from dilution.model import RBM
from dilution.rng import derive_seed
from studies.builtin import BUILTIN
from studies.point import task_paths
from studies.report import figure_study_name, format_transitions, study_report
from studies.runner import run_study
from studies.spec import spec_from_dict
from studies.tasks import build_graph


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "study-smoke"
    # the built-in smoke study with the 3 seeds and 4 fractions a transition fit needs
    raw = tomllib.loads(BUILTIN["smoke"].toml)
    raw.update(output=str(out), seeds=[0, 1, 2], pruning_fractions=[0.0, 0.5, 0.8, 0.95])
    spec = spec_from_dict(raw)
    run_study(spec)
    return spec, study_report(spec, n_samples=8, n_sweeps=20)


def _model(spec, **at) -> RBM:
    key = next(k for p, k in build_graph(spec).cells.items() if all(getattr(p, d) == v for d, v in at.items()))
    ds = io.load_dataset(task_paths(spec.output, key)["result"])
    return RBM(ds["weights"].values, ds["visible_bias"].values, ds["hidden_bias"].values,
               ds["mask"].values.astype(bool))


def test_files_and_transition_equal_the_analysis_of_the_study(smoke):
    spec, made = smoke
    assert set(made.files) == {"study.nc", "transition.nc", "masks.nc", "ising.nc", "samples.nc"}  # no scratch: no gap
    saved = io.load_dataset(made.files["transition.nc"])
    again = transition_table(made.study, seed=int(derive_seed(0, "studies.report.transition").generate_state(1)[0]))
    xr.testing.assert_allclose(saved[["location", "width", "n_seeds", "n_excluded"]],
                               again[["location", "width", "n_seeds", "n_excluded"]])
    assert list(saved["verdict"].values.ravel()) == list(again["verdict"].values.ravel())
    assert "insufficient data" not in saved["verdict"].sel(protocol="init", pruning_time="0").values
    assert np.isfinite(saved["location"].sel(protocol="init", pruning_time="0")).all()


def test_masks_are_the_task_files_masks_and_the_dense_student_keeps_the_whole_teacher(smoke):
    spec, made = smoke
    masks = io.load_dataset(made.files["masks.nc"])
    for protocol, time in (("init", "0"), ("after", "20")):
        for f in spec.pruning_fractions:
            # slow reference: each visible unit's connections, mean over the two seeds
            expected = np.mean([_model(spec, protocol=protocol, pruning_time=time, pruning_fraction=f,
                                       seed=s).mask.sum(axis=1) for s in spec.seeds], axis=0)
            got = masks["mean_visible_degree"].sel(protocol=protocol, pruning_time=time, pruning_fraction=f).values
            np.testing.assert_array_equal(got, expected)
    # A fully connected student contains every teacher connection: recall exactly 1.
    dense = masks["teacher_recall"].sel(pruning_fraction=0.0, protocol="init", pruning_time="0")
    np.testing.assert_array_equal(dense.values, 1.0)
    # Pairs of (protocol, time) outside the grid hold no values.
    assert np.isnan(masks["mean_visible_degree"].sel(protocol="init", pruning_time="20")).all()


def test_couplings_and_samples_are_those_of_the_saved_models(smoke):
    spec, made = smoke
    ising = io.load_dataset(made.files["ising.nc"])
    assert list(ising["model"].values) == ["dense", "pruned 0.95"]
    at = dict(protocol=ising.attrs["protocol"], pruning_time=ising.attrs["pruning_time"], seed=ising.attrs["seed"])
    for label, f in (("dense", 0.0), ("pruned 0.95", 0.95)):
        expected = ising_parameters(_model(spec, pruning_fraction=f, **at))["coupling"].values
        np.testing.assert_allclose(ising["coupling"].sel(model=label).values, expected, rtol=1e-12)
    samples = io.load_dataset(made.files["samples.nc"])
    assert samples["samples"].dims == ("pruning_fraction", "sample", "visible")
    seed = int(samples.attrs["seed"])
    for i, f in enumerate(samples["pruning_fraction"].values):
        chain_seed = int(derive_seed(seed, "studies.report.samples", 6, i).generate_state(1)[0])
        expected = sample(_model(spec, pruning_fraction=float(f), **at), 8, 20, seed=chain_seed, progress=False)
        np.testing.assert_array_equal(samples["samples"].sel(pruning_fraction=f).values, expected)


@pytest.mark.parametrize("damaged", ["report.json", "transition.nc", "study.nc"])
def test_a_damaged_cached_file_is_made_again_not_reported_as_an_error(smoke, damaged):
    # a truncated transition.nc said "not a dilution file" with no way out but deleting it by hand, a
    # damaged report.json "Expecting property name enclosed in double quotes", naming no file
    spec, made = smoke
    path = Path(spec.output) / damaged
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    again = study_report(spec, n_samples=8, n_sweeps=20)
    assert again.recomputed
    xr.testing.assert_equal(again.transition, made.transition)  # the attrs hold the time it was made
    xr.testing.assert_equal(io.load_dataset(Path(spec.output) / "study.nc"), made.study)
    assert not study_report(spec, n_samples=8, n_sweeps=20).recomputed  # whole again


def test_a_second_report_recomputes_nothing_and_the_table_has_a_row_per_planned_block(smoke):
    spec, made = smoke
    stamps = {name: path.stat().st_mtime_ns for name, path in made.files.items()}
    again = study_report(spec, n_samples=8, n_sweeps=20)
    assert not again.recomputed
    assert {name: path.stat().st_mtime_ns for name, path in again.files.items()} == stamps
    assert study_report(spec, n_samples=9, n_sweeps=20).recomputed  # other settings: made again
    table = format_transitions(made.study, made.transition).splitlines()
    rows = [line.split()[:3] for line in table[2:] if not line.startswith(" ")]  # not the kept-unconverged lines
    assert rows == [["init", "0", "6"], ["after", "20", "6"]]
    location = float(made.transition["location"].sel(protocol="init", pruning_time="0", n_hidden=6))
    assert f"{location:.3f}" == table[2].split()[3]
    assert figure_study_name(spec) == "quick"


def test_report_rejects_a_bad_budget(smoke):
    spec, _ = smoke
    with pytest.raises(ValueError, match="n_sweeps"):
        study_report(spec, n_sweeps=0)


@pytest.mark.slow  # the figures are drawn in the default suite by tests/studies/test_reproduce.py
def test_cli_report_prints_the_table_and_draws_the_study_figures(smoke, tmp_path):
    spec, _ = smoke
    done = subprocess.run([sys.executable, "-m", "dilution.cli", "study", "report", "smoke", "--output", spec.output,
                           "--figures", str(tmp_path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "location [95% CI]" in done.stdout and "init" in done.stdout
    # the smoke spec is drawn as the quick study, under its own name
    for name in ("quality-vs-fraction-smoke", "degree-maps-smoke", "ising-couplings-smoke", "sample-grids-smoke"):
        assert (tmp_path / f"{name}.pdf").exists() and (tmp_path / f"{name}.png").exists()
    assert not list(tmp_path.glob("*-quick.*"))


def test_the_log_axis_report_is_the_log_axis_analysis_and_says_so(smoke):
    spec, made = smoke
    try:
        logged = study_report(spec, n_samples=8, n_sweeps=20, axis="log-remaining")
        assert logged.recomputed  # another axis: the analysis is made again
        saved = io.load_dataset(logged.files["transition.nc"])
        again = transition_table(logged.study, axis="log-remaining",
                                 seed=int(derive_seed(0, "studies.report.transition").generate_state(1)[0]))
        xr.testing.assert_allclose(saved[["location", "width"]], again[["location", "width"]])
        assert saved.attrs["axis"] == "log-remaining"
        assert format_transitions(logged.study, logged.transition).startswith("step fitted along -log10(1 - f)")
        with pytest.raises(ValueError, match="axis must be"):
            study_report(spec, axis="log")
    finally:
        study_report(spec, n_samples=8, n_sweeps=20)  # the module's other tests read the default files


def test_a_row_that_left_unconverged_points_out_is_followed_by_the_fit_with_them_kept(smoke):
    spec, made = smoke
    study = made.study.copy(deep=True)
    at = {"protocol": "init", "pruning_time": "0"}
    flags = study["converged"].sel(at).values
    flags[-1] = False  # the largest fraction's seeds did not converge
    study["converged"].loc[at] = flags
    seed = int(derive_seed(0, "studies.report.transition").generate_state(1)[0])
    table = transition_table(study, seed=seed)
    lines = format_transitions(study, table).splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("init"))
    n_out = int((study["finished"] & ~study["converged"]).sel(at).sum())
    assert lines[row].split()[-1] == str(n_out) and n_out > 0
    kept = transition_table(study, exclude="none", seed=seed).sel(at).isel(n_hidden=0)
    assert lines[row + 1].split()[0] == f"{float(kept['location']):.3f}"
    assert lines[row + 1].endswith(f"with the {n_out} unconverged kept: depends on max_epochs")


def _fake_paper_figures(data, figures):
    """What ``python -m paper_figures`` writes for the one study linked into ``data``: two figures
    (each file holding its own stem), the gallery, and the output lines."""
    figures = Path(figures)
    figures.mkdir(parents=True, exist_ok=True)
    (study,) = [p.name for p in Path(data).iterdir()]
    kind = study.removeprefix("study-")
    lines, html = [], []
    for stem in (f"quality-vs-fraction-{kind}", f"degree-maps-{kind}"):
        for ext in (".pdf", ".png"):
            (figures / f"{stem}{ext}").write_text(stem)
        lines.append(f"drew {stem}: {figures / stem}.pdf, {figures / stem}.png")
        html.append(f'<figure id="{stem}"><a href="{stem}.pdf"><img src="{stem}.png" alt="{stem}"></a>'
                    f"<b>{stem}</b></figure>")
    (figures / "index.html").write_text("\n".join(html))
    lines.append(f"gallery: {figures / 'index.html'}")
    return subprocess.CompletedProcess(["paper_figures"], 0, "\n".join(lines) + "\n", "")


def test_custom_studies_reported_into_one_folder_keep_their_own_figures(tmp_path, monkeypatch):
    # two custom specs of one kind were both drawn as *-quick: the second replaced the first's figures
    from studies import report

    monkeypatch.setattr(report, "draw_figures", _fake_paper_figures)
    shared = tmp_path / "figures"
    raw = tomllib.loads(BUILTIN["smoke"].toml)
    for name in ("mine", "yours v2"):
        spec = spec_from_dict({**raw, "name": name, "output": str(tmp_path / name)})
        assert figure_study_name(spec) == "quick"
        done = report.draw_study_figures(spec, shared)
    assert sorted(p.name for p in shared.iterdir()) == sorted([
        f"{figure}-{name}{ext}" for figure in ("quality-vs-fraction", "degree-maps") for name in ("mine", "yours_v2")
        for ext in (".pdf", ".png")] + ["index.html"])
    assert (shared / "degree-maps-mine.png").read_text() == "degree-maps-quick"  # the drawn file, renamed
    assert done.stdout.splitlines() == [
        f"drew quality-vs-fraction-yours_v2: {shared}/quality-vs-fraction-yours_v2.pdf, "
        f"{shared}/quality-vs-fraction-yours_v2.png",
        f"drew degree-maps-yours_v2: {shared}/degree-maps-yours_v2.pdf, {shared}/degree-maps-yours_v2.png",
        f"gallery: {shared}/index.html"]
    gallery = (shared / "index.html").read_text()
    assert "quick" not in gallery and '<a href="degree-maps-yours_v2.pdf"><img src="degree-maps-yours_v2.png"' in gallery


def test_a_built_in_study_keeps_its_figure_names(tmp_path, monkeypatch):
    from studies import report

    monkeypatch.setattr(report, "draw_figures", _fake_paper_figures)
    spec = spec_from_dict({**tomllib.loads(BUILTIN["quick"].toml), "output": str(tmp_path / "quick")})
    done = report.draw_study_figures(spec, tmp_path / "figures")
    assert (tmp_path / "figures" / "degree-maps-quick.pdf").exists()
    assert f"gallery: {tmp_path / 'figures'}/index.html" in done.stdout
