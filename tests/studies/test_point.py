"""One grid point: the scratch baseline starts like dilution's from_scratch, and an interrupted
point continues from its saved state to the same result as an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest

import studies.point as point_module
from dilution import io
from dilution.pruning_rules import from_scratch
from dilution.training import train
from studies.builtin import builtin_spec
from studies.data import load_data
from studies.point import point_paths, run_point, scratch_start


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


@pytest.mark.parametrize("protocol", ["after"])
def test_interrupted_point_resumes_to_the_same_result(tmp_path, monkeypatch, protocol):
    whole = builtin_spec("smoke", output=str(tmp_path / "whole"))
    cut = builtin_spec("smoke", output=str(tmp_path / "cut"))
    point = next(p for p in whole.points() if p.protocol == protocol and p.pruning_fraction == 0.5)
    reference = io.load_dataset(run_point(whole, point))

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
        run_point(cut, point, checkpoint_seconds=0)
    result, state = point_paths(cut.output, point)
    assert state.exists() and not result.exists()
    monkeypatch.setattr(point_module, "train_to_convergence", real)

    def no_restart(*args):
        raise AssertionError("the point restarted instead of continuing its saved state")

    monkeypatch.setattr(point_module, "_initial_state", no_restart)
    resumed = io.load_dataset(run_point(cut, point, checkpoint_seconds=0))
    assert not state.exists()
    for name in reference.variables:
        if name != "train_time":
            np.testing.assert_array_equal(resumed[name].values, reference[name].values, err_msg=name)
