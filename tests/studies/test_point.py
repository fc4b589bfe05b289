"""One task: the scratch baseline starts like dilution's from_scratch, and an interrupted point
continues from its saved state to the same result as an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest

import studies.point as point_module
from dilution import io
from dilution.pruning_rules import from_scratch
from dilution.training import train
from studies.builtin import builtin_spec
from studies.data import load_data
from studies.point import compute, scratch_start, task_paths
from studies.tasks import build_graph


def test_scratch_start_trains_like_from_scratch():
    spec = builtin_spec("smoke")
    data = load_data(spec.data)
    mask = np.random.default_rng(0).random((16, 6)) < 0.4
    cfg = spec.training.config(epochs=3)
    start = scratch_start(mask, data.train, cfg.weight_scale, cfg.marginal_clip, "float64", 7)
    ours = train(start, data.train, cfg, seed=7, progress=False).model
    theirs = from_scratch(mask, data.train, cfg, seed=7).model
    np.testing.assert_array_equal(ours.weights, theirs.weights)
    np.testing.assert_array_equal(ours.visible_bias, theirs.visible_bias)


class _Killed(Exception):
    pass


def _run_dependencies(spec, task, graph):
    for key in task.depends:
        _run_dependencies(spec, graph.tasks[key], graph)
        compute(spec, graph.tasks[key])


@pytest.mark.parametrize("protocol", ["after"])
def test_interrupted_point_resumes_to_the_same_result(tmp_path, monkeypatch, protocol):
    whole = builtin_spec("smoke", output=str(tmp_path / "whole"))
    cut = builtin_spec("smoke", output=str(tmp_path / "cut"))
    graph = build_graph(whole)
    task = next(t for t in graph.tasks.values()
                if t.kind == "point" and t.point.protocol == protocol and t.point.pruning_fraction == 0.5)
    _run_dependencies(whole, task, graph)
    _run_dependencies(cut, task, graph)
    reference = io.load_dataset(compute(whole, task)["result"])

    real = point_module.train_to_convergence

    def dying(*args, on_evaluation, **kwargs):
        calls = []

        def save_then_die(state, epochs, values):
            on_evaluation(state, epochs, values)
            calls.append(1)
            if len(calls) == 3:  # evaluations start at the pruning epoch (20): a pruned state is saved
                raise _Killed

        return real(*args, on_evaluation=save_then_die, **kwargs)

    monkeypatch.setattr(point_module, "train_to_convergence", dying)
    with pytest.raises(_Killed):
        compute(cut, task, checkpoint_seconds=0)
    paths = task_paths(cut.output, task.key)
    result, state = paths["result"], paths["partial"]
    assert state.exists() and not result.exists()
    monkeypatch.setattr(point_module, "train_to_convergence", real)

    def no_restart(*args):
        raise AssertionError("the point restarted instead of continuing its saved state")

    monkeypatch.setattr(point_module, "_point_start", no_restart)
    resumed = io.load_dataset(compute(cut, task, checkpoint_seconds=0)["result"])
    assert not state.exists()
    for name in reference.variables:
        if name != "train_time":
            np.testing.assert_array_equal(resumed[name].values, reference[name].values, err_msg=name)
