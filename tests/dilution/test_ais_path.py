"""AIS along a path of models (dilution.ais.path_log_partition) against exact enumeration and temperature AIS."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy.stats import norm

from dilution import exact, schedules
from dilution.ais import (
    ais_kernel,
    base_rate_bias,
    log_partition,
    padded_weights,
    path_kernel,
    path_log_partition,
    segment_steps,
)
from dilution.model import RBM
from dilution.rng import chain_keys

# As in test_ais: each statistical test fails for a correct implementation with probability at most
# ALPHA, its k one-sided checks each allowing z_bound(k) of the estimate's own (delta-method)
# standard errors (union bound; normal tails, asymptotic in the number of chains).
ALPHA = 1e-3


def z_bound(n_checks: int) -> float:
    return float(norm.isf(ALPHA / n_checks))


def random_path(n_models: int, n_visible: int, n_hidden: int, seed: int, dtype=np.float64) -> list[RBM]:
    """Unrelated random masked RBMs, strong weights, each with its own mask: a hard path."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_models):
        conn = [1.0, 0.5, 0.25][k % 3]
        out.append(RBM.random(n_visible, n_hidden, connectivity=conn, weight_scale=1.5 / math.sqrt(conn),
                              bias_scale=0.5, dtype=dtype, seed=int(rng.integers(2**31))))
    return out


def test_the_straight_path_from_the_base_is_temperature_ais_draw_for_draw():
    # base -> RBM on a straight line in parameters is temperature AIS with linear betas; with the
    # same seed the driver draws the same numbers as log_partition's forward run, so the chains
    # and log-weights agree up to float64 rounding (a flipped draw would show as an O(1) gap).
    rbm = random_path(1, 14, 9, seed=0)[0]
    data = (np.random.default_rng(1).random((50, 14)) < 0.3).astype(float)
    ds = path_log_partition([rbm], n_chains=40, steps=[299], data=data, seed=5, n_bootstrap=0)  # 300 betas
    ref = log_partition(rbm, n_chains=40, betas=schedules.linear(300), data=data, seed=5, reverse=False, n_bootstrap=0)
    np.testing.assert_allclose(ds.log_weights.values, ref.log_weights.values, rtol=0, atol=1e-9)
    assert float(ds.log_z) == pytest.approx(float(ref.log_z), abs=1e-9)
    assert float(ds.log_z_base) == float(ref.log_z_base)


def test_the_segment_kernel_is_the_temperature_kernel_on_the_line_from_the_base():
    # The kernel alone, chained over two calls, against ais_kernel on the same states and streams.
    rbm = random_path(1, 12, 7, seed=2)[0]
    a0 = base_rate_bias(None, 12) + 0.3
    betas = schedules.linear(60)
    keys = chain_keys(3, 10)
    v0 = (np.random.default_rng(4).random((10, 12)) < 0.5).astype(np.float64)
    w, w_t = padded_weights(rbm)
    v_ref, lw_ref = ais_kernel(v0, np.zeros(10), w, w_t, rbm.visible_bias, rbm.hidden_bias, a0, betas, keys, 1,
                               False, False)
    ends = (*padded_weights(RBM(np.zeros((12, 7)), a0, np.zeros(7))), a0, np.zeros(7), w, w_t, rbm.visible_bias,
            rbm.hidden_bias)
    v, lw = v0.copy(), np.zeros(10)
    path_kernel(v, lw, ends, betas[:26], keys, 1, True)
    path_kernel(v, lw, ends, betas[25:], keys, 26, False)
    np.testing.assert_allclose(lw, lw_ref, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(v, v_ref)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_path_ais_matches_exact_at_every_model_of_a_hard_path(dtype):
    # Four unrelated strong random RBMs (their own masks) in a row, 4 paths: the running estimate at
    # each segment's end is an AIS estimate of that model's log Z (exact by enumeration), so each
    # path gives 4 two-sided checks, 32 one-sided in all, at z_bound(32) = 4.0 SE.
    z = z_bound(32)
    misses = []
    for p in range(4):
        models = random_path(4, 18, 10, seed=10 + p, dtype=dtype)
        data = (np.random.default_rng(p).random((200, 18)) < 0.4).astype(float)
        ds = path_log_partition(models, n_chains=300, n_steps=1200, data=data, seed=p, n_bootstrap=0)
        for s, m in enumerate(models):
            est = float(ds.log_z_base + ds.segment_log_ratio[s])
            if abs(est - exact.log_partition(m)) > z * float(ds.segment_log_ratio_std[s]):
                misses.append((p, s, est, exact.log_partition(m)))
        assert float(ds.log_z) == pytest.approx(float(ds.log_z_base + ds.segment_log_ratio[-1]), abs=1e-12)
    assert not misses, f"path AIS outside {z:.2f} SE of exact at (path, model, estimate, exact): {misses}"


def test_path_ais_detects_a_wrong_model():
    # The check above can fail: the end model with hidden biases shifted by 0.1 is farther from the
    # original's exact log Z than that test's tolerance.
    models = random_path(3, 18, 10, seed=20)
    other = models[:-1] + [models[-1].replace(hidden_bias=models[-1].hidden_bias + 0.1)]
    ds = path_log_partition(other, n_chains=300, n_steps=1200, seed=0, n_bootstrap=0)
    assert abs(float(ds.log_z) - exact.log_partition(models[-1])) > z_bound(32) * float(ds.log_z_std)


def test_same_seed_same_log_weights_any_thread_count():
    models = random_path(3, 16, 8, seed=30, dtype=np.float32)
    kw = dict(n_chains=12, n_steps=90, seed=4, n_bootstrap=0)
    first = path_log_partition(models, **kw)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = path_log_partition(models, **kw)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(first.log_weights.values, single.log_weights.values)
    other = path_log_partition(models, **{**kw, "seed": 5})
    assert not np.array_equal(first.log_weights.values, other.log_weights.values)


def test_steps_follow_the_parameter_change():
    np.testing.assert_array_equal(segment_steps([1.0, 2.0, 3.0, 4.0], 104), [11, 21, 31, 41])
    np.testing.assert_array_equal(segment_steps([0.0, 5.0], 10), [1, 9])
    steps = segment_steps(np.random.default_rng(0).random(37), 1000)
    assert steps.sum() == 1000 and steps.min() >= 1
    models = random_path(3, 10, 6, seed=40)
    ds = path_log_partition(models, n_chains=4, n_steps=300, seed=0, n_bootstrap=0)
    lengths = [math.sqrt(float(np.sum(models[0].weights ** 2) + np.sum((models[0].visible_bias - 0.0) ** 2)
                               + np.sum(models[0].hidden_bias ** 2)))]
    lengths += [math.sqrt(float(np.sum((b.weights - a.weights) ** 2) + np.sum((b.visible_bias - a.visible_bias) ** 2)
                                + np.sum((b.hidden_bias - a.hidden_bias) ** 2))) for a, b in zip(models, models[1:])]
    np.testing.assert_allclose(ds.segment_length.values, lengths, rtol=1e-12)
    np.testing.assert_array_equal(ds.steps.values, segment_steps(lengths, 300))


@pytest.mark.parametrize("call, message", [
    (lambda m: path_log_partition([], n_chains=4, n_steps=10, seed=0), "at least one RBM"),
    (lambda m: path_log_partition([m[0], "x"], n_chains=4, n_steps=10, seed=0), r"models\[1\] must be"),
    (lambda m: path_log_partition([RBM.random(5, 4, seed=0), m[0]], n_chains=4, n_steps=10, seed=0),
     r"models\[0\] is 5 x 4"),
    (lambda m: path_log_partition([m[0].astype(np.float32), m[1]], n_chains=4, n_steps=10, seed=0),
     "one shape and dtype"),
    (lambda m: path_log_partition(m, n_chains=4, seed=0), "exactly one of n_steps"),
    (lambda m: path_log_partition(m, n_chains=4, n_steps=10, steps=[5, 5], seed=0), "exactly one of n_steps"),
    (lambda m: path_log_partition(m, n_chains=4, steps=[5], seed=0), "steps must be 2 integers"),
    (lambda m: path_log_partition(m, n_chains=4, steps=[5, 0], seed=0), "steps must be 2 integers"),
    (lambda m: path_log_partition(m, n_chains=4, n_steps=1, seed=0), "at least the number of segments"),
    (lambda m: path_log_partition(m, n_chains=1, n_steps=10, seed=0), "n_chains"),
])
def test_bad_input_is_rejected(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(random_path(2, 6, 4, seed=50))


def test_the_models_of_a_training_run_pruned_midway_make_a_path_exact_at_each_model():
    # What the README shows: models kept by a train callback, masks changing midway (magnitude
    # pruning of half the connections after epoch 10), each running estimate against enumeration;
    # 12 models x 2 sides at z_bound(24) = 3.9 SE.
    from dilution.estimators import PCD
    from dilution.pruning_rules import PruningProtocol
    from dilution.training import TrainConfig, train

    rng = np.random.default_rng(0)
    proto = rng.random((3, 14)) < 0.5
    data = (proto[rng.integers(0, 3, 300)] ^ (rng.random((300, 14)) < 0.05)).astype(float)  # 5 % flipped
    cfg = TrainConfig(estimator=PCD(1), epochs=20, batch_size=20, learning_rate=0.1, checkpoints=11,
                      rule=PruningProtocol(0.5, at_epochs=(10,)))
    kept = []
    train((14, 8), data, cfg, seed=3, callbacks=[lambda r: kept.append(r.model)])
    assert len(kept) == 12 and kept[-1].n_connections == 56 and kept[0].n_connections == 112
    ds = path_log_partition(kept, n_chains=200, n_steps=2000, data=data, seed=1, n_bootstrap=0)
    z = z_bound(24)
    misses = [(s, float(ds.log_z_base + ds.segment_log_ratio[s]), exact.log_partition(m)) for s, m in enumerate(kept)
              if abs(float(ds.log_z_base + ds.segment_log_ratio[s]) - exact.log_partition(m))
              > z * float(ds.segment_log_ratio_std[s])]
    assert not misses, f"outside {z:.2f} SE of exact at (model, estimate, exact): {misses}"
