"""Study specs: the grid, stable keys, round trips, and errors that name the TOML key before any compute."""

from __future__ import annotations

import json
import math
import tomllib

import pytest

from studies.builtin import BUILTIN, builtin_spec
from studies.spec import (
    TIMED_KINDS,
    EvaluationSpec,
    SpecError,
    StoppingRule,
    load_spec,
    spec_from_dict,
    spec_from_toml,
)


def _raw() -> dict:
    return tomllib.loads(BUILTIN["smoke"].toml)


def test_smoke_grid_is_the_product_of_the_axes():
    spec = builtin_spec("smoke")
    points = spec.points()
    assert len(points) == 1 * 2 * 3 * 2
    assert len({p.key for p in points}) == len(points)
    assert {(p.n_hidden, p.protocol, p.pruning_time, p.pruning_fraction, p.seed) for p in points} == {
        (6, pr, t, f, s) for pr, t in (("init", "0"), ("after", "20")) for f in (0.0, 0.5, 0.8) for s in (0, 1)
    }


def test_pruning_times_are_a_grid_axis():
    raw = _raw()
    raw["protocols"]["after"] = {"kind": "after", "epochs": [20, "converged", 5]}
    spec = spec_from_dict(raw)
    assert spec.coords()["pruning_time"] == ["0", "5", "20", "converged"]
    assert {p.pruning_time for p in spec.points() if p.protocol == "after"} == {"5", "20", "converged"}
    assert len(spec.points()) == (1 + 3) * 3 * 2
    # the old single epoch is the list of one epoch: same points, same keys
    single = _raw()
    listed = _raw()
    listed["protocols"]["after"] = {"kind": "after", "epochs": [20]}
    assert [p.key for p in spec_from_dict(single).points()] == [p.key for p in spec_from_dict(listed).points()]
    assert spec_from_dict(spec.to_dict()) == spec


def test_keys_are_stable_under_new_points_and_change_with_settings():
    raw = _raw()
    keys = {p.key for p in spec_from_dict(raw).points()}
    grown = dict(raw, pruning_fractions=[0.0, 0.5, 0.8, 0.9], seeds=[0, 1, 2], output="elsewhere")
    grown["protocols"] = dict(raw["protocols"], after={"kind": "after", "epochs": [10, 20, "converged"]})
    assert keys < {p.key for p in spec_from_dict(grown).points()}
    changed = dict(raw, training=dict(raw["training"], learning_rate=0.2))
    assert keys.isdisjoint({p.key for p in spec_from_dict(changed).points()})
    # AIS with resampling is a setting of its own; plain AIS (the default) keeps the keys it had
    # before the option existed: neither resampling field enters them.
    resampled = dict(raw, evaluation=dict(raw.get("evaluation", {}), ais_resample=0.5))
    assert keys.isdisjoint({p.key for p in spec_from_dict(resampled).points()})
    plain = spec_from_dict(raw)
    p = plain.points()[0]
    evaluation = plain.point_config(p.n_hidden, p.protocol, p.pruning_time, p.pruning_fraction, p.seed)["evaluation"]
    assert "ais_resample" not in evaluation and "ais_groups" not in evaluation and "ais_chains" in evaluation
    # likewise the AIS schedule: "linear" (the default) leaves the keys as they were, "classic" changes them
    assert "ais_schedule" not in evaluation
    classic = dict(raw, evaluation=dict(raw.get("evaluation", {}), ais_schedule="classic"))
    assert keys.isdisjoint({p.key for p in spec_from_dict(classic).points()})
    # and the reverse AIS run: off (the default, or said) leaves the keys as they were, on changes them
    assert "ais_reverse" not in evaluation
    for value, same in ((False, True), (True, False)):
        reverse = dict(raw, evaluation=dict(raw.get("evaluation", {}), ais_reverse=value))
        assert ({p.key for p in spec_from_dict(reverse).points()} == keys) == same, value
    # and RAISE: 0 (the default, or said) leaves the keys as they were, chains per image change them
    assert "ais_raise" not in evaluation
    for value, same in ((0, True), (2, False)):
        raised = dict(raw, evaluation=dict(raw.get("evaluation", {}), ais_raise=value))
        assert ({p.key for p in spec_from_dict(raised).points()} == keys) == same, value


def test_the_evaluation_repr_shows_ais_reverse_only_when_on():
    # studies.rewiring keys the scores kept in a work_dir by this repr: without the reverse run it
    # is the repr from before ais_reverse existed, so a running campaign's kept scores are read
    assert repr(EvaluationSpec(log_likelihood="ais", ais_reverse=False)) == (
        "EvaluationSpec(log_likelihood='ais', ais_chains=100, ais_betas=10000, ais_resample=0.0, ais_groups=10, "
        "ais_schedule='linear', metrics=(), n_samples=1000, n_sweeps=1000, mixing_chains=16, mixing_sweeps=2000, "
        "mixing_burn_in=200, coupling_threshold=0.01, classifier_seed=0)")
    assert ", ais_schedule='linear', ais_reverse=True, metrics=()" in repr(EvaluationSpec(ais_reverse=True))


def test_the_evaluation_repr_shows_ais_raise_only_when_on():
    # likewise for RAISE: off, the repr (the kept scores' key) is the one from before the option
    assert repr(EvaluationSpec(log_likelihood="ais", ais_raise=0)) == repr(EvaluationSpec(log_likelihood="ais"))
    assert "ais_raise" not in repr(EvaluationSpec(log_likelihood="ais", ais_reverse=True))
    assert ", ais_reverse=True, ais_raise=4, metrics=()" in repr(EvaluationSpec(ais_reverse=True, ais_raise=4))
    assert ", ais_schedule='linear', ais_raise=4, metrics=()" in repr(EvaluationSpec(ais_raise=4))


def test_round_trip_through_to_dict():
    spec = builtin_spec("smoke")
    assert spec_from_dict(spec.to_dict()) == spec


def test_relative_paths_are_relative_to_the_spec_file(tmp_path):
    (tmp_path / "s.toml").write_text(BUILTIN["smoke"].toml)
    assert load_spec(tmp_path / "s.toml").output == str(tmp_path / "runs" / "study-smoke")


def _edit(path: str, value):
    raw = _raw()
    *parents, last = path.split(".")
    table = raw
    for p in parents:
        table = table[p]
    if value is _DELETE:
        del table[last]
    else:
        table[last] = value
    if last == "epochs":  # replaces the single epoch (giving both is its own error)
        table.pop("epoch", None)
    return raw


def test_epoch_and_epochs_together_are_refused():
    raw = _raw()
    raw["protocols"]["after"]["epochs"] = [10]
    with pytest.raises(SpecError, match=r"protocols\.after\.epoch: expected either epoch or epochs"):
        spec_from_dict(raw)


_DELETE = object()


@pytest.mark.parametrize(
    "path, value, names",
    [
        ("lr", 0.1, ["'lr'", "allowed keys"]),
        ("training.lr", 0.1, ["training", "'lr'", "learning_rate"]),
        ("pruning_fractions", [0.0, 1.5], ["pruning_fractions[1]", "[0, 1)", "1.5"]),
        ("seeds", [], ["seeds", "non-empty"]),
        ("protocols", {}, ["protocols", "non-empty"]),
        ("n_hidden", [6, 6], ["n_hidden", "distinct"]),
        ("training.learning_rate", -1.0, ["training.learning_rate", "> 0"]),
        ("training.estimator", "sgd", ["training.estimator", "'pcd'"]),
        ("training.batch_size", 600, ["training.batch_size", "data.n_train"]),
        ("protocols.after.epoch", 61, ["protocols.after.epoch", "max_epochs"]),
        ("protocols.after.epochs", [10, "later"], ["protocols.after.epochs[1]", "'converged'", "later"]),
        ("protocols.after.epochs", [10, 10], ["protocols.after.epochs", "distinct"]),
        ("protocols.after.epochs", [0], ["protocols.after.epochs[0]", ">= 1"]),
        ("protocols.after.epochs", 10, ["protocols.after.epochs", "a list"]),
        ("protocols.init.epochs", [5], ["protocols.init.epochs", "no pruning time", "'init'"]),
        ("protocols.after.kind", "later", ["protocols.after.kind", "'rewind'"]),
        ("protocols.after.criterion", "biggest", ["protocols.after.criterion", "'global_magnitude'"]),
        ("data.kind", "cifar", ["data.kind", "'mnist'"]),
        ("data.n_train", _DELETE, ["data.n_train", "required"]),
        ("stopping.window", 0, ["stopping.window", ">= 1"]),
        ("stopping.min_epochs", 61, ["stopping.min_epochs", "max_epochs"]),
        # a rule that can never fire: every point would end unconverged and be excluded
        ("stopping.window", 31, ["stopping.window", "31 * 2 = 62 epochs", "training.max_epochs = 60"]),
        ("stopping.every", 16, ["stopping.window", "4 * 16 = 64 epochs", "training.max_epochs = 60"]),
        ("evaluation.log_likelihood", "guess", ["evaluation.log_likelihood", "'ais'"]),
        ("evaluation.ais_resample", 1.0, ["evaluation.ais_resample", "[0, 1)"]),
        ("evaluation.ais_resample", -0.5, ["evaluation.ais_resample", ">= 0"]),
        ("evaluation.ais_schedule", "geometric", ["evaluation.ais_schedule", "'classic'"]),
        ("evaluation.ais_reverse", "yes", ["evaluation.ais_reverse", "true or false", "'yes'"]),
        ("evaluation.ais_reverse", 1, ["evaluation.ais_reverse", "true or false"]),
        ("evaluation.ais_raise", -1, ["evaluation.ais_raise", "an integer >= 0", "-1"]),
        ("evaluation.ais_raise", True, ["evaluation.ais_raise", "an integer", "True"]),
        ("evaluation.ais_raise", 1.5, ["evaluation.ais_raise", "an integer", "1.5"]),
    ],
)
def test_malformed_specs_name_the_key(path, value, names):
    with pytest.raises(SpecError) as err:
        spec_from_dict(_edit(path, value))
    for name in names:
        assert name in str(err.value)


@pytest.mark.parametrize("field", ["k", "n_chains"])
def test_an_estimator_setting_is_named_by_its_own_key(field):
    # "training.estimator: k must be an integer >= 1, got 0" named the wrong key
    raw = _raw()
    raw["training"].update(estimator="pcd", **{field: 0})
    with pytest.raises(SpecError, match=f"^training.{field}: must be an integer >= 1, got 0$"):
        spec_from_dict(raw)


@pytest.mark.parametrize("estimator, option, value, takers", [
    ("exact", "k", -5, "'cd', 'pcd', 'ptpcd'"),
    ("exact", "k", 10, "'cd', 'pcd', 'ptpcd'"),
    ("exact", "n_chains", 100, "'pcd', 'ptpcd'"),
    ("cd", "n_chains", 0, "'pcd', 'ptpcd'"),
    ("cd", "n_temps", 5, "'ptpcd'"),
    ("pcd", "n_temps", 1, "'ptpcd'"),
])
def test_an_option_the_estimator_does_not_take_is_refused(estimator, option, value, takers):
    # it was dropped silently, yet entered the points' keys
    raw = _raw()
    raw["training"]["estimator"] = estimator
    spec = spec_from_dict(raw)
    assert option not in spec.to_dict()["training"] and spec_from_dict(spec.to_dict()) == spec
    raw["training"][option] = value
    with pytest.raises(SpecError, match=rf"^training\.{option}: expected no {option} with estimator '{estimator}' "
                       rf"\({option} is an option of {takers};"):
        spec_from_dict(raw)


def test_an_ignored_option_in_the_file_is_refused_at_its_default_value_too():
    # k = 1 with the exact gradient passed, as the default it equals; a key in the file is set
    # (n_chains and n_temps default to None, which TOML cannot write)
    raw = _raw()
    raw["training"] = {k: v for k, v in raw["training"].items() if k not in ("k", "n_chains", "n_temps")}
    raw["training"].update(estimator="exact", k=1)
    with pytest.raises(SpecError, match=r"^training\.k: expected no k with estimator 'exact'"):
        spec_from_dict(raw)
    # the Python API cannot tell a default from unset: the spec without the key has k = 1 and is valid
    del raw["training"]["k"]
    assert spec_from_dict(raw).training.k == 1


def test_to_json_stamps_every_field_as_before():
    # stored studies are keyed by to_json: leaving ignored options out of to_dict must not change it
    raw = _raw()
    raw["training"] = {k: v for k, v in raw["training"].items() if k not in ("k", "n_chains", "n_temps")}
    raw["training"]["estimator"] = "exact"  # k, n_chains and n_temps ignored
    spec = spec_from_dict(raw)
    assert any(p.kind != "rewind" for p in spec.protocols)
    stamped = json.loads(spec.to_json())
    assert {"k", "n_chains", "n_temps"} <= set(stamped["training"])
    assert all("rewind_epoch" in p for p in stamped["protocols"].values())
    assert {"k", "n_chains", "n_temps"}.isdisjoint(spec.to_dict()["training"])
    full = {**spec.to_dict(), "training": {**spec.to_dict()["training"], "k": 1, "n_chains": None, "n_temps": None},
            "protocols": {n: {"rewind_epoch": 0, **p} for n, p in spec.to_dict()["protocols"].items()}}
    assert stamped == json.loads(json.dumps(full))  # (tuples as JSON lists)


@pytest.mark.parametrize("kind", ["init", "after", "reinit", "scratch", "static"])
def test_rewind_epoch_is_refused_for_kinds_that_do_not_rewind(kind):
    raw = _raw()
    table = {"kind": kind, **({"epochs": [20]} if kind in TIMED_KINDS else {})}
    raw["protocols"] = {"p": table}
    assert "rewind_epoch" not in spec_from_dict(raw).to_dict()["protocols"]["p"]
    for value in (7, 0):  # 0, the default, too: a key in the file is set
        raw["protocols"] = {"p": dict(table, rewind_epoch=value)}
        with pytest.raises(SpecError, match=rf"^protocols\.p\.rewind_epoch: expected no rewind_epoch for kind "
                           rf"'{kind}' \(only kind 'rewind'"):
            spec_from_dict(raw)


def test_resampling_populations_must_divide_the_chains():
    raw = _edit("evaluation.ais_resample", 0.5)
    raw["evaluation"]["ais_groups"] = 30  # 100 chains by default
    with pytest.raises(SpecError, match=r"evaluation\.ais_groups.*divisor of ais_chains \(100\)"):
        spec_from_dict(raw)


def test_unreadable_mnist_path_is_named(tmp_path):
    raw = _raw()
    raw["data"] = {"kind": "mnist", "path": str(tmp_path / "missing.npz"), "n_train": 500, "n_validation": 100,
                   "n_test": 100}
    with pytest.raises(SpecError, match=r"data\.path: expected a readable mnist.npz"):
        spec_from_dict(raw)


def test_exact_likelihood_of_a_model_too_large_to_enumerate():
    raw = _raw()
    raw["data"] = dict(raw["data"], n_visible=30)
    raw["n_hidden"] = [6, 30]
    with pytest.raises(SpecError, match=r"evaluation\.log_likelihood: expected 'ais' for n_hidden \[30\]"):
        spec_from_dict(raw)
    raw["evaluation"] = {"log_likelihood": "ais"}
    with pytest.raises(SpecError, match=r"stopping\.metric: expected 'pseudo_log_likelihood'"):
        spec_from_dict(raw)
    raw["stopping"] = dict(raw["stopping"], metric="pseudo_log_likelihood")
    assert spec_from_dict(raw).n_hidden == (6, 30)


def test_invalid_toml_is_reported():
    with pytest.raises(SpecError, match="not valid TOML"):
        spec_from_toml("name = ")


def test_stopping_rule_gain_by_hand():
    rule = StoppingRule(window=2, tolerance=0.1)
    assert math.isinf(rule.gain([1.0, 2.0]))  # needs window + 1 evaluations
    # best of the last two (2.05) minus best before (2.0)
    assert rule.gain([1.0, 2.0, 1.5, 2.05]) == pytest.approx(0.05)
    assert rule.converged([1.0, 2.0, 1.5, 2.05])
    assert not rule.converged([1.0, 2.0, 1.5, 2.2])
    # a dip below the best is "no gain": negative
    assert rule.gain([1.0, 2.0, 1.5, 1.9]) == pytest.approx(-0.1)


def test_stopping_rule_does_not_call_the_independent_unit_plateau_converged():
    """A flat trace at the independent-unit level (a diluted model that has not started to learn)
    converges by the gain alone, but not with plateau_margin: its best value must clear the
    baseline by the margin first. A trace that left the plateau converges as before."""
    flat = [-19.40, -19.401, -19.399, -19.400, -19.400]
    plain = StoppingRule(window=2, tolerance=0.01)
    guarded = StoppingRule(window=2, tolerance=0.01, plateau_margin=0.05)
    assert plain.converged(flat, baseline=-19.40)
    assert not guarded.converged(flat, baseline=-19.40)
    assert guarded.converged([-19.4, -18.9, -18.8, -18.801, -18.80], baseline=-19.40)
    # the margin is a strict requirement on the best value: 0.049 above the baseline is not enough
    assert not guarded.converged([-19.4, -19.351, -19.352, -19.351], baseline=-19.40)
    assert guarded.converged([-19.4, -19.349, -19.352, -19.351], baseline=-19.40)
    with pytest.raises(SpecError, match="stopping.plateau_margin"):
        StoppingRule(plateau_margin=-1.0).validate()
