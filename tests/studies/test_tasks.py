"""The task graph: shared dense phases, pruned points bit-identical to one run of their protocol
from initialisation, and grid points added without changing the existing ones."""

from __future__ import annotations

import numpy as np
import pytest

from dilution import io
from dilution.pruning_rules import from_scratch
from studies.convergence import train_to_convergence
from studies.data import load_data
from studies.point import read_point, run_seed, task_paths
from studies.runner import run_study
from studies.spec import DIMS, spec_from_dict
from studies.tasks import build_graph

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _raw(output: str) -> dict:
    # PCD (persistent chains in the state) so that continuing a saved dense state is tested on
    # an estimator with a state of its own.
    return {
        "name": "tiny", "output": output, "n_hidden": [4], "pruning_fractions": [0.0, 0.5], "seeds": [0],
        "data": {"kind": "teacher", "n_visible": 10, "n_hidden": 3, "weight_scale": 2.0, "seed": 0, "n_train": 200,
                 "n_validation": 200, "n_test": 200},
        "training": {"estimator": "pcd", "k": 1, "n_chains": 20, "batch_size": 50, "learning_rate": 0.05,
                     "momentum": 0.5, "weight_scale": 0.3, "max_epochs": 12},
        "stopping": {"every": 1, "window": 2, "tolerance": 0.02, "min_epochs": 3},
        "protocols": {
            "init": {"kind": "init"},
            "after": {"kind": "after", "epochs": [3, 5, "converged"]},
            "rewind": {"kind": "rewind", "epochs": [5], "rewind_epoch": 2},
            "reinit": {"kind": "reinit", "epochs": ["converged"]},
            "scratch": {"kind": "scratch", "epochs": [3]},
        },
    }


def test_the_graph_shares_the_dense_phase():
    spec = spec_from_dict(_raw("unused"))
    graph = build_graph(spec)
    kinds = [t.kind for t in graph.tasks.values()]
    # dense states at epochs 2 (rewind target), 3 and 5, one converged dense run, 7 pruned points
    assert kinds.count("dense") == 3 and kinds.count("converged") == 1 and kinds.count("point") == 7
    dense = {t.until: t for t in graph.tasks.values() if t.kind == "dense"}
    assert dense[2].depends == () and dense[3].depends == (dense[2].key,) and dense[5].depends == (dense[3].key,)
    converged = next(t.key for t in graph.tasks.values() if t.kind == "converged")
    for p, key in graph.cells.items():
        task = graph.tasks[key]
        if p.pruning_fraction == 0.0:
            assert key == converged
        elif p.protocol == "rewind":
            assert task.depends == (dense[5].key, dense[2].key)
        elif p.pruning_time == "converged":
            assert task.depends == (converged,)
        elif p.protocol != "init":
            assert task.depends == (dense[int(p.pruning_time)].key,)
    order = list(graph.tasks)
    assert all(order.index(d) < order.index(k) for k, t in graph.tasks.items() for d in t.depends)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    spec = spec_from_dict(_raw(str(tmp_path_factory.mktemp("tiny"))))
    result = run_study(spec)
    assert result.count("failed") == 0
    return spec, build_graph(spec)


@pytest.mark.parametrize("protocol, time", [("init", "0"), ("after", "3"), ("after", "converged"),
                                            ("rewind", "5"), ("reinit", "converged")])
def test_a_pruned_point_is_one_run_of_its_protocol_from_initialisation(tiny, protocol, time):
    spec, graph = tiny
    point = next(p for p in graph.cells if (p.protocol, p.pruning_time, p.pruning_fraction) == (protocol, time, 0.5))
    key = graph.cells[point]
    ours = io.load_dataset(task_paths(spec.output, key)["result"])
    t = int(ours["pruned_at_epoch"])
    if time == "converged":
        dense = next(k for k in graph.tasks if graph.tasks[k].kind == "converged")
        assert t == int(read_point(task_paths(spec.output, dense)["result"], dense)["epochs_used"])
    data = load_data(spec.data)
    tr = spec.training
    from dilution.training import init_state

    rule = spec.protocol(protocol).rule(0.5, tr.weight_scale, at_epoch=t)
    state = init_state((10, 4), data.train, tr.config(rule, epochs=t + tr.max_epochs), seed=run_seed(4, 0))
    run = train_to_convergence(state, data.train, data.validation, spec.stopping, count_from_epoch=t)
    np.testing.assert_array_equal(ours["weights"].values, run.state.params.weights)
    np.testing.assert_array_equal(ours["hidden_bias"].values, run.state.params.hidden_bias)
    np.testing.assert_array_equal(ours["validation_trace"].values, run.values)
    assert int(ours["epochs_used"]) == run.epochs_used and bool(ours["converged"]) == run.converged


def test_scratch_trains_the_mask_of_after_on_a_fresh_model(tiny):
    spec, graph = tiny
    point = next(p for p in graph.cells if (p.protocol, p.pruning_fraction) == ("scratch", 0.5))
    ours = io.load_dataset(task_paths(spec.output, graph.cells[point])["result"])
    data = load_data(spec.data)
    tr = spec.training
    from dilution.training import init_state, iterate

    seed = run_seed(4, 0)
    state = init_state((10, 4), data.train, tr.config(spec.protocol("after").rule(0.5, tr.weight_scale, at_epoch=3),
                                                      epochs=3 + tr.max_epochs), seed=seed)
    for state in iterate(state, data.train, until=3 * state.plan.updates_per_epoch):
        pass
    np.testing.assert_array_equal(ours["mask"].values.astype(bool), state.params.mask)
    scratch = from_scratch(state.params.mask, data.train, tr.config(epochs=int(ours["epochs_used"])), seed=seed)
    np.testing.assert_array_equal(ours["weights"].values, scratch.model.weights)


def test_adding_grid_points_changes_no_existing_result(tiny, tmp_path):
    spec, _ = tiny
    raw = _raw(str(tmp_path / "grown"))
    raw["pruning_fractions"] = [0.0, 0.3, 0.5]
    raw["protocols"] = {"after": dict(raw["protocols"]["after"], epochs=[1, 3, 5, "converged"])}
    # the dense states of the existing times are shared with the grown study's (same keys)
    grown = spec_from_dict(raw)
    old = {p.key: p for p in spec.points() if p.protocol == "after"}
    assert set(old) < {p.key for p in grown.points()}
    result = run_study(grown)
    assert result.count("failed") == 0
    times = ["3", "5", "converged"]
    before = io.load_dataset(f"{spec.output}/study.nc").sel(protocol=["after"], pruning_time=times)
    after = result.study.sel(protocol=["after"], pruning_time=times, pruning_fraction=[0.0, 0.5])
    planned = before["planned"].values
    assert planned.sum() == 6 and after["finished"].values[planned].all()
    for name in before.data_vars:
        if name == "train_time":
            continue
        if before[name].dims == DIMS:
            np.testing.assert_array_equal(after[name].values[planned], before[name].values[planned], err_msg=name)
        else:
            np.testing.assert_array_equal(after[name].values, before[name].values, err_msg=name)
