"""Pruning protocols: timing, iterative density, rewinding, re-initialisation, from scratch."""

from __future__ import annotations

import numpy as np
import pytest

from dilution.estimators import PCD
from dilution.optim import LinearDecay
from dilution.pruning import GlobalMagnitude, RandomPruning, Saliency, UnitMagnitude, prune_to_count
from dilution.pruning_rules import PruningProtocol, from_scratch
from dilution.training import TrainConfig, init_state, train


def _data(n=40, n_visible=8, seed=0):
    return (np.random.default_rng(seed).random((n, n_visible)) < 0.4).astype(np.float64)


def _cfg(rule, epochs=4, **kw):
    # 40 samples, batch 10: 4 updates per epoch. Checkpoints at every epoch end.
    base = dict(estimator=PCD(2, n_chains=6), epochs=epochs, batch_size=10, learning_rate=0.1, momentum=0.7,
                checkpoints=tuple(range(4, 4 * epochs + 1, 4)), rule=rule)
    return TrainConfig(**{**base, **kw})


def test_iterative_density_follows_the_schedule_exactly():
    rule = PruningProtocol(0.3, at_epochs=(1, 2, 3), then="continue")
    h = train((8, 5), _data(), _cfg(rule), seed=0).history
    n0 = 40
    expected = [round(n0 * 0.7**r) for r in (1, 2, 3)]  # after epochs 1, 2, 3
    assert list(h.n_connections.values[1:4]) == expected and h.n_connections.values[4] == expected[-1]
    assert list(h.connections_removed.values) == [n0 - expected[0], expected[0] - expected[1], expected[1] - expected[2], 0]


def test_pruning_at_initialisation_uses_the_criterion_on_the_initial_weights():
    rule = PruningProtocol(0.75, at_epochs=(0,), criterion=GlobalMagnitude())
    cfg = _cfg(rule, epochs=1)
    state = init_state((8, 5), _data(), cfg, seed=3)
    start = init_state((8, 5), _data(), _cfg(PruningProtocol(0.0, at_epochs=(0,)), epochs=1), seed=3)
    expected = prune_to_count(start.params.mask, start.params.weights, GlobalMagnitude(), 10)
    np.testing.assert_array_equal(state.params.mask, expected)
    np.testing.assert_array_equal(state.params.weights, np.where(expected, start.params.weights, 0))


def test_saliency_at_initialisation_uses_the_gradient_of_the_first_batch():
    # Exact estimator and no shuffling: the gradient at initialisation is exactly that of data[:10].
    from dilution import exact
    from dilution.estimators import Exact

    data = _data()
    cfg = _cfg(PruningProtocol(0.5, at_epochs=(0,), criterion=Saliency()), epochs=1, estimator=Exact(), shuffle=False)
    state = init_state((8, 5), data, cfg, seed=1)
    start = init_state((8, 5), data, _cfg(PruningProtocol(0.0, at_epochs=(0,)), epochs=1, estimator=Exact(),
                                          shuffle=False), seed=1)
    g = exact.gradient(start.model, data[:10])
    expected = prune_to_count(start.params.mask, start.params.weights, Saliency(), 20, gradient=g.weights)
    np.testing.assert_array_equal(state.params.mask, expected)


@pytest.mark.parametrize("rewind_epoch", [0, 1])
def test_rewinding_restores_weights_velocity_chains_and_schedule(rewind_epoch):
    data = _data()
    rule = PruningProtocol(0.5, at_epochs=(2,), then="rewind", rewind_epoch=rewind_epoch)
    cfg = _cfg(rule, learning_rate=LinearDecay(0.1, 0.01))
    seen = {}
    result = train((8, 5), data, cfg, seed=2, until=8, callbacks=[lambda r: seen.setdefault(r.step, r.state)])
    after = result.state
    reference = seen[4 * rewind_epoch]  # the state the survivors return to (epoch end = checkpoint)
    mask = after.params.mask
    assert mask.sum() == 20
    # Survivors equal W_k bit for bit, biases too; removed pairs are 0.
    np.testing.assert_array_equal(after.params.weights, np.where(mask, reference.params.weights, 0))
    np.testing.assert_array_equal(after.params.visible_bias, reference.params.visible_bias)
    np.testing.assert_array_equal(after.params.hidden_bias, reference.params.hidden_bias)
    # Velocity zero, persistent chains as at update 0 (their draw counter goes on).
    for v in after.optimizer:
        assert not np.any(v)
    step0 = seen[0].estimator
    np.testing.assert_array_equal(after.estimator.chains, step0.chains)
    assert after.estimator.counter > step0.counter
    # The schedule restarts at the rewound update: the next learning rate is the one of update 4k.
    assert after.step - after.schedule_offset == 4 * rewind_epoch
    assert result.history.resets.values[1] == 1


def test_reinit_draws_new_survivors_and_resets():
    from dilution.rng import derive_seed

    data = _data()
    rule = PruningProtocol(0.5, at_epochs=(2,), then="reinit", reinit_scale=0.5)
    result = train((8, 5), data, _cfg(rule), seed=2, until=8)
    s = result.state
    # The survivors are reinit_scale * N(0, 1) drawn from the pruning update's own stream (update 8);
    # the magnitude criterion draws nothing before them. Biases return to their initial values.
    fresh = 0.5 * np.random.default_rng(derive_seed(2, "connectivity", 8)).standard_normal((8, 5))
    np.testing.assert_array_equal(s.params.weights, np.where(s.params.mask, fresh, 0.0))
    initial = init_state((8, 5), data, _cfg(rule), seed=2)
    np.testing.assert_array_equal(s.params.visible_bias, initial.params.visible_bias)
    assert s.params.mask.sum() == 20
    assert all(not np.any(v) for v in s.optimizer) and s.step - s.schedule_offset == 0


def test_continue_keeps_training_the_survivors():
    rule = PruningProtocol(0.5, at_epochs=(2,), then="continue")
    seen = {}
    result = train((8, 5), _data(), _cfg(rule), seed=2, until=8, callbacks=[lambda r: seen.setdefault(r.step, r.state)])
    s = result.state
    before = seen[4]  # one epoch earlier: the survivors have moved on since
    assert not np.array_equal(s.params.weights[s.params.mask], before.params.weights[s.params.mask])
    assert any(np.any(v) for v in s.optimizer) and s.schedule_offset == 0


def test_from_scratch_with_the_same_mask_equals_a_fresh_training():
    from dilution.model import RBM
    from dilution.training import initialize

    data = _data()
    mask = np.random.default_rng(5).random((8, 5)) < 0.4
    cfg = TrainConfig(estimator=PCD(2), epochs=2, batch_size=10, checkpoints=1)
    result = from_scratch(mask, data, cfg, seed=7)
    dense = initialize(8, 5, data, connectivity=1.0, weight_scale=cfg.weight_scale, seed=7)
    fresh = train(RBM(np.where(mask, dense.weights, 0), dense.visible_bias, dense.hidden_bias, mask), data, cfg, seed=7)
    assert result.model == fresh.model and np.array_equal(result.model.mask, mask)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fraction": 1.2}, r"pruning fraction must be in \[0, 1\), got 1.2"),
        ({"fraction": -0.1}, r"pruning fraction must be in \[0, 1\)"),
        ({"fraction": 0.5, "criterion": "biggest"}, "unknown pruning criterion"),
        ({"fraction": 0.5, "at_epochs": (2,), "then": "rewind", "rewind_epoch": 3}, "rewind_epoch=3 comes after"),
        ({"fraction": 0.5, "at_epochs": (3, 2)}, "strictly increasing"),
        ({"fraction": 0.5, "then": "restart"}, "then must be"),
    ],
)
def test_bad_protocols_are_refused(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        PruningProtocol(**kwargs)


def test_protocol_beyond_the_run_is_refused():
    with pytest.raises(ValueError, match="would prune after epoch 5 of a run of 4 epochs"):
        train((8, 5), _data(), _cfg(PruningProtocol(0.5, at_epochs=(5,))), seed=0)


def test_protocol_records_every_parameter_in_the_history():
    import json

    rule = PruningProtocol(0.5, at_epochs=(1, 2), criterion=UnitMagnitude("visible"), then="rewind", rewind_epoch=1)
    h = train((8, 5), _data(), _cfg(rule), seed=0).history
    recorded = json.loads(h.attrs["rule"])
    assert recorded["type"] == "PruningProtocol" and recorded["fraction"] == 0.5 and recorded["at_epochs"] == [1, 2]
    assert recorded["then"] == "rewind" and recorded["rewind_epoch"] == 1
    assert recorded["criterion"] == {"type": "UnitMagnitude", "axis": "visible"}


def test_random_criterion_differs_by_seed_and_repeats_with_it():
    rule = PruningProtocol(0.5, at_epochs=(0,), criterion=RandomPruning())
    a, b, c = (init_state((8, 5), _data(), _cfg(rule, epochs=1), seed=s).params.mask for s in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
