"""``python -m paper_figures``: every figure whose data exist is drawn, the others are listed with
the command that makes their data, and a gallery links them all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dilution.io
from paper_figures import registry
from paper_figures.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
NEEDS_MERGED = {"quality-vs-fraction-quick", "phase-diagram-quick", "retrain-vs-scratch-quick"}
MERGED = registry.study_input("quick", registry.STUDY_FILE)


def test_every_input_has_a_command_and_every_figure_a_unique_name():
    names = [f.name for f in registry.FIGURES]
    assert len(names) == len(set(names))
    for figure in registry.FIGURES:
        assert figure.inputs and all(p in registry.DATA_COMMANDS for p in figure.inputs)
        assert callable(figure.module.load) and callable(figure.module.draw)
    needing = {f.name for f in registry.FIGURES if MERGED in f.inputs}
    assert needing == NEEDS_MERGED


def test_deleting_one_study_file_lists_exactly_the_figures_that_need_it_and_draws_the_others(figures_data, tmp_path):
    (figures_data / MERGED).unlink()
    out = tmp_path / "figures"
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-m", "paper_figures", "--data", str(figures_data), "--out", str(out),
                          "--dpi", "40"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    missing = {line.split()[1].rstrip(":"): line for line in res.stdout.splitlines() if line.startswith("missing ")}
    assert set(missing) == NEEDS_MERGED
    command = registry.DATA_COMMANDS[MERGED].format(data=figures_data)
    assert command == f"dilution study run quick --output {figures_data}/study-quick --report"
    for line in missing.values():
        assert line.endswith(f"make it with: {command}") and MERGED in line
    drawn = {f.name for f in registry.FIGURES} - NEEDS_MERGED
    assert {line.split()[1].rstrip(":") for line in res.stdout.splitlines() if line.startswith("drew ")} == drawn
    tables = [t.name for t in registry.TABLES]  # their inputs (the rewiring files) are all there
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.{ext}" for n in drawn for ext in ("pdf", "png")] + [f"{n}.{ext}" for n in tables
                                                                   for ext in ("md", "tex", "csv")] + ["index.html"])
    assert {line.split()[1].rstrip(":") for line in res.stdout.splitlines() if line.startswith("wrote ")} == set(tables)
    for name in drawn:
        assert (out / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    # provenance of the drawn data in the PDF metadata
    assert b"study=ncg-reference; git_commit=0123abcd" in (out / "ncg-trajectories.pdf").read_bytes()
    gallery = (out / "index.html").read_text()
    for name in drawn:
        assert f'<img src="{name}.png"' in gallery
    for name in NEEDS_MERGED:
        assert f'<img src="{name}.png"' not in gallery and f"<b>{name}</b> (missing" in gallery
    for name in tables:
        assert f'<a href="{name}.md">md</a>' in gallery and f'<section id="{name}">' in gallery
    assert command in gallery


def test_a_file_without_a_needed_variable_fails_that_figure_only_naming_file_and_variable(figures_data, tmp_path,
                                                                                          capsys):
    divergence = dilution.io.load_dataset(figures_data / "stationary-divergence.nc").drop_vars("total_variation")
    dilution.io.save(divergence, figures_data / "stationary-divergence.nc")
    figures = [f for f in registry.FIGURES if f.name in ("divergence-vs-steps", "inclusion-maps")]
    report = registry.render_all(figures_data, tmp_path / "out", figures, dpi=40)
    failed, = report.by_status("failed")
    assert failed.figure.name == "divergence-vs-steps"
    assert "stationary-divergence.nc" in failed.error and "lacks the variable 'total_variation'" in failed.error
    assert [o.figure.name for o in report.by_status("drawn")] == ["inclusion-maps"]
    assert not (tmp_path / "out" / "divergence-vs-steps.pdf").exists()


def test_a_missing_data_folder_or_a_bad_dpi_is_an_error_naming_it(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert f"data folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    (tmp_path / "model.nc").write_text("a file")  # was "does not exist"
    assert main(["--data", str(tmp_path / "model.nc"), "--out", str(tmp_path / "out")]) == 2
    assert f"data folder {tmp_path / 'model.nc'} is a file, not a folder" in capsys.readouterr().err
    assert main(["--data", str(tmp_path), "--out", str(tmp_path / "out"), "--dpi", "0"]) == 2
    assert "dpi must be an integer >= 10" in capsys.readouterr().err


@pytest.fixture
def nothing_drawn(monkeypatch):
    """Records a call of render_all (the drawing the --out check must come before)."""
    calls = []
    monkeypatch.setattr("paper_figures.__main__.render_all", lambda *args, **kwargs: calls.append(args))
    return calls


@pytest.mark.parametrize("below", [False, True])
def test_an_out_that_is_a_file_is_an_error_naming_it_before_any_figure_is_drawn(below, nothing_drawn, tmp_path,
                                                                                capsys):
    file = tmp_path / "figures.pdf"
    file.write_text("not a folder")
    out = file / "sub" if below else file
    assert main(["--data", str(tmp_path), "--out", str(out)]) == 2
    named = f"--out {out}" + (f": {file}" if below else "")
    assert capsys.readouterr().err == (f"error: {named} exists and is not a folder; expected a folder for the "
                                       "output (an existing one or a new one to create)\n")
    assert nothing_drawn == [] and file.read_text() == "not a folder"


@pytest.mark.parametrize("new", [False, True])
def test_a_read_only_out_is_an_error_naming_it_before_any_figure_is_drawn(new, nothing_drawn, tmp_path, capsys,
                                                                          mode_bits_apply):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    out = locked / "figures" if new else locked
    try:
        assert main(["--data", str(tmp_path), "--out", str(out)]) == 2
    finally:
        locked.chmod(0o755)
    named = f"--out {out}" + (f": {locked}" if new else "")
    assert capsys.readouterr().err == f"error: {named} is not writable; expected a folder that " \
                                      "you can write to\n"
    assert nothing_drawn == []


@pytest.mark.parametrize("pattern", sorted(registry.DATA_COMMANDS))
def test_commands_name_the_data_folder_or_a_runnable_program(pattern):
    assert registry.DATA_COMMANDS[pattern].startswith("dilution ")
    assert "{data}" in registry.DATA_COMMANDS[pattern] or "{reproduce}" in registry.DATA_COMMANDS[pattern]


def test_a_figure_that_raises_is_reported_and_does_not_stop_the_others(figures_data, tmp_path):
    import types

    def broken(*_):
        raise IndexError("a bug in a figure module")

    bad = registry.FigureSpec("broken", "never drawn", ("rewiring-ncg.nc",),
                              types.SimpleNamespace(load=lambda *paths: (), draw=broken))
    good = next(f for f in registry.FIGURES if f.name == "inclusion-maps")
    report = registry.render_all(figures_data, tmp_path / "out", [bad, good], dpi=40)
    assert [(o.figure.name, o.status) for o in report.outcomes] == [("broken", "failed"), ("inclusion-maps", "drawn")]
    assert report.outcomes[0].error == "IndexError: a bug in a figure module"
    assert "<b>broken</b> (IndexError: a bug in a figure module)" in report.gallery.read_text()


def test_a_study_without_a_scratch_protocol_lists_the_retrain_figure_as_missing_with_the_reason(figures_data,
                                                                                                 tmp_path, capsys):
    merged = dilution.io.load_dataset(figures_data / MERGED)
    merged = merged.drop_sel(protocol="scratch")
    merged.attrs["spec"] = '{"protocols": {"init": {"kind": "init"}, "after": {"kind": "after"}}}'
    data = tmp_path / "data"
    (data / "study-quick").mkdir(parents=True)
    dilution.io.save(merged, data / MERGED)  # a gap.nc left from an earlier version of the study
    dilution.io.save(dilution.io.load_dataset(figures_data / "study-quick" / "gap.nc"), data / "study-quick/gap.nc")
    assert main(["--data", str(data), "--out", str(tmp_path / "out"), "--dpi", "40"]) == 0
    lines = {line.split()[1].rstrip(":"): line for line in capsys.readouterr().out.splitlines()
             if line.split()[0] in ("drew", "missing")}
    assert [n for n, line in lines.items() if line.startswith("drew ")] == []
    line = lines["retrain-vs-scratch-quick"]
    assert line.startswith("missing retrain-vs-scratch-quick: ") and "has no protocol of kind 'scratch'" in line
    assert line.endswith(f"make it with: dilution study run quick --output {data}/study-quick --report")
    assert lines["phase-diagram-quick"].startswith("missing phase-diagram-quick: no study-quick/transition.nc")
    # the data folder is named "data": reproduce's output is its parent
    assert lines["ncg-trajectories"].endswith(f"make it with: dilution reproduce --scale smoke --output {tmp_path}")
