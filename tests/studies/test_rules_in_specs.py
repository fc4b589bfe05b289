"""Rewiring rules in study specs: the pruning fraction sets each rule's sparsity, options are checked by
the rule itself with errors naming the TOML key, a DEEP R point ends with exactly K connections and
an interrupted one resumes to the uninterrupted result."""

from __future__ import annotations

import numpy as np
import pytest

import studies.point as point_module
from dilution import io
from dilution.deep_r import DeepR, SoftDeepR
from dilution.ncg import NCG
from dilution.pruning import RandomPruning
from studies.builtin import builtin_spec
from studies.point import compute, task_paths
from studies.spec import DURING, SpecError, spec_from_dict
from studies.tasks import build_graph

_RULES = {
    "dr": {"kind": "deep-r", "rule_options": {"alpha": 1e-3, "temperature": 1e-6}},
    "sdr": {"kind": "soft-deep-r", "rule_options": {"alpha": 1e-3, "temperature": 1e-6, "theta_min": -0.05}},
    "ncg": {"kind": "ncg", "rule_options": {"strength_ratio": 5.0}},
    "static": {"kind": "static"},
}


def _raw(output=None, protocols=_RULES, fractions=(0.5, 0.8)):
    raw = builtin_spec("smoke").to_dict()
    raw["training"] = dict(raw["training"], momentum=0.0)
    raw["protocols"] = {name: dict(table) for name, table in protocols.items()}
    raw["pruning_fractions"] = list(fractions)
    if output is not None:
        raw["output"] = str(output)
    return raw


def test_the_pruning_fraction_sets_each_rules_sparsity():
    spec = spec_from_dict(_raw())
    shape = (16, 6)
    dr = spec.protocol("dr").rule(0.8, 0.3, shape=shape)
    assert isinstance(dr, DeepR) and dr.k == round(0.2 * 96) and (dr.alpha, dr.temperature) == (1e-3, 1e-6)
    sdr = spec.protocol("sdr").rule(0.8, 0.3, shape=shape)
    assert isinstance(sdr, SoftDeepR) and sdr.p0 == pytest.approx(0.2) and sdr.theta_min == -0.05
    ncg = spec.protocol("ncg").rule(0.8, 0.3, shape=shape)
    assert isinstance(ncg, NCG) and ncg.p == pytest.approx(0.2)
    static = spec.protocol("static").rule(0.8, 0.3, shape=shape)
    assert static.at_epochs == (0,) and isinstance(static.criterion, RandomPruning) and static.fraction == 0.8
    per_unit = spec_from_dict(_raw(protocols={"dr": {"kind": "deep-r", "rule_options": {
        "alpha": 1e-3, "temperature": 1e-6, "scope": "hidden"}}}))
    assert per_unit.protocol("dr").rule(0.75, 0.3, shape=shape).k == 4  # round(0.25 * 16) per hidden unit
    # The rules act during training: one pruning-time label, sorted before the epochs.
    assert {p.pruning_time for p in spec.points() if p.protocol != "static"} == {DURING}
    assert spec.coords()["pruning_time"][0] == DURING


@pytest.mark.parametrize(
    "edit, names",
    [
        ({"dr": {"kind": "deep-r", "rule_options": {"alpha": 1e-3, "temperature": 1e-6, "k": 10}}},
         ["protocols.dr.rule_options.k", "pruning_fraction"]),
        ({"dr": {"kind": "deep-r", "rule_options": {"temperature": 1e-6}}}, ["protocols.dr.rule_options.alpha",
                                                                            "required"]),
        ({"dr": {"kind": "deep-r", "rule_options": {"alpha": 1e-3, "temperature": -1.0}}},
         ["protocols.dr.rule_options", "temperature must be >= 0"]),
        ({"dr": {"kind": "deep-r", "rule_options": {"alpha": 1e-3, "temperature": 1e-6, "theta_min": -1.0}}},
         ["protocols.dr.rule_options", "'theta_min'", "temperature"]),
        ({"sdr": {"kind": "soft-deep-r", "rule_options": {"alpha": 1e-3, "temperature": 1e-6, "theta_min": 0.5}}},
         ["protocols.sdr.rule_options", "theta_min", "< 0"]),
        ({"ncg": {"kind": "ncg", "rule_options": {"threshold": 1.5}}}, ["protocols.ncg.rule_options", "threshold"]),
        ({"ncg": {"kind": "ncg", "criterion": "random"}}, ["protocols.ncg.criterion", "no pruning criterion"]),
        ({"after": {"kind": "after", "epoch": 20, "rule_options": {"alpha": 1.0}}},
         ["protocols.after.rule_options", "no rule options"]),
        ({"dr": {"kind": "deep-r", "epoch": 5, "rule_options": {"alpha": 1e-3, "temperature": 1e-6}}},
         ["protocols.dr.epoch", "no pruning time"]),
    ],
)
def test_bad_rule_options_name_the_key(edit, names):
    with pytest.raises(SpecError) as err:
        spec_from_dict(_raw(protocols=edit))
    for name in names:
        assert name in str(err.value)


def test_rules_refuse_momentum_and_weight_decay_and_a_degenerate_sparsity():
    raw = _raw()
    raw["training"]["momentum"] = 0.9
    with pytest.raises(SpecError, match=r"training\.momentum: expected 0 for protocol kind 'deep-r'"):
        spec_from_dict(raw)
    # soft-DEEP R at f = 0 has p0 = 1: theta_min cannot be derived from p0 and must be given
    with pytest.raises(SpecError, match=r"protocols\.sdr\.rule_options: at pruning_fraction 0 .*theta_min"):
        spec_from_dict(_raw(protocols={"sdr": {"kind": "soft-deep-r", "rule_options": {
            "alpha": 1e-3, "temperature": 1e-6}}}, fractions=(0.0, 0.5)))
    # K = round(0.004 * 96) = 0 connections
    with pytest.raises(SpecError, match=r"protocols\.dr\.rule_options: at pruning_fraction 0\.996 .*DeepR\.k"):
        spec_from_dict(_raw(protocols={"dr": _RULES["dr"]}, fractions=(0.5, 0.996)))


def _deep_r_task(output):
    raw = _raw(output, protocols={"dr": _RULES["dr"]}, fractions=(0.75,))
    raw["training"]["max_epochs"] = 24
    raw["stopping"] = dict(raw["stopping"], min_epochs=10)
    spec = spec_from_dict(raw)
    graph = build_graph(spec)
    task = next(t for t in graph.tasks.values() if t.kind == "point" and t.point.seed == 0)
    assert task.depends == ()  # a rule trains from initialisation: no dense run to wait for
    return spec, task


class _Killed(Exception):
    pass


def test_deep_r_point_keeps_k_connections_and_resumes_to_the_same_result(tmp_path, monkeypatch):
    spec, task = _deep_r_task(tmp_path / "whole")
    reference = io.load_dataset(compute(spec, task)["result"])
    k = round(0.25 * 16 * 6)
    assert int(reference["mask"].sum()) == k == int(reference["n_connections"])
    assert float(reference["connectivity"]) == pytest.approx(k / 96)
    assert str(reference["pruning_time"].values) == DURING

    cut, _ = _deep_r_task(tmp_path / "cut")
    real = point_module.train_to_convergence

    def dying(*args, on_evaluation, **kwargs):
        calls = []

        def save_then_die(state, epochs, values):
            on_evaluation(state, epochs, values)
            calls.append(1)
            if len(calls) == 3:
                raise _Killed

        return real(*args, on_evaluation=save_then_die, **kwargs)

    monkeypatch.setattr(point_module, "train_to_convergence", dying)
    with pytest.raises(_Killed):
        compute(cut, task, checkpoint_seconds=0)
    assert task_paths(cut.output, task.key)["partial"].exists()
    monkeypatch.setattr(point_module, "train_to_convergence", real)
    resumed = io.load_dataset(compute(cut, task, checkpoint_seconds=0)["result"])
    for name in reference.variables:
        if name not in ("train_time",):
            np.testing.assert_array_equal(resumed[name].values, reference[name].values, err_msg=name)
