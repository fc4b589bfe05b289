"""DEEP R and soft-DEEP R: the update against a slow reference, the prior-only limits, training and resume.

Prior-only limits (digest B.7, likelihood switched off): DEEP R's mask is uniform over the
C(D, K) choices with active theta i.i.d. Exp(alpha / T); soft-DEEP R's pairs are independent,
active with probability p_on = (T/alpha) / (T/alpha + |theta_min|), with a density continuous
across 0. Statistical tolerances are quantiles of the test's null distribution at 1e-3 (two-sided
where it applies), plus the discretisation bias where it is not negligible; the dimensionless
step is eps = sqrt(2 eta T) / (T / alpha), the noise of one update in units of the Exp scale.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr
from scipy import stats

import dilution
from dilution.connectivity import StepContext
from dilution.deep_r import (
    DeepR,
    DeepRState,
    SoftDeepR,
    deep_r_config,
    from_options,
    inclusion_probability,
    prior_dynamics,
)
from dilution.estimators import PCD, Exact
from dilution.optim import Constant, LinearDecay
from dilution.parameters import Parameters
from dilution.rng import chain_keys, derive_seed, uniform64
from dilution.statistics import GradientEstimate
from dilution.training import TrainConfig, train

P_FAIL = 1e-3
Z = stats.norm.isf(P_FAIL / 2)  # two-sided normal quantile, 3.29


def _eta(eps: float, alpha: float, temperature: float) -> float:
    """Learning rate giving the dimensionless step eps = alpha sqrt(2 eta / T)."""
    return eps**2 * temperature / (2 * alpha**2)


def _state(theta, seed, sign=None):
    theta = np.asarray(theta, dtype=np.float64)
    sign = np.ones(theta.shape, np.int8) if sign is None else sign
    return DeepRState(theta, sign, chain_keys(derive_seed(seed, "test-deep-r"), 2), None, None)


def _context(step, eta, seed=0, momentum=0.0):
    return StepContext(step, 0, False, eta, momentum, 10**6, 10, 10**5, seed)


# ---------------------------------------------------------------------------------------------
# The update against a slow reference


def _ref_normal(key, index):
    u1 = 1.0 - uniform64(key, np.uint64(2 * index))
    u2 = uniform64(key, np.uint64(2 * index + 1))
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def _reference_step(rule, theta, sign, grad, eta, keys, step):
    """The algorithm of the module docstring, vectorised numpy plus Python loops for the draws."""
    v, h = theta.shape
    d = v * h
    streams = d + v + h
    sc = math.sqrt(2 * eta * rule.temperature)
    noise = np.array([_ref_normal(keys[0], step * streams + p) for p in range(d)]).reshape(v, h)
    was = theta >= 0
    soft = isinstance(rule, SoftDeepR)
    moved = (theta + eta * (sign * grad - rule.alpha)) + sc * noise
    if soft:
        new = np.where(was, moved, theta + sc * noise)
        lo = rule.floor_value
        new = np.where(new < lo, np.maximum(2 * lo - new, lo) if rule.floor == "reflect" else lo, new)
        return new
    new = np.where(was, moved, np.nan)
    new[was & (new < 0)] = np.nan
    groups = [np.arange(d)] if rule.scope == "global" else [np.arange(v) * h + j for j in range(h)]
    for g_index, group in enumerate(groups):
        flat = new.reshape(-1)
        cand = [p for p in group if not flat[p] >= 0]
        missing = rule.k - (len(group) - len(cand))
        first = step * d + (0 if rule.scope == "global" else g_index * v)
        for r in range(missing):
            u = uniform64(keys[1], np.uint64(first + r))
            j = r + min(int(u * (len(cand) - r)), len(cand) - r - 1)
            cand[r], cand[j] = cand[j], cand[r]
        for p in cand[:missing]:
            flat[p] = 0.0
    return new


@pytest.mark.parametrize("rule", [
    DeepR(k=9, alpha=0.5, temperature=0.3),
    DeepR(k=3, alpha=0.5, temperature=0.3, scope="hidden"),
    SoftDeepR(alpha=0.5, temperature=0.3, p0=0.4),
    SoftDeepR(alpha=0.5, temperature=0.3, p0=0.4, floor="clip"),
], ids=["deep-global", "deep-hidden", "soft-reflect", "soft-clip"])
def test_update_equals_the_reference_step_with_a_gradient(rule):
    v, h, eta = 5, 4, 0.2
    params = Parameters(np.zeros((v, h)), np.zeros(v), np.zeros(h), np.zeros((v, h), bool))
    params, state, _ = rule.init(params, _context(0, 0.0, seed=3))
    rng = np.random.default_rng(0)
    n_births = 0
    for step in range(1, 41):
        g = GradientEstimate(rng.normal(0, 0.5, (v, h)), rng.normal(size=v), rng.normal(size=h))
        expected = _reference_step(rule, state.theta, state.sign, g.weights, eta, state.keys, step)
        # The optimiser's part: plain SGD on the active weights (momentum 0, l1 = l2 = 0).
        stepped = params._replace(weights=np.where(params.mask, params.weights + eta * g.weights, 0.0))
        before = state.theta >= 0
        params, state, info = rule.update(stepped, state, g, _context(step, eta, seed=3))
        np.testing.assert_array_equal(state.theta, expected)
        np.testing.assert_array_equal(params.mask, expected >= 0)
        np.testing.assert_array_equal(params.weights, np.where(expected >= 0, state.sign * expected, 0.0))
        assert info.n_active == np.count_nonzero(expected >= 0)
        assert info.n_flips == np.count_nonzero(before != (expected >= 0))
        n_births += info.n_added
    assert n_births > 0  # the rewiring branch was exercised


@pytest.mark.parametrize("scope, k", [("global", 20), ("hidden", 5)])
def test_many_reactivations_at_once_equal_the_reference_step(scope, k):
    """From a mask with 1 active pair per group, nearly the whole budget is drawn in one update.

    The kernel does not write the list of dormant pairs it shuffles; with most of the list drawn,
    the shuffle's swaps land on entries an earlier swap moved, which this compares to the
    reference's explicit list.
    """
    v, h, eta = 7, 4, 0.2
    rule = DeepR(k=k, alpha=0.5, temperature=0.3, scope=scope)
    rng = np.random.default_rng(5)
    theta = np.full((v, h), np.nan)
    if scope == "global":
        theta[2, 1] = 0.4
    else:
        theta[rng.integers(0, v, h), np.arange(h)] = 0.4
    sign = np.where(rng.random((v, h)) < 0.5, -1, 1).astype(np.int8)
    state = _state(theta, 11, sign)
    params = Parameters(np.where(theta >= 0, sign * theta, 0.0), np.zeros(v), np.zeros(h), theta >= 0)
    for step in range(1, 6):
        g = GradientEstimate(rng.normal(0, 0.5, (v, h)), np.zeros(v), np.zeros(h))
        expected = _reference_step(rule, state.theta, state.sign, g.weights, eta, state.keys, step)
        stepped = params._replace(weights=np.where(params.mask, params.weights + eta * g.weights, 0.0))
        before = state.theta >= 0
        params, state, info = rule.update(stepped, state, g, _context(step, eta, seed=11))
        np.testing.assert_array_equal(state.theta, expected)
        assert info.n_flips == np.count_nonzero(before != (expected >= 0))


def test_a_reactivated_pair_pays_the_l1_step():
    """T = 0, g = 0: theta falls by eta alpha per update; a pair reactivated at 0 dies at the next one.

    The optimiser's ``l1 sign(W)`` is 0 at W = 0, so this fails if the rule leaves the L1 step
    to the optimiser. Single-connection lifetime: theta0 / (eta alpha) updates (digest C.6).
    """
    rule, eta = DeepR(k=1, alpha=1.0, temperature=0.0), 0.125
    run = prior_dynamics(rule, (1, 2), 12, eta=eta, seed=0, state=_state([[1.0, np.nan]], 0), record_every=1)
    lifetime = int(1.0 / (eta * rule.alpha))  # 8 updates to reach exactly 0 (binary fractions: no rounding)
    np.testing.assert_array_equal(run.theta[: lifetime, 0, 0], 1.0 - eta * np.arange(1, lifetime + 1))
    assert np.all(run.deaths[: lifetime] == 0) and np.all(run.deaths[lifetime:] == 1)
    assert np.all(run.births[lifetime:] == 1) and np.all(run.n_active == 1)
    assert np.all(np.nanmax(run.theta[lifetime:], axis=(1, 2)) == 0.0)


@pytest.mark.parametrize("rule", [
    DeepR(k=4, alpha=1.0, temperature=1.0),
    DeepR(k=2, alpha=1.0, temperature=1.0, scope="hidden"),
    SoftDeepR(alpha=1.0, temperature=1.0, p0=0.5),
], ids=["deep-global", "deep-hidden", "soft"])
def test_prior_kernel_equals_the_rule_path_step_for_step(rule):
    v, h, eta, seed = 4, 3, 0.3, 7
    run = prior_dynamics(rule, (v, h), 60, eta=eta, seed=seed, record_every=1)
    params = Parameters(np.zeros((v, h)), np.zeros(v), np.zeros(h), np.zeros((v, h), bool))
    params, state, _ = rule.init(params, _context(0, 0.0, seed=seed))
    zero = GradientEstimate(np.zeros((v, h)), np.zeros(v), np.zeros(h))
    for step in range(1, 61):
        params, state, info = rule.update(params, state, zero, _context(step, eta, seed=seed))
        np.testing.assert_array_equal(state.theta, run.theta[step - 1])
        assert (info.n_added, info.n_removed, info.n_active) == (
            run.births[step - 1], run.deaths[step - 1], run.n_active[step - 1])
    np.testing.assert_array_equal(state.theta, run.state.theta)
    assert run.births.sum() > 0 and run.deaths.sum() > 0


# ---------------------------------------------------------------------------------------------
# Prior-only limits


@pytest.mark.parametrize("scope, shape, k", [("global", (6, 5), 7), ("hidden", (6, 5), 2)])
def test_active_count_is_exactly_k_at_every_step(scope, shape, k):
    # eps = 1: deaths at most updates, so reactivation runs all the time.
    rule = DeepR(k=k, alpha=2.0, temperature=0.5, scope=scope)
    run = prior_dynamics(rule, shape, 3000, eta=_eta(1.0, 2.0, 0.5), seed=1, record_every=1)
    per = k * (shape[1] if scope == "hidden" else 1)
    assert np.all(run.n_active == per)
    if scope == "hidden":
        assert np.all((run.theta >= 0).sum(axis=1) == k)
    assert run.deaths.mean() > 0.2 * per


def _final_masks(rule, shape, start, n_replicas, n_steps, eta):
    masks, deaths = [], []
    for r in range(n_replicas):
        run = prior_dynamics(rule, shape, n_steps, eta=eta, seed=r, state=_state(start, 1000 + r))
        masks.append(tuple((run.state.theta >= 0).ravel()))
        deaths.append(run.deaths.sum())
    return masks, np.array(deaths)


@pytest.mark.parametrize("scope", ["global", "hidden"])
def test_deep_r_masks_are_uniform(scope):
    """Chi-square of the final masks of independent replicas, all started from the same mask.

    Replicas are independent by construction (their own streams), so the sample size is the
    number of replicas. Mixing: pair identities do not affect the theta dynamics, so conditional
    on the death times a death of one slot redraws its pair uniformly among the D - K + 1 pairs
    the other slots do not hold; for K = 2 (per group) this multiplies the deviation of the other
    slot's marginal from uniform by 1 / (D - K + 1) = 1/5 at each death. The test asserts at least
    40 deaths per replica (about 20 per slot): the remaining deviation, < 5**-15, is far below
    what 3000 samples resolve. eps = 1 makes deaths frequent.
    """
    if scope == "global":
        shape, rule = (2, 3), DeepR(k=2, alpha=1.0, temperature=1.0)
        start = [[0.5, 0.5, np.nan], [np.nan, np.nan, np.nan]]
        cells = [tuple(np.isin(np.arange(6), c)) for c in itertools.combinations(range(6), 2)]
    else:
        shape, rule = (4, 2), DeepR(k=2, alpha=1.0, temperature=1.0, scope="hidden")
        start = [[0.5, 0.5], [0.5, 0.5], [np.nan, np.nan], [np.nan, np.nan]]
        cols = list(itertools.combinations(range(4), 2))
        cells = []
        for c0, c1 in itertools.product(cols, cols):
            m = np.zeros((4, 2), bool)
            m[list(c0), 0] = True
            m[list(c1), 1] = True
            cells.append(tuple(m.ravel()))
    n = 100 * len(cells)  # 100 expected per mask: the chi-square law is accurate
    masks, deaths = _final_masks(rule, shape, start, n, 200, _eta(1.0, 1.0, 1.0))
    assert deaths.min() >= 40
    counts = np.array([masks.count(c) for c in cells])
    assert counts.sum() == n  # every final mask has exactly K per group
    assert stats.chisquare(counts).pvalue > P_FAIL


def test_deep_r_active_theta_is_exponential():
    """KS test of the K active theta at one time against Exp(alpha / T).

    Samples: in the prior-only limit every active slot's theta follows its own Lindley recursion
    theta <- max(theta + X, 0), X ~ N(-eta alpha, 2 eta T) (a death reactivates another pair at 0),
    driven by its own pair's noise, so the K values at one time are i.i.d.: n = K = 400.
    Burn-in: the recursion's relaxation time is 8 / eps**2 updates (spectral gap of reflected
    Brownian motion with drift, mu**2 / (2 sigma**2)); 10 of them from |N(0, (T/alpha)**2)|.
    Discretisation: the stationary law is Exp shifted left by 0.58 sigma with an atom at 0 of
    mass about 0.71 eps (Siegmund's corrected diffusion approximation; atom measured 0.0285 at
    eps = 0.04 with 2e5 slots), a KS distance of 0.75 eps at most. At eps = 0.02 that is 0.015,
    added to the KS quantile (0.097 at n = 400, level 1e-3).
    """
    alpha, temperature, eps, k = 2.0, 0.5, 0.02, 400
    rule = DeepR(k=k, alpha=alpha, temperature=temperature, init_scale=temperature / alpha)
    n_steps = int(10 * 8 / eps**2)
    run = prior_dynamics(rule, (20, 25), n_steps, eta=_eta(eps, alpha, temperature), seed=5)
    active = run.state.theta[run.state.theta >= 0]
    assert active.size == k
    ks = stats.kstest(active, stats.expon(scale=temperature / alpha).cdf).statistic
    assert ks < stats.kstwo.isf(P_FAIL, k) + 0.75 * eps
    # Power: the same sample is far from the law of a wrong temperature or L1 coefficient.
    # (the population distance to Exp(2 alpha / T) is 0.25, more than 2.5 quantiles).
    assert stats.kstest(active, stats.expon(scale=0.5 * temperature / alpha).cdf).statistic > 0.15


def _soft_run(p_on, n_steps, seed, shape=(100, 100), floor="reflect", record_every=0):
    alpha, temperature, eps = 2.0, 0.5, 0.2
    scale = temperature / alpha
    theta_min = -scale * (1 - p_on) / p_on
    rule = SoftDeepR(alpha=alpha, temperature=temperature, p0=p_on, floor=floor)
    assert rule.floor_value == pytest.approx(theta_min, rel=1e-12)
    assert inclusion_probability(alpha, temperature, theta_min) == pytest.approx(p_on, rel=1e-12)
    return rule, prior_dynamics(rule, shape, n_steps, eta=_eta(eps, alpha, temperature), seed=seed,
                                record_every=record_every)


def test_soft_deep_r_inclusion_probability_and_binomial_count():
    """Pairs are independent (no budget, own noise), so at one time the D = 10^4 indicators are i.i.d.

    p_on = 0.3: |theta_min| = (7/3) T / alpha. Burn-in: 6000 updates; at eps = 0.2 a pair diffuses
    over the whole range (1 + 7/3) T / alpha in ((10/3) / 0.2)**2 = 280 updates, so this is > 20
    crossing times. Discretisation: with the reflecting floor the first-order flux error at 0
    cancels (the drift switches sides where the noise is symmetric); measured |p - p_on| < 1e-3
    at eps = 0.2 with 1.5e6 samples, added to the tolerance. (The reference code's clipping floor
    is biased by 0.027 at this eps.)
    """
    p_on = 0.3
    rule, run = _soft_run(p_on, 6000, seed=2)
    on = (run.state.theta >= 0).ravel()
    d = on.size
    assert abs(on.mean() - p_on) < Z * math.sqrt(p_on * (1 - p_on) / d) + 1e-3
    # Binomial count: 1000 disjoint groups of 10 pairs, each count ~ Binomial(10, p_on) independently.
    counts = on.reshape(1000, 10).sum(axis=1)
    pmf = stats.binom(10, p_on).pmf(np.arange(11))
    # Merge the tails so that every cell expects at least 5 groups.
    edges = [0, 1, 2, 3, 4, 5, 6, 11]
    observed = [np.count_nonzero((counts >= lo) & (counts < hi)) for lo, hi in zip(edges, edges[1:])]
    expected = [1000 * pmf[lo:hi].sum() for lo, hi in zip(edges, edges[1:])]
    assert min(expected) >= 5
    assert stats.chisquare(observed, expected).pvalue > P_FAIL


def test_soft_deep_r_clipping_floor_is_biased():
    """The reference's clip at theta_min piles up mass at the floor: p_on falls below its prior value.

    Measured 0.473 for p_on = 0.5 at eps = 0.2; the threshold is 7 standard errors above it.
    """
    p_on = 0.5
    _, run = _soft_run(p_on, 3000, seed=2, shape=(200, 200), floor="clip")
    assert (run.state.theta >= 0).mean() < p_on - Z * math.sqrt(p_on * (1 - p_on) / 4e4) - 1e-3


def test_soft_deep_r_density_is_continuous_across_zero():
    """Counts in [-delta, 0) and [0, delta) against the continuous stationary density.

    Given n = n_- + n_+, n_+ ~ Binomial(n, q) with q = A_+ / (A_+ + A_-), A_+ = (1 - exp(-delta
    alpha / T)) T / alpha, A_- = delta. A jump of the density at 0 by a factor r moves q to
    r A_+ / (r A_+ + A_-). Snapshots every 50 updates: the split of the window between the two
    sides mixes in (2 delta / sigma)**2 = 4 updates, but to be safe the standard error is taken
    from 20 batch means (a t quantile with 19 degrees of freedom), not from the binomial.
    Discretisation at eps = 0.2: the measured q is within 2e-4 of its value (1.5e6 samples).
    """
    p_on, delta_units = 0.5, 0.2
    rule, run = _soft_run(p_on, 3000 + 20 * 20 * 50, seed=4, shape=(50, 40), record_every=50)
    scale = rule.temperature / rule.alpha
    delta = delta_units * scale
    theta = run.theta[60:].reshape(20, 20, -1)  # 20 batches of 20 snapshots after 3000 updates
    plus = ((theta >= 0) & (theta < delta)).sum(axis=(1, 2))
    minus = ((theta < 0) & (theta >= -delta)).sum(axis=(1, 2))
    a_plus, a_minus = (1 - math.exp(-delta_units)) * scale, delta
    q = a_plus / (a_plus + a_minus)
    batch = plus / (plus + minus)
    se = batch.std(ddof=1) / math.sqrt(len(batch))
    t = stats.t.isf(P_FAIL / 2, len(batch) - 1)
    assert abs(batch.mean() - q) < t * se + 2e-4
    # Power: a 20 % jump at 0 would be seen.
    q_jump = 1.2 * a_plus / (1.2 * a_plus + a_minus)
    assert abs(q_jump - q) > 2 * t * se


# ---------------------------------------------------------------------------------------------
# Training, bookkeeping, resume


def _data(n=40, n_visible=6, seed=0):
    return (np.random.default_rng(seed).random((n, n_visible)) < 0.4).astype(np.float64)


CONFIGS = {
    "deep-r": deep_r_config(
        DeepR(k=7, alpha=0.05, temperature=0.02), estimator=PCD(2, n_chains=5), epochs=4, batch_size=8,
        learning_rate=0.1, checkpoints=(3, 13, 20),
    ),
    "soft-deep-r": deep_r_config(
        SoftDeepR(alpha=0.05, temperature=0.02, p0=0.4, biases="sgd"), estimator=Exact(), epochs=4,
        batch_size=8, learning_rate=0.1, checkpoints=(3, 13, 20),
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_training_bookkeeping(name):
    cfg = CONFIGS[name]
    result = train((6, 4), _data(), cfg, seed=3)
    hist, state = result.history, result.state
    theta, sign = state.rule.theta, state.rule.sign
    np.testing.assert_array_equal(state.params.mask, theta >= 0)
    np.testing.assert_array_equal(state.params.weights, np.where(theta >= 0, sign * theta, 0.0))
    np.testing.assert_array_equal(hist["rule_theta"].isel(checkpoint=-1), theta)
    assert {"rule_n_active", "rule_n_flips", "connections_added", "connections_removed"} <= set(hist.data_vars)
    if name == "deep-r":
        assert np.all(hist["n_connections"] == 7) and np.all(hist["rule_n_active"] == 7)
    births, deaths = hist["connections_added"].values, hist["connections_removed"].values
    # Active count at the end of each epoch = at the start + births - deaths.
    n_end = np.round(hist["connectivity_end"].values * 24).astype(int)
    n_start = np.concatenate([[np.count_nonzero(hist["mask"].isel(checkpoint=0))], n_end[:-1]])
    np.testing.assert_array_equal(n_end, n_start + births - deaths)
    assert births.sum() > 0


def test_biases_modes():
    data, base = _data(), dict(estimator=Exact(), epochs=2, batch_size=8, learning_rate=0.1, checkpoints=1)
    fixed = train((6, 4), data, deep_r_config(DeepR(5, 0.05, 0.02, biases="fixed"), **base), seed=1)
    start = train((6, 4), data, deep_r_config(DeepR(5, 0.05, 0.02, biases="fixed"), **base), seed=1, until=0)
    np.testing.assert_array_equal(fixed.model.visible_bias, start.model.visible_bias)
    np.testing.assert_array_equal(fixed.model.hidden_bias, start.model.hidden_bias)
    # Langevin = SGD + sqrt(2 eta T) times the normal draws reserved for the biases.
    rule = DeepR(5, 0.05, 0.02)
    params = Parameters(np.zeros((6, 4)), np.zeros(6), np.zeros(4), np.zeros((6, 4), bool))
    params, state, _ = rule.init(params, _context(0, 0.0, seed=2))
    zero = GradientEstimate(np.zeros((6, 4)), np.zeros(6), np.zeros(4))
    new, _, _ = rule.update(params, state, zero, _context(5, 0.1, seed=2))
    draws = [_ref_normal(state.keys[0], 5 * 34 + 24 + i) for i in range(10)]
    np.testing.assert_array_equal(np.concatenate([new.visible_bias, new.hidden_bias]),
                                  math.sqrt(2 * 0.1 * 0.02) * np.array(draws))
    new, _, _ = DeepR(5, 0.05, 0.02, biases="sgd").update(params, state, zero, _context(5, 0.1, seed=2))
    assert new.visible_bias is params.visible_bias and new.hidden_bias is params.hidden_bias


def test_bias_l2_is_weight_decay_on_the_biases_before_their_noise():
    # b <- b' - eta lambda b' + sqrt(2 eta T) nu, b' the optimiser's step (the module docstring),
    # the Langevin step of the Gaussian prior exp(-lambda |b|^2 / (2 T)) of analysis.posterior.
    rule = DeepR(5, 0.05, 0.02, bias_l2=0.5)
    params = Parameters(np.zeros((6, 4)), np.zeros(6), np.zeros(4), np.zeros((6, 4), bool))
    params, state, _ = rule.init(params, _context(0, 0.0, seed=2))
    params = params._replace(visible_bias=np.linspace(-1, 1, 6), hidden_bias=np.array([2.0, -3.0, 0.5, 0.0]))
    zero = GradientEstimate(np.zeros((6, 4)), np.zeros(6), np.zeros(4))
    new, _, _ = rule.update(params, state, zero, _context(5, 0.1, seed=2))
    draws = np.array([_ref_normal(state.keys[0], 5 * 34 + 24 + i) for i in range(10)])
    before = np.concatenate([params.visible_bias, params.hidden_bias])
    np.testing.assert_allclose(np.concatenate([new.visible_bias, new.hidden_bias]),
                               before * (1 - 0.1 * 0.5) + math.sqrt(2 * 0.1 * 0.02) * draws, rtol=0, atol=1e-15)
    sgd, _, _ = DeepR(5, 0.05, 0.02, biases="sgd", bias_l2=0.5).update(params, state, zero, _context(5, 0.1, seed=2))
    np.testing.assert_allclose(sgd.hidden_bias, params.hidden_bias * 0.95, rtol=1e-15)
    # The default is the flat prior, bit for bit.
    flat, _, _ = DeepR(5, 0.05, 0.02).update(params, state, zero, _context(5, 0.1, seed=2))
    np.testing.assert_array_equal(flat.hidden_bias, params.hidden_bias + math.sqrt(2 * 0.1 * 0.02) * draws[6:])
    with pytest.raises(ValueError, match="bias_l2 .*must be >= 0"):
        SoftDeepR(0.1, 0.1, p0=0.5, bias_l2=-1.0)
    with pytest.raises(ValueError, match="biases='fixed' never moves"):
        DeepR(3, 0.1, 0.1, biases="fixed", bias_l2=0.1)


_NEW_PROCESS = textwrap.dedent(
    """
    import sys, numpy as np, dilution
    from dilution.training import train
    state = dilution.load(sys.argv[1])
    result = train(None, np.load(sys.argv[2]), resume=state)
    dilution.save(result.history, sys.argv[3])
    dilution.save(result.state, sys.argv[4])
    """
)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_resume_in_a_new_process_is_bit_identical(name, tmp_path):
    cfg, data = CONFIGS[name], _data()
    full = train((6, 4), data, cfg, seed=1)
    half = train((6, 4), data, cfg, seed=1, until=13)  # mid-epoch (5 updates per epoch), a checkpoint
    dilution.save(half.state, tmp_path / "state.nc")
    np.save(tmp_path / "data.npy", data)
    (tmp_path / "resume.py").write_text(_NEW_PROCESS)
    subprocess.run([sys.executable, str(tmp_path / "resume.py"), str(tmp_path / "state.nc"),
                    str(tmp_path / "data.npy"), str(tmp_path / "history.nc"), str(tmp_path / "final.nc")],
                   check=True, timeout=600)
    resumed = dilution.load(tmp_path / "final.nc")
    assert resumed.model == full.model
    for a, b in zip(resumed.rule, full.state.rule):
        if a is not None:
            np.testing.assert_array_equal(a, b)
    clocks = ["wall_time", "epoch_wall_time"]
    xr.testing.assert_equal(dilution.load(tmp_path / "history.nc").drop_vars(clocks),
                            full.history.drop_vars(clocks))


# ---------------------------------------------------------------------------------------------
# Bad input


def test_bad_input():
    with pytest.raises(ValueError, match="larger than the 6 x 4 = 24 pairs"):
        train((6, 4), _data(), deep_r_config(DeepR(25, 0.1, 0.1), epochs=1, batch_size=8), seed=0)
    with pytest.raises(ValueError, match="larger than the 6 pairs of a hidden unit"):
        prior_dynamics(DeepR(7, 0.1, 0.1, scope="hidden"), (6, 4), 1, eta=0.1, seed=0)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        DeepR(3, 0.1, -1.0)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        SoftDeepR(0.1, -1.0, p0=0.5)
    with pytest.raises(ValueError, match="theta_min .* must be < 0"):
        SoftDeepR(0.1, 0.1, p0=0.5, theta_min=0.0)
    for p0 in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"p0 .* must be in \(0, 1\]"):
            SoftDeepR(0.1, 0.1, p0=p0)
    with pytest.raises(ValueError, match="give theta_min < 0 explicitly"):
        SoftDeepR(0.1, 0.1, p0=1.0)
    assert SoftDeepR(0.1, 0.1, p0=1.0, theta_min=-0.5).floor_value == -0.5
    with pytest.raises(ValueError, match="sets momentum=0"):
        deep_r_config(DeepR(3, 0.1, 0.1), momentum=0.5)
    with pytest.raises(ValueError, match="sets l1=0"):
        deep_r_config(DeepR(3, 0.1, 0.1), l1=0.1)
    # a config that is not plain SGD is refused when it is made, before any training
    with pytest.raises(ValueError, match=r"DeepR needs momentum=0, l1=0 and l2=0, got momentum=0.5: .*velocity"):
        TrainConfig(rule=DeepR(5, 0.1, 0.1), momentum=0.5, epochs=1, batch_size=8)
    with pytest.raises(ValueError, match=r"got l1=0.1, l2=0.01: the rule applies its L1 prior"):
        TrainConfig(rule=DeepR(5, 0.1, 0.1), l1=0.1, l2=0.01, epochs=1, batch_size=8)
    with pytest.raises(ValueError, match=r"SoftDeepR needs .* got momentum=LinearDecay"):
        TrainConfig(rule=SoftDeepR(0.1, 0.1, p0=0.5), momentum=LinearDecay(0.5, 0.0), epochs=1, batch_size=8)
    assert TrainConfig(rule=DeepR(5, 0.1, 0.1), momentum=Constant(0.0), epochs=1, batch_size=8).momentum.value == 0
    # the rule's own guards, for a call outside the trainer
    rule = DeepR(5, 0.1, 0.1)
    params, state, _ = rule.init(Parameters(np.zeros((6, 4)), np.zeros(6), np.zeros(4), np.zeros((6, 4), bool)),
                                 _context(0, 0.0))
    zero = GradientEstimate(np.zeros((6, 4)), np.zeros(6), np.zeros(4))
    with pytest.raises(ValueError, match="needs momentum 0"):
        rule.update(params, state, zero, _context(1, 0.1, momentum=0.5))
    with pytest.raises(ValueError, match="no option 'theta_min' .*option of soft-deep-r"):
        from_options("deep-r", k=3, alpha=0.1, temperature=0.1, theta_min=-1.0)
    with pytest.raises(ValueError, match="no option 'k' .*option of deep-r"):
        from_options("soft-deep-r", k=3, alpha=0.1, temperature=0.1, p0=0.5)
    with pytest.raises(ValueError, match="rule name must be one of"):
        from_options("deepr", k=3)
    with pytest.raises(TypeError, match="theta_min"):
        DeepR(3, 0.1, 0.1, theta_min=-1.0)
    with pytest.raises(ValueError, match="scope must be"):
        DeepR(3, 0.1, 0.1, scope="visible")
    assert from_options("deep-r", k=3, alpha=0.1, temperature=0.2) == DeepR(3, 0.1, 0.2)
