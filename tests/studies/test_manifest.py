"""The manifest: a task that raises is recorded as failed (with its error, after its retries) and
the others complete; its dependents fail without running; a rerun retries it; a corrupt result
file is recomputed; status counts and the ETA."""

from __future__ import annotations

import json

import numpy as np
import pytest

import studies.runner as runner_module
from dilution import io
from dilution.cli import main
from studies.manifest import read_record
from studies.point import task_paths
from studies.runner import run_study, study_status
from studies.spec import spec_from_toml
from studies.tasks import build_graph

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


_TOML = """
name = "manifest"
output = "{output}"
n_hidden = [3]
pruning_fractions = [0.0, 0.5]
seeds = [0]

[data]
kind = "teacher"
n_visible = 8
n_hidden = 2
weight_scale = 2.0
n_train = 100
n_validation = 100
n_test = 100

[training]
estimator = "exact"
batch_size = 50
learning_rate = 0.1
weight_scale = 0.3
max_epochs = 6

[stopping]
every = 1
window = 2
tolerance = 0.01
min_epochs = 2

[protocols.init]
kind = "init"

[protocols.after]
kind = "after"
epochs = [2]
"""


def _spec(output: str):
    return spec_from_toml(_TOML.format(output=output))


def _by_kind(graph):
    return {(t.kind, t.point.protocol if t.point else t.until): t for t in graph.tasks.values()}


def test_a_failing_task_is_recorded_and_the_others_complete(tmp_path, monkeypatch):
    spec = _spec(str(tmp_path / "study"))
    graph = build_graph(spec)
    tasks = _by_kind(graph)
    bad = tasks[("dense", 2)]
    real = runner_module.compute

    def broken(spec, task, **kwargs):
        if task.key == bad.key:
            raise RuntimeError("planted failure")
        return real(spec, task, **kwargs)

    monkeypatch.setattr(runner_module, "compute", broken)
    result = run_study(spec, retries=1)
    status = {o.key: o.status for o in result.outcomes}
    assert status == {bad.key: "failed", tasks[("point", "after")].key: "failed",
                      tasks[("converged", 0)].key: "done", tasks[("point", "init")].key: "done"}
    record = read_record(spec.output, bad)
    assert record.status == "failed" and record.attempts == 2 and "planted failure" in record.error
    dependent = read_record(spec.output, tasks[("point", "after")])
    assert dependent.attempts == 0 and f"dependency {bad.key} failed" in dependent.error
    study = result.study
    assert not study["finished"].sel(protocol="after", pruning_fraction=0.5).any()
    assert study["finished"].sel(protocol="init").sum() == 2 and study["finished"].sum() == 3

    st = study_status(spec)
    assert (len(st.done), len(st.failed), len(st.pending)) == (2, 2, 0)
    walls = [read_record(spec.output, tasks[k]).wall_time for k in (("converged", 0), ("point", "init"))]
    assert st.eta_seconds == pytest.approx(2 * np.mean(walls))

    # the CLI's exit status says some failed; a rerun without the fault computes only those two
    assert main(["study", "run", str(_toml(spec, tmp_path)), "--quiet", "--retries", "0"]) == 1
    monkeypatch.setattr(runner_module, "compute", real)
    rerun = run_study(spec)
    assert sorted(o.status for o in rerun.outcomes) == ["done", "done", "skipped", "skipped"]
    assert read_record(spec.output, bad).attempts == 4 and read_record(spec.output, bad).status == "done"
    assert rerun.study["finished"].sum() == 4


def _toml(spec, tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(_TOML.format(output=spec.output))
    return path


def test_a_corrupt_result_is_recomputed_and_nothing_else(tmp_path):
    spec = _spec(str(tmp_path / "study"))
    first = run_study(spec)
    tasks = _by_kind(build_graph(spec))
    target = task_paths(spec.output, tasks[("point", "after")].key)["result"]
    blob = target.read_bytes()
    target.write_bytes(blob[: len(blob) // 2])
    others = {p: p.stat().st_mtime_ns for p in (tmp_path / "study" / "tasks").glob("*.nc") if p != target}
    rerun = run_study(spec)
    assert [o.key for o in rerun.outcomes if o.status == "done"] == [tasks[("point", "after")].key]
    assert {p: p.stat().st_mtime_ns for p in others} == others
    assert json.loads((tmp_path / "study" / "manifest" / f"{target.name[:-3]}.json").read_text())["attempts"] == 2
    for name in first.study.data_vars:
        if name != "train_time":
            np.testing.assert_array_equal(rerun.study[name].values, first.study[name].values, err_msg=name)
    assert io.load_dataset(target).attrs["key"] == tasks[("point", "after")].key


def test_the_evaluation_metrics_are_merged_with_their_attributes(tmp_path):
    text = _TOML.format(output=tmp_path / "study") + '\n[evaluation]\nmetrics = ["mask"]\n'
    study = run_study(spec_from_toml(text)).study
    planned = study["planned"].values
    degree = study["mask_mean_hidden_degree"]
    assert degree.dims == study["connectivity"].dims and degree.attrs["long_name"] and degree.attrs["units"]
    # the mean hidden degree is the number of connections over the number of hidden units (3)
    np.testing.assert_array_equal(degree.values[planned], study["n_connections"].values[planned] / 3)
    assert np.isnan(degree.values[~planned]).all()
