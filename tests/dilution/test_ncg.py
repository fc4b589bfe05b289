"""NCG: one update against a slow reference, initialisation, the fused kernel against the rule path, resume, errors."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

import dilution
from dilution.connectivity import StepContext
from dilution.data.bars_stripes import patterns, reference_layout
from dilution.estimators import CD, PCD, PTPCD, Exact
from dilution.ncg import NCG, NCGState, ncg_config, train_ncg_fused
from dilution.parameters import Parameters
from dilution.statistics import GradientEstimate
from dilution.training import TrainConfig, init_state, train, train_step


def _context(step=1, lr=0.01, momentum=0.0, epoch_end=False, epoch=0, epochs=10, upe=7):
    return StepContext(step, epoch, epoch_end, lr, momentum, epochs * upe, upe, epochs, 11)


def _slow_update(mask, strengths, stored, grad, lr, ratio, threshold):
    """One NCG update written pair by pair from the reference code (RBM.cpp::optimizer_SGD):
    W += lr G A_old; A_ += ratio lr W_pre G; threshold with clipping; C = W A."""
    n_v, n_h = grad.shape
    out_s, out_w, out_m, out_c = (np.empty_like(strengths), np.empty_like(stored), np.empty_like(mask),
                                  np.empty_like(stored))
    for i in range(n_v):
        for j in range(n_h):
            w_pre = stored[i, j]
            w = w_pre + lr * grad[i, j] if mask[i, j] else w_pre
            s = strengths[i, j] + ratio * lr * w_pre * grad[i, j]
            m = mask[i, j]
            if s < threshold:
                m, s = False, max(s, 0.0)
            elif s > threshold:
                m, s = True, min(s, 1.0)
            out_s[i, j], out_w[i, j], out_m[i, j], out_c[i, j] = s, w, m, w if m else 0.0
    return out_s, out_w, out_m, out_c


def _random_step(seed=0, n_v=9, n_h=7):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_v, n_h)) < 0.5
    stored = rng.uniform(-1, 1, (n_v, n_h))
    strengths = np.where(mask, 0.5 + 0.5 * rng.random((n_v, n_h)), 0.5 * rng.random((n_v, n_h)))
    # Large gradients so that many pairs cross the threshold and hit the clipping bounds.
    grad = rng.normal(0, 20, (n_v, n_h))
    strengths[0, 0], stored[0, 0] = 0.5, 0.0  # network gradient 0 at the threshold: the pair keeps its state
    mask[0, 0] = True
    return mask, stored, strengths, grad


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_update_matches_the_slow_reference(seed):
    mask, stored, strengths, grad = _random_step(seed)
    lr, rule = 0.01, NCG(p=0.5)
    w_trained = np.where(mask, stored + lr * grad, 0.0)  # what the trainer's SGD step hands the rule
    params = Parameters(w_trained, np.zeros(9), np.zeros(7), mask)
    new, state, info = rule.update(params, NCGState(strengths, stored, mask), GradientEstimate(grad, 0, 0),
                                   _context(lr=lr))
    s, w, m, c = _slow_update(mask, strengths, stored, grad, lr, 5.0, 0.5)
    # 1e-15: the rule computes (5 lr W) G and the reference 5 lr W G in another association order.
    np.testing.assert_allclose(state.strengths, s, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(state.mask, m)
    np.testing.assert_array_equal(new.mask, m)
    np.testing.assert_allclose(state.weights, w, rtol=0, atol=1e-15)
    np.testing.assert_allclose(new.weights, c, rtol=0, atol=1e-15)
    assert new.mask[0, 0] and state.strengths[0, 0] == 0.5
    assert (state.strengths.min(), state.strengths.max()) == (0.0, 1.0)  # clipping was exercised
    born, died = m & ~mask, mask & ~m
    assert born.any() and died.any()
    assert info.n_added == born.sum() and info.n_removed == died.sum()
    # Reborn pairs get their stored weight back; dead ones keep theirs, frozen.
    np.testing.assert_array_equal(new.weights[born], stored[born])
    np.testing.assert_array_equal(state.weights[died], w_trained[died])
    assert info.n_absent_gain == np.count_nonzero(~m & (w * grad > 0))
    assert info.connectivity == m.mean()


def test_stored_weight_is_frozen_while_absent_and_restored():
    stored = np.random.default_rng(5).uniform(0.2, 1, (3, 2)) * [[1, -1]]
    mask = np.zeros((3, 2), dtype=bool)
    state = NCGState(np.full((3, 2), 0.1), stored, mask)
    rule = NCG()
    params = Parameters(np.zeros((3, 2)), np.zeros(3), np.zeros(2), mask)
    g = np.sign(stored) * 1.0  # W * G > 0 on every pair: strengths climb by 5 * 0.1 * |W| per update
    for _ in range(200):
        params, state, info = rule.update(params, state, GradientEstimate(g, 0, 0), _context(lr=0.1))
        np.testing.assert_array_equal(state.weights, stored)  # absent: frozen (connected: no SGD step here)
        if state.mask.all():
            break
    assert state.mask.all()
    np.testing.assert_array_equal(params.weights, stored)


def test_init_follows_the_reference():
    rule = NCG(p=0.3)
    n_v, n_h = 100, 100
    params = Parameters(np.zeros((n_v, n_h)), np.ones(n_v), np.ones(n_h), np.ones((n_v, n_h), dtype=bool))
    new, state, _ = rule.init(params, _context(step=0, lr=0.0))
    m = state.mask
    # 10^4 Bernoulli(0.3) draws: sd sqrt(n p (1 - p)) = 45.8; 5 sd (two-sided p ~ 6e-7).
    assert abs(m.sum() - 3000) < 5 * math.sqrt(1e4 * 0.3 * 0.7)
    np.testing.assert_array_equal(new.mask, m)
    assert np.all((state.weights >= -1) & (state.weights < 1)) and np.all(state.weights[~m] != 0)
    np.testing.assert_array_equal(new.weights, np.where(m, state.weights, 0))
    assert np.all(state.strengths[m] >= 0.5) and np.all(state.strengths[m] < 1)
    assert np.all(state.strengths[~m] >= 0) and np.all(state.strengths[~m] < 0.5)
    assert not new.visible_bias.any() and not new.hidden_bias.any()
    quirky, q_state, _ = NCG(p=0.3, reference_quirks=True).init(params, _context(step=0, lr=0.0))
    assert quirky.mask.all() and np.array_equal(quirky.weights, state.weights)
    np.testing.assert_array_equal(q_state.mask, m)


def _fixed_order_run(cfg, data, seed, n_steps=None):
    state = init_state((data.shape[1], 16), data, cfg, seed=seed)
    upe, bs = state.plan.updates_per_epoch, state.plan.batch_size
    for t in range(state.plan.total_steps if n_steps is None else n_steps):
        b = t % upe
        state, _ = train_step(state, data[b * bs : (b + 1) * bs], data=data, epoch_end=b == upe - 1)
    return state


@pytest.mark.parametrize(
    "rule, k, batch",
    [(NCG(p=0.5), 1, 5), (NCG(p=1.0), 2, 6), (NCG(p=0.1, reference_quirks=True, redraw_epochs=3), 1, 5)],
)
def test_fused_kernel_equals_the_rule_path_bit_for_bit(rule, k, batch):
    """Same batches (fixed order), same streams: identical floating-point operations, so equal bits."""
    data = reference_layout(4).astype(np.float64)
    cfg = ncg_config(rule, estimator=CD(k), batch_size=batch, epochs=8, checkpoints=1, exact_log_likelihood=False)
    state = _fixed_order_run(cfg, data, seed=4)
    fused = train_ncg_fused((16, 16), data, cfg, seed=4, checkpoint_epochs=(0, 8), log_likelihood=False)
    for x, y in zip(state.params, fused.params):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(state.rule, fused.rule_state):
        np.testing.assert_array_equal(x, y)
    assert fused.counter == state.estimator.counter
    assert fused.history.connectivity_end.values[-1] == state.params.mask.mean()


def test_fused_kernel_continues_a_state_and_matches_per_epoch_counts():
    data = reference_layout(4).astype(np.float64)
    cfg = ncg_config(NCG(p=0.5), epochs=6, checkpoints=1, exact_log_likelihood=False)
    whole = train_ncg_fused((16, 16), data, cfg, seed=2, checkpoint_epochs=(0, 3, 6))
    half = _fixed_order_run(cfg, data, seed=2, n_steps=3 * 7)
    rest = train_ncg_fused(None, data, cfg, seed=2, init=half, checkpoint_epochs=(3, 6))
    for x, y in zip(whole.params, rest.params):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(whole.history.log_likelihood.values[1:], rest.history.log_likelihood.values)
    h = whole.history
    start = h.mask.isel(checkpoint=0).values.sum()
    np.testing.assert_array_equal(start + np.cumsum(h.connections_added - h.connections_removed), h.connectivity_end * 256)
    assert h.connectivity_end.values[-1] == whole.params.mask.mean()


@pytest.mark.parametrize("estimator", [CD(2), PCD(1, n_chains=7), PTPCD(1, n_chains=3, n_temps=3), Exact()])
def test_every_estimator_keeps_the_invariants(estimator):
    data = (np.random.default_rng(0).random((24, 6)) < 0.4).astype(np.float64)
    cfg = ncg_config(NCG(p=0.5), estimator=estimator, epochs=3, batch_size=8, learning_rate=0.1, checkpoints=(3, 9))
    result = train((6, 4), data, cfg, seed=1)
    st, h = result.state.rule, result.history
    m = result.state.params.mask
    np.testing.assert_array_equal(st.mask, m)
    np.testing.assert_array_equal(result.state.params.weights, np.where(m, st.weights, 0))
    assert np.all((st.strengths >= 0) & (st.strengths <= 1))
    np.testing.assert_array_equal(m[st.strengths != 0.5], (st.strengths > 0.5)[st.strengths != 0.5])
    np.testing.assert_array_equal(h.rule_strength.isel(checkpoint=-1).values, st.strengths)
    assert {"rule_connectivity", "rule_n_absent_gain"} <= set(h.data_vars)
    assert np.isfinite(h.log_likelihood.values).all()


_NEW_PROCESS = textwrap.dedent(
    """
    import sys, numpy as np, dilution
    from dilution.training import train
    result = train(None, np.load(sys.argv[2]), resume=dilution.load(sys.argv[1]))
    dilution.save(result.history, sys.argv[3])
    dilution.save(result.state, sys.argv[4])
    """
)


def test_resume_in_a_new_process_is_bit_identical(tmp_path):
    data = reference_layout(4).astype(np.float64)
    cfg = ncg_config(NCG(p=0.5, reference_quirks=True, redraw_epochs=2), epochs=4, checkpoints=(5, 12, 28))
    full = train((16, 16), data, cfg, seed=3)
    half = train((16, 16), data, cfg, seed=3, until=12)  # mid-epoch (7 updates per epoch), after a re-draw
    dilution.save(half.state, tmp_path / "state.nc")
    np.save(tmp_path / "data.npy", data)
    (tmp_path / "resume.py").write_text(_NEW_PROCESS)
    subprocess.run([sys.executable, str(tmp_path / "resume.py"), str(tmp_path / "state.nc"), str(tmp_path / "data.npy"),
                    str(tmp_path / "history.nc"), str(tmp_path / "final.nc")], check=True, timeout=600)
    resumed = dilution.load(tmp_path / "final.nc")
    for x, y in zip(resumed.params, full.state.params):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(resumed.rule, full.state.rule):
        np.testing.assert_array_equal(x, y)
    clocks = ["wall_time", "epoch_wall_time"]
    a, b = dilution.load(tmp_path / "history.nc").drop_vars(clocks), full.history.drop_vars(clocks)
    xr.testing.assert_equal(a, b)
    assert "rule_strength" in b


def test_bad_input_is_rejected():
    for p in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="initial density p must be"):
            NCG(p=p)
    for t in (0.0, 1.0, 2.0):
        with pytest.raises(ValueError, match="threshold must be in"):
            NCG(threshold=t)
    with pytest.raises(ValueError, match="strength_ratio must be > 0"):
        NCG(strength_ratio=0.0)
    with pytest.raises(ValueError, match="needs reference_quirks=True"):
        NCG(redraw_epochs=10)
    with pytest.raises(ValueError, match="without momentum"):
        ncg_config(momentum=0.5)
    for name in ("l1", "l2"):
        with pytest.raises(ValueError, match="no weight decay"):
            ncg_config(**{name: 1e-4})
    data = reference_layout(2).astype(np.float64)
    # TrainConfig itself refuses what is not plain SGD (weight decay went through unnoticed before)
    for name, value in (("momentum", 0.5), ("l1", 1e-4), ("l2", 1e-4)):
        with pytest.raises(ValueError, match=rf"NCG needs momentum=0, l1=0 and l2=0, got {name}={value!r}: NCG is"):
            TrainConfig(rule=NCG(), estimator=CD(1), batch_size=4, epochs=1, checkpoints=1, **{name: value})
    # and the rule its momentum, for a call outside the trainer
    params, state, _ = NCG().init(Parameters(np.zeros((4, 3)), np.zeros(4), np.zeros(3), np.ones((4, 3), bool)),
                                  StepContext(0, 0, False, 0.0, 0.0, 10, 10, 1, 0))
    zero = GradientEstimate(np.zeros((4, 3)), np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match="NCG is plain SGD"):
        NCG().update(params, state, zero, StepContext(1, 0, False, 0.01, 0.5, 10, 10, 1, 0))
    with pytest.raises(TypeError, match="runs CD-k"):
        train_ncg_fused((4, 3), data, ncg_config(estimator=PCD(1), batch_size=4), seed=0)


def test_reference_layout_of_bars_and_stripes():
    x = reference_layout(4)
    assert x.shape == (32, 16) and x.dtype == np.uint8
    assert {r.tobytes() for r in x} == {r.tobytes() for r in patterns(4)}
    sums = x.sum(axis=1)
    assert (sums == 0).sum() == 2 and (sums == 16).sum() == 2
    img = x.reshape(32, 4, 4)
    # Row subset 1 (row 0 on): its stripes pattern, then its bars pattern (column 0 on).
    np.testing.assert_array_equal(img[2], [[1] * 4, [0] * 4, [0] * 4, [0] * 4])
    np.testing.assert_array_equal(img[3], [[1, 0, 0, 0]] * 4)
    np.testing.assert_array_equal(img[0::2].reshape(16, 4, 4)[:, :, 0], img[1::2].reshape(16, 4, 4)[:, 0, :])
