"""Adaptive refinement: which fractions a round adds, and the loop of rounds in run_study
(budget, target width, persistence of the added fractions) on a synthetic quality curve."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

import studies.runner as runner_module
from analysis.transition import locate_transition
from studies.refine import next_fractions, refined_spec
from studies.spec import DIMS, SpecError, spec_from_toml

_TOML = """
name = "refine"
output = "{output}"
n_hidden = [3]
pruning_fractions = [0.0, 0.2, 0.4, 0.6, 0.8]
seeds = [0, 1, 2, 3]

[data]
kind = "teacher"
n_visible = 8
n_hidden = 2
n_train = 100
n_validation = 100
n_test = 100

[training]
batch_size = 50

[protocols.init]
kind = "init"

[refine]
target_width = {width}
max_points = {budget}
n_bootstrap = 200
"""


def _spec(tmp_path, width=0.05, budget=4):
    return spec_from_toml(_TOML.format(output=tmp_path, width=width, budget=budget))


def _study(spec, location=0.53):
    """A merged-study stand-in: a sharp step of the quality at ``location`` plus seed noise."""
    fractions = np.array(spec.pruning_fractions)
    noise = np.random.default_rng(1).normal(0.0, 0.05, size=(len(fractions), len(spec.seeds)))
    step = np.where(fractions < location, -5.0, -8.0)[:, None] + noise
    values = step[None, None, :, None, :]
    coords = {"protocol": ["init"], "pruning_time": ["0"], "pruning_fraction": fractions, "n_hidden": [3],
              "seed": list(spec.seeds)}
    return xr.Dataset({"test_log_likelihood": (DIMS, values), "finished": (DIMS, np.ones(values.shape, bool))},
                      coords=coords)


def test_a_round_adds_the_midpoints_inside_the_interval_nearest_first(tmp_path):
    spec = _spec(tmp_path)
    study = _study(spec)
    found = locate_transition(study["test_log_likelihood"], n_bootstrap=200, seed=0).squeeze()
    lower, upper, location = (float(found[n]) for n in ("location_lower", "location_upper", "location"))
    grid = np.array(spec.pruning_fractions)
    # the interval widened to the grid cell of the location ([0.4, 0.6])
    lower, upper = min(lower, 0.4), max(upper, 0.6)
    expected = [round((a + b) / 2, 6) for a, b in zip(grid[:-1], grid[1:]) if b > lower and a < upper]
    expected.sort(key=lambda f: (abs(f - location), f))
    assert expected and next_fractions(spec, study, 10) == tuple(expected)
    assert next_fractions(spec, study, 1) == tuple(expected[:1])
    assert next_fractions(spec, study, 0) == ()
    wide = _spec(tmp_path, width=1.0)
    assert next_fractions(wide, study, 10) == ()  # the interval is already narrower than the target


def test_rounds_stop_at_the_budget_and_are_remembered(tmp_path, monkeypatch):
    spec = _spec(tmp_path / "out", budget=3)
    rounds = []

    def fake_graph(current, *args):
        rounds.append(current.pruning_fractions)
        return []

    monkeypatch.setattr(runner_module, "_run_graph", fake_graph)
    monkeypatch.setattr(runner_module, "merge", _study)
    result = runner_module.run_study(spec)
    added = sorted(set(rounds[-1]) - set(spec.pruning_fractions))
    # bisection towards the step at 0.53: 0.5, then 0.55, then 0.525 (each the cell's midpoint)
    assert added == [0.5, 0.525, 0.55]
    assert [len(r) for r in rounds] == sorted(len(r) for r in rounds) and len(rounds) >= 2
    assert json.loads((tmp_path / "out" / "refined.json").read_text()) == {"fractions": added}
    assert refined_spec(spec).pruning_fractions == rounds[-1]
    assert list(result.study["pruning_fraction"].values) == list(rounds[-1])
    # a rerun starts from the refined grid and has no budget left: one round, nothing added
    rounds.clear()
    runner_module.run_study(spec)
    assert rounds == [refined_spec(spec).pruning_fractions]


def test_refine_needs_two_seeds(tmp_path):
    with pytest.raises(SpecError, match="seeds: expected at least 2 seeds with"):
        spec_from_toml(_TOML.format(output=tmp_path, width=0.05, budget=2).replace("[0, 1, 2, 3]", "[0]"))
