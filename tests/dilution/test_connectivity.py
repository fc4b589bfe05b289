from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pytest

from dilution.connectivity import ConnectivityRule, RuleInfo, StaticMask, StepContext
from dilution.estimators import PCD
from dilution.parameters import Parameters
from dilution.pruning import GlobalMagnitude, RandomPruning, prune
from dilution.pruning_rules import PruningProtocol
from dilution.statistics import GradientEstimate
from dilution.training import TrainConfig, train


def _params(seed=0, shape=(6, 5), p=0.7):
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < p
    w = np.where(mask, rng.standard_normal(shape), 0.0)
    return Parameters(w, np.zeros(shape[0]), np.zeros(shape[1]), mask)


def _context(step=1, epoch=0, epoch_end=False, epochs=4):
    return StepContext(step, epoch, epoch_end, 0.1, 0.0, 40, 10, epochs, 0)


def _data(n=40, n_visible=6, seed=0):
    return (np.random.default_rng(seed).random((n, n_visible)) < 0.4).astype(np.float64)


def test_static_mask_changes_nothing():
    p = _params()
    rule = StaticMask()
    assert isinstance(rule, ConnectivityRule)
    p1, state, info = rule.init(p, _context(step=0))
    p2, state, info = rule.update(p1, state, GradientEstimate(p.weights, p.visible_bias, p.hidden_bias), _context())
    assert p2 is p and info == RuleInfo(0, 0)


def test_pruning_protocol_fires_only_at_end_of_its_epoch():
    p = _params(3)
    rule = PruningProtocol(0.5, at_epochs=(2,))
    grad = GradientEstimate(p.weights, p.visible_bias, p.hidden_bias)
    _, state, _ = rule.init(p, _context(step=0))
    assert rule.update(p, state, grad, _context(epoch=1, epoch_end=False))[0] is p
    assert rule.update(p, state, grad, _context(epoch=0, epoch_end=True))[0] is p
    new, _, info = rule.update(p, state, grad, _context(epoch=1, epoch_end=True))
    assert info.n_removed == round(0.5 * p.mask.sum()) and info.n_added == 0
    assert np.all(new.weights[~new.mask] == 0)
    assert np.array_equal(new.mask, prune(p.mask, p.weights, GlobalMagnitude(), fraction=0.5))


def test_pruning_in_training():
    data = _data()
    cfg = TrainConfig(estimator=PCD(2), epochs=4, batch_size=10, learning_rate=0.05, checkpoints=(8, 9, 16),
                      rule=PruningProtocol(0.5, at_epochs=(2,), criterion=RandomPruning()))
    seen = []
    result = train((6, 5), data, cfg, seed=1, callbacks=[lambda r: seen.append(r)])
    h = result.history
    # 4 updates per epoch: pruning after update 8 (end of epoch 2), half of 30 connections.
    assert list(h.n_connections.values) == [30, 15, 15, 15]
    assert list(h.connections_removed.values) == [0, 15, 0, 0]
    assert result.model.n_connections == 15
    for r in seen:
        assert np.all(r.model.weights[~r.model.mask] == 0)
    # The pruned connections stay absent, and the history's masks are the models' masks.
    assert np.array_equal(seen[1].model.mask, result.model.mask)
    for r in seen:
        assert np.array_equal(h["mask"].values[r.index], r.model.mask)


def test_pruning_at_initialisation():
    cfg = TrainConfig(epochs=1, batch_size=10, rule=PruningProtocol(0.8, at_epochs=(0,)), checkpoints=1)
    h = train((6, 5), _data(), cfg, seed=0).history
    assert h.n_connections.values[0] == 6 and h.attrs["rule_at_init_n_removed"] == 24
    assert list(h.connections_removed.values) == [0]


class _FlipInfo(NamedTuple):
    n_added: int
    n_removed: int
    mean_abs_gradient_absent: float


@dataclass(frozen=True)
class _RegrowRule:
    """Test rule: at every step removes one random connection and adds one absent pair with a
    nonzero weight, and also writes garbage weights off the new mask (the trainer must zero them)."""

    def init(self, params, context):
        return params, 0, _FlipInfo(0, 0, 0.0)

    def update(self, params, state, gradient, context):
        rng = np.random.default_rng(context.seed)
        mask = params.mask.copy()
        on, off = np.flatnonzero(mask), np.flatnonzero(~mask)
        mask.ravel()[rng.choice(on)] = False
        mask.ravel()[rng.choice(off)] = True
        weights = params.weights + 0.5  # nonzero everywhere, including off the new mask
        info = _FlipInfo(1, 1, float(np.abs(gradient.weights[~params.mask]).mean()))
        return params._replace(weights=weights, mask=mask), state + 1, info


def test_custom_rule_invariant_and_logged_info():
    data = _data()
    seen = []
    cfg = TrainConfig(epochs=2, batch_size=10, momentum=0.9, connectivity=0.5, rule=_RegrowRule(), checkpoints=3)
    result = train((6, 5), data, cfg, seed=0, callbacks=[seen.append])
    for r in seen:
        assert np.all(r.model.weights[~r.model.mask] == 0)
    assert np.all(result.model.weights[~result.model.mask] == 0)
    assert result.model.n_connections == 15
    h = result.history
    # 4 updates per epoch, each adding and removing one connection; info fields as means per update.
    assert list(h.connections_added.values) == [4, 4] and list(h.connections_removed.values) == [4, 4]
    assert h.sizes["epoch"] == 2 and np.all(h.rule_mean_abs_gradient_absent.values > 0)
    assert seen[-1].rule_state == 8


def test_rule_cannot_write_into_parameters():
    @dataclass(frozen=True)
    class _Writer:
        def init(self, params, context):
            params.weights[0, 0] = 1.0
            return params, None, RuleInfo()

        def update(self, params, state, gradient, context):
            return params, state, RuleInfo()

    with pytest.raises(ValueError, match="read-only"):
        train((6, 5), _data(), TrainConfig(epochs=1, batch_size=10, rule=_Writer()), seed=0)


def test_rule_returning_wrong_shape_is_reported():
    @dataclass(frozen=True)
    class _Bad:
        def init(self, params, context):
            return params._replace(mask=np.ones((2, 2), dtype=bool)), None, RuleInfo()

        def update(self, params, state, gradient, context):
            return params, state, RuleInfo()

    with pytest.raises(ValueError, match=r"_Bad returned mask as bool \(2, 2\); expected bool \(6, 5\)"):
        train((6, 5), _data(), TrainConfig(epochs=1, batch_size=10, rule=_Bad()), seed=0)


@dataclass(frozen=True)
class _Exposing:
    """Test rule with a per-pair state that it exposes at checkpoints."""

    def init(self, params, context):
        return params, np.zeros(params.weights.shape), RuleInfo()

    def update(self, params, state, gradient, context):
        return params, state + 1.0, RuleInfo()

    def checkpoint_arrays(self, state):
        return {"updates_seen": state}


def test_rule_arrays_are_recorded_at_checkpoints():
    h = train((6, 5), _data(), TrainConfig(epochs=2, batch_size=10, rule=_Exposing(), checkpoints=(3, 8)),
              seed=0).history
    assert h["rule_updates_seen"].dims == ("checkpoint", "visible", "hidden")
    np.testing.assert_array_equal(h["rule_updates_seen"].values[:, 0, 0], [0, 3, 8])
