"""Built-in studies: every one validates, MNIST ones find their data or say where to put it, and
the cost estimate is within a factor 3 of the measured wall time of a tiny study."""

from __future__ import annotations

import time

import pytest

from studies.builtin import BUILTIN, builtin_spec
from studies.cost import estimate_cost, format_cost
from studies.runner import run_study
from studies.spec import SpecError, spec_from_dict


def test_the_builtin_studies(mnist_npz, tmp_path):
    assert {"smoke", "quick", "teacher", "mnist", "mnist-500"} <= set(BUILTIN)
    for name, study in BUILTIN.items():
        assert study.description and "\n" not in study.description and study.cost
        spec = builtin_spec(name, output=str(tmp_path / name), data=mnist_npz if "mnist" in name else None)
        assert spec.name == name and spec.output == str(tmp_path / name)
    quick = builtin_spec("quick")
    assert (quick.data.n_visible, quick.data.n_hidden, quick.data.connectivity) == (64, 10, 0.25)
    assert {p.kind for p in quick.protocols} == {"init", "after", "rewind", "scratch"}
    assert len(quick.seeds) == 3 and 8 <= len(quick.pruning_fractions) <= 12 and max(quick.pruning_fractions) >= 0.99
    assert builtin_spec("mnist", data=mnist_npz).evaluation.log_likelihood == "exact"
    assert builtin_spec("mnist-500", data=mnist_npz).evaluation.log_likelihood == "ais"


def test_mnist_studies_say_where_the_data_should_come_from(monkeypatch, tmp_path):
    monkeypatch.delenv("DILUTION_DATA", raising=False)
    with pytest.raises(SpecError) as err:
        builtin_spec("mnist")
    assert "--data" in str(err.value) and "DILUTION_DATA" in str(err.value)
    monkeypatch.setenv("DILUTION_DATA", str(tmp_path))  # no mnist/ there
    with pytest.raises(SpecError, match=r"data\.path: expected a readable mnist.npz"):
        builtin_spec("mnist-500")
    with pytest.raises(SpecError, match=r"data\.path: study 'quick' generates its data"):
        builtin_spec("quick", data=tmp_path)
    with pytest.raises(KeyError, match="built-in studies: mnist, mnist-500, quick, smoke, teacher"):
        builtin_spec("huge")


def test_cost_estimate_is_within_a_factor_3_of_a_tiny_study(tmp_path):
    raw = builtin_spec("smoke").to_dict()
    raw.update(output=str(tmp_path / "tiny"), pruning_fractions=[0.0, 0.5], seeds=[0])
    raw["training"] = dict(raw["training"], max_epochs=16)
    # No run stops before max_epochs but the point pruned after epoch 6 (at most 16 more epochs):
    # the bounds are close, and the estimate tests the measured per-update, per-evaluation and
    # per-task times, not a guess of when runs converge.
    raw["stopping"] = dict(raw["stopping"], min_epochs=16)
    raw["protocols"]["after"] = {"kind": "after", "epoch": 6}
    spec = spec_from_dict(raw)
    estimate = estimate_cost(spec)
    assert estimate.low <= estimate.seconds <= estimate.high < 1.5 * estimate.low
    assert "estimated cost" in format_cost(estimate)
    t0 = time.perf_counter()
    run_study(spec)
    measured = time.perf_counter() - t0
    assert estimate.seconds / 3 <= measured <= 3 * estimate.seconds, (estimate, measured)
    # A rerun's estimate counts what is left: nothing, then the one point whose result was deleted.
    left = estimate_cost(spec, remaining=True)
    assert (left.n_tasks, left.total_tasks, left.seconds) == (0, estimate.n_tasks, 0.0)
    assert "nothing to run" in format_cost(left)
    from studies.point import task_paths
    from studies.tasks import build_graph

    point = next(t for t in build_graph(spec).tasks.values() if t.kind == "point")
    task_paths(spec.output, point.key)["result"].unlink()
    left = estimate_cost(spec, remaining=True)
    assert left.n_tasks == 1 and 0.0 < left.low <= left.high < estimate.low
    assert f"the 1 unfinished task of {estimate.n_tasks}" in format_cost(left)


def test_study_list_names_every_builtin_with_its_cost(capsys):
    from dilution.cli import main

    assert main(["study", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(BUILTIN)
    for line, study in zip(lines, BUILTIN.values()):
        assert study.cost in line and study.description in line


def test_data_flag_is_refused_for_a_spec_file(tmp_path, capsys):
    from dilution.cli import main

    spec = tmp_path / "s.toml"
    spec.write_text("name = 'x'\n")
    assert main(["study", "run", str(spec), "--data", str(tmp_path)]) != 0
    assert "--data is for the built-in MNIST studies" in capsys.readouterr().err
