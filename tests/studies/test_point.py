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


def _dense_and_point(spec, graph):
    task = next(t for t in graph.tasks.values()
                if t.kind == "point" and t.point.protocol == "after" and t.point.pruning_fraction == 0.5)
    _run_dependencies(spec, task, graph)
    return task.depends[0], task


def test_dense_state_is_read_once_per_process_and_each_caller_gets_its_own_copy(tmp_path, monkeypatch):
    spec = builtin_spec("smoke", output=str(tmp_path / "s"))
    key, _ = _dense_and_point(spec, build_graph(spec))
    path = task_paths(spec.output, key)["state"]
    reads = []
    real = io.load_dataset

    def counting(p, *args, **kwargs):
        reads.append(str(p))
        return real(p, *args, **kwargs)

    monkeypatch.setattr(io, "load_dataset", counting)
    point_module._DENSE_CACHE.clear()
    first, t_first = point_module._load_dense(spec.output, key)
    expected = first.params.weights.copy()
    first.params.weights[...] = 99.0  # a caller that scribbles on its state must not reach the next one
    second, t_second = point_module._load_dense(spec.output, key)
    assert reads == [str(path)] and t_first == t_second
    np.testing.assert_array_equal(second.params.weights, expected)
    # The file rewritten (a recomputed task): its new modification time makes the next read fresh.
    stat = path.stat()
    import os

    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    point_module._load_dense(spec.output, key)
    assert reads == [str(path), str(path)]


def test_each_attempt_records_the_time_it_spent_on_files(tmp_path):
    from studies import manifest
    from studies.runner import execute

    spec = builtin_spec("smoke", output=str(tmp_path / "s"))
    graph = build_graph(spec)
    _, task = _dense_and_point(spec, graph)
    point_module._DENSE_CACHE.clear()
    outcome = execute(spec, task)
    record = manifest.read_record(spec.output, task)
    assert outcome.status == "done" and record.status == "done"
    # It read the dense state and wrote its result: some time, and a part of its wall time only.
    assert 0.0 < record.io_time < record.wall_time


def test_the_io_clock_counts_each_threads_own_time():
    import threading

    clock = point_module.IOClock()
    clock.reset()
    seen = {}

    def other():
        clock.reset()
        with clock.timed():
            threading.Event().wait(0.05)
        seen["other"] = clock.seconds

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen["other"] >= 0.05 and clock.seconds == 0.0  # the other thread's write is not this one's


def test_a_point_interrupted_in_its_ais_evaluation_continues_it_and_removes_the_checkpoint(tmp_path, monkeypatch):
    import tomllib

    from dilution import ais
    from studies.builtin import BUILTIN
    from studies.spec import spec_from_dict

    def spec(folder):
        raw = tomllib.loads(BUILTIN["smoke"].toml)
        raw["output"] = str(tmp_path / folder)
        raw["evaluation"] = {**raw.get("evaluation", {}), "log_likelihood": "ais", "ais_chains": 20,
                             "ais_betas": 200}
        return spec_from_dict(raw)

    whole, cut = spec("whole"), spec("cut")
    graph = build_graph(whole)
    task = next(t for t in graph.tasks.values() if t.kind == "point" and t.point.pruning_fraction == 0.5)
    _run_dependencies(whole, task, graph)
    _run_dependencies(cut, task, graph)
    reference = io.load_dataset(compute(whole, task)["result"])
    assert not task_paths(whole.output, task.key)["ais"].exists()  # removed once the result is written

    monkeypatch.setattr(ais, "WORK_PER_SECOND", 1.0)  # a kernel call per beta
    kernel, calls = ais.ais_kernel, []

    def counted(*args):
        calls.append(1)
        if len(calls) == 120:
            raise _Killed
        return kernel(*args)

    monkeypatch.setattr(ais, "ais_kernel", counted)
    with pytest.raises(_Killed):
        compute(cut, task)
    paths = task_paths(cut.output, task.key)
    assert paths["ais"].exists() and not paths["result"].exists()
    calls.clear()
    resumed = io.load_dataset(compute(cut, task)["result"])
    assert len(calls) == 199 - 119  # the forward run's remaining steps only (the spec has no reverse run)
    assert not paths["ais"].exists()
    for name in reference.variables:
        if name != "train_time":
            np.testing.assert_array_equal(resumed[name].values, reference[name].values, err_msg=name)
