"""`dilution reproduce --scale smoke`: every figure from a fresh folder; a rerun recomputes nothing (issue 13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from paper_figures.registry import FIGURES
from studies.reproduce import reproduce

# Figures whose data need MNIST (the smoke mnist study and rewiring-mnist*.nc).
_MNIST_FIGURES = {f.name for f in FIGURES
                  if f.name.endswith("-mnist") or {"rewiring-mnist.nc", "rewiring-mnist-500.nc"} & set(f.inputs)}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, data_dir):
    # data_dir (tests/conftest.py): the MNIST figures need DILUTION_DATA; skips without it on a
    # user's machine, fails in CI
    out = tmp_path_factory.mktemp("reproduce")
    done = subprocess.run([sys.executable, "-m", "dilution.cli", "reproduce", "--scale", "smoke", "--output", str(out)],
                          capture_output=True, text=True, check=False)
    return out, done


def test_smoke_makes_every_figure_as_pdf_and_png(smoke):
    out, done = smoke
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _MNIST_FIGURES  # the MNIST figures are among those checked
    absent = [f.name for f in FIGURES
              if not ((out / "figures" / f"{f.name}.pdf").is_file() and (out / "figures" / f"{f.name}.png").is_file())]
    assert absent == [], done.stdout[-3000:]
    assert (out / "figures" / "index.html").is_file()


def test_a_second_run_recomputes_nothing(smoke):
    out, _ = smoke
    data = out / "data"
    before = {p: p.stat().st_mtime_ns for p in data.rglob("*") if p.is_file()}
    run = reproduce("smoke", out, figures=False, log=lambda line: None)
    assert run.computed == ()
    after = {p: p.stat().st_mtime_ns for p in data.rglob("*") if p.is_file()}
    changed = sorted(str(p.relative_to(data)) for p in before if after.get(p) != before[p])
    # the studies' merged study.nc is rewritten by the runner on every run (same content)
    assert [c for c in changed if not c.endswith("study.nc")] == []
    assert set(after) == set(before)


def test_a_comparison_file_without_a_newer_variable_is_remade_from_its_work_folder(smoke):
    # a rewiring-mnist-500.nc written before mask_overlap was recorded counted as up to date, so
    # the connectivity-aging figure stayed missing after every rerun
    from dilution import io

    out, _ = smoke
    path = out / "data" / "rewiring-mnist-500.nc"
    full = io.load_dataset(path)
    io.save(full.drop_vars(["mask_overlap", "mask_overlap_chance"]), path)
    work = out / "data" / "rewiring-mnist-500.work"
    kept = {p: p.stat().st_mtime_ns for p in work.rglob("*") if p.is_file()}
    run = reproduce("smoke", out, figures=False, log=lambda line: None)
    assert run.computed == ("rewiring-mnist-500.nc",)
    remade = io.load_dataset(path)
    for name in ("mask_overlap", "mask_overlap_chance", "test_log_likelihood"):
        np.testing.assert_array_equal(remade[name].values, full[name].values, err_msg=name)
    # nothing retrained or rescored: the work folder's models and scores are as they were
    assert {p: p.stat().st_mtime_ns for p in work.rglob("*") if p.is_file()} == kept


def test_unknown_scale_is_refused(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        reproduce("huge", tmp_path)


def test_without_mnist_the_mnist_studies_are_left_out_with_the_reason(tmp_path, monkeypatch):
    from studies.reproduce import _mnist_path, paper_specs, smoke_specs

    monkeypatch.delenv("DILUTION_DATA", raising=False)
    path, why = _mnist_path(None)
    assert path is None and "DILUTION_DATA" in why and "--data" in why
    assert list(smoke_specs(tmp_path, None)) == ["quick", "teacher"]
    assert list(paper_specs(tmp_path, None)) == ["quick", "teacher"]
    with pytest.raises(ValueError, match="--data"):
        _mnist_path(str(tmp_path / "nowhere.npz"))


def test_a_data_file_that_is_not_mnist_is_refused_before_any_study_runs(tmp_path, capsys, monkeypatch):
    # it was read after the quick and teacher studies had run
    from dilution.cli import main

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not an npz")
    ran = []
    monkeypatch.setattr("studies.reproduce.reproduce", lambda *args, **kwargs: ran.append(args))
    assert main(["reproduce", "--scale", "smoke", "--output", str(tmp_path / "out"), "--data", str(garbage)]) == 2
    assert f"--data: {garbage}" in capsys.readouterr().err
    assert ran == [] and not (tmp_path / "out").exists()


def test_an_interrupted_reproduce_says_what_is_kept_and_how_to_continue(tmp_path, capsys, monkeypatch):
    from dilution.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("studies.reproduce.reproduce", interrupted)
    out = tmp_path / "out"
    assert main(["reproduce", "--scale", "smoke", "--output", str(out)]) == 130
    assert capsys.readouterr().err.strip() == (
        f"dilution reproduce: interrupted; the finished tasks and the last checkpoint of each running task are kept "
        f"in {out}; run the same command again to continue")

def test_the_specs_write_where_the_figures_read(tmp_path):
    from studies.reproduce import paper_specs, smoke_specs

    fake = str(tmp_path / "mnist")
    Path(fake).mkdir()  # specs check that the data path is readable, not its contents
    paper = paper_specs(tmp_path, fake)
    assert {name: Path(s.output) for name, s in paper.items()} == {
        name: tmp_path / f"study-{name}" for name in ("quick", "teacher", "mnist", "mnist-500")}
    assert [s.name for s in paper.values()] == ["quick", "teacher", "mnist", "mnist-500"]
    smoke = smoke_specs(tmp_path, fake)
    assert {name: Path(s.output) for name, s in smoke.items()} == {
        name: tmp_path / f"study-{name}" for name in ("quick", "teacher", "mnist")}
    # every figure needs: a scratch protocol (retrain vs scratch), several sizes (finite-size scaling)
    assert all("scratch" in {p.kind for p in s.protocols} for s in smoke.values())
    assert len(smoke["teacher"].n_hidden) > 1
