"""Parallel tempering against exact enumeration, on a bimodal RBM where plain Gibbs sampling is stuck."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy.stats import norm

import dilution
from dilution import exact
from dilution.conditionals import free_energy
from dilution.gibbs import gibbs_kernel
from dilution.model import RBM
from dilution.rng import chain_keys
from dilution.tempering import adapt_ladder, sample


# A correct sampler fails a statistical test below with probability at most ALPHA: its k one-sided
# checks each allow z_bound(k) standard errors (two-sided checks count twice; union bound).
ALPHA = 1e-3


def z_bound(n_checks: int) -> float:
    """z with n_checks * P(N(0, 1) > z) = ALPHA."""
    return float(norm.isf(ALPHA / n_checks))


def state_codes(v: np.ndarray) -> np.ndarray:
    """Row k of exact.all_states has bit u of k in column u."""
    return (v.astype(np.int64) << np.arange(v.shape[1])).sum(axis=1)


def tv_bound(p: np.ndarray, n: int, delta: float = 1e-6) -> float:
    """Bound on the TV distance between an n-sample empirical distribution and p, holding with
    probability >= 1 - delta: E[TV] <= 1/2 sum_x sqrt(p_x (1 - p_x) / n) (Jensen), plus the
    McDiarmid deviation sqrt(log(1/delta) / (2 n)) (one sample moves TV by at most 1/n)."""
    return 0.5 * np.sum(np.sqrt(p * (1 - p) / n)) + np.sqrt(np.log(1 / delta) / (2 * n))


def tv(v: np.ndarray, p: np.ndarray) -> float:
    return 0.5 * np.abs(np.bincount(state_codes(v), minlength=p.size) / v.shape[0] - p).sum()


def bimodal_rbm() -> RBM:
    """Hidden unit 0 couples all 10 visible units ferromagnetically: with h0 = 0 the visibles
    sit near all-off (bias -3), with h0 = 1 near all-on (-3 + 6); its bias -27.5 makes the on-mode
    about 8x heavier. Leaving a mode needs half the units flipped against a field of 3, so single
    Gibbs chains essentially never switch. Two weak random hidden units break the symmetry."""
    n_v, c = 10, 3.0
    rng = np.random.default_rng(0)
    w = np.zeros((n_v, 3))
    w[:, 0] = 2 * c
    w[:, 1:] = 0.3 * rng.standard_normal((n_v, 2))
    a = -c + 0.1 * rng.standard_normal(n_v)
    b = np.array([-c * n_v + 2.5, 0.0, 0.0])
    return RBM(w, a, b)


def integrated_time(trace: np.ndarray, mean: float, var: float, c: float = 5.0) -> float:
    """Integrated autocorrelation time of traces (n_chains, n_steps) centred on the *exact* mean
    and variance, with Sokal's window (smallest M >= c tau(M)). Centring each chain on its own
    mean would hide a chain stuck in one mode; the exact moments expose it (rho stays near 1)."""
    x = trace - mean
    n = x.shape[1]
    rho = np.array([np.mean(x[:, : n - t] * x[:, t:]) for t in range(n // 2)]) / var
    tau = 1.0
    for m in range(1, rho.size):
        tau = 1.0 + 2.0 * rho[1 : m + 1].sum()
        if m >= c * tau:
            break
    return tau


@pytest.fixture(scope="module")
def bimodal():
    rbm = bimodal_rbm()
    p = np.exp(exact.log_prob_visible(rbm))
    return rbm, p


def test_gibbs_is_stuck_but_tempering_matches_exact(bimodal):
    rbm, p = bimodal
    on = exact.all_states(rbm.n_visible).sum(axis=1) > rbm.n_visible / 2
    p_on = p[on].sum()
    n = 3000
    # Each chain contributes its final state, so the n samples are independent.
    gibbs = dilution.sample(rbm, n, 300, seed=1)
    pt = sample(rbm, n, 100, n_temps=6, beta_min=0.1, seed=1, burn_in=100)
    v_pt = pt.samples[-1]
    bound = tv_bound(p, n)
    assert tv(gibbs, p) > 2 * bound, "plain Gibbs was expected to be stuck (TV to exact large)"
    assert tv(v_pt, p) < bound
    # Mode occupancy of n independent samples: binomial standard error sqrt(p(1-p)/n) ~ 0.006.
    # Gibbs must be far outside (10 SE); tempering within 5 SE (two-sided tail 6e-7).
    se = math.sqrt(p_on * (1 - p_on) / n)
    assert abs((gibbs.sum(axis=1) > rbm.n_visible / 2).mean() - p_on) > 10 * se
    assert abs((v_pt.sum(axis=1) > rbm.n_visible / 2).mean() - p_on) < 5 * se
    assert pt.samples.shape == (1, n, rbm.n_visible)


def test_tempering_decorrelates_much_faster_than_gibbs(bimodal):
    rbm, p = bimodal
    m_all = exact.all_states(rbm.n_visible).mean(axis=1)
    mean = float(p @ m_all)
    var = float(p @ (m_all - mean) ** 2)
    n_chains, n_sweeps = 16, 2000
    pt = sample(rbm, n_chains, n_sweeps, n_temps=6, beta_min=0.1, seed=2, burn_in=200, thin=1)
    tau_pt = integrated_time(pt.samples.mean(axis=2).T, mean, var)

    # Plain Gibbs trace, one sweep per kernel call, after the same burn-in.
    v = (np.random.default_rng(3).random((n_chains, rbm.n_visible)) < 0.5).astype(rbm.dtype)
    keys = chain_keys(3, n_chains)
    w_t = np.ascontiguousarray(rbm.weights.T)
    ones, zeros = np.ones(n_chains), np.zeros(rbm.n_visible)
    stride = rbm.n_visible + rbm.n_hidden
    trace = np.empty((n_chains, n_sweeps))
    for s in range(200 + n_sweeps):
        v, _ = gibbs_kernel(
            v, rbm.weights, w_t, rbm.visible_bias, rbm.hidden_bias, ones, zeros, keys, np.uint64(s * stride), 1
        )
        if s >= 200:
            trace[:, s - 200] = v.mean(axis=1)
    tau_gibbs = integrated_time(trace, mean, var)
    # Sokal's estimate of tau is trustworthy when the trace is at least 50 tau long (Sokal 1997;
    # emcee's default). Tempering meets that criterion, and its time average then has the standard
    # error sqrt(var tau / N) over all N = n_chains n_sweeps draws, which must cover the exact mean.
    # Stuck Gibbs chains keep rho near 1 over the whole window: their tau is of the order of the
    # trace length, so 2000 sweeps cannot even estimate it.
    assert n_sweeps >= 50 * tau_pt, f"tau PT {tau_pt:.1f}"
    se = math.sqrt(var * tau_pt / (n_chains * n_sweeps))
    assert abs(pt.samples.mean() - mean) < z_bound(2) * se
    assert n_sweeps < 50 * tau_gibbs, f"tau Gibbs {tau_gibbs:.1f}"


def exact_swap_acceptance(rbm: RBM, b1: float, b2: float, a0: np.ndarray) -> float:
    """E[min(1, exp(F1(v1) + F2(v2) - F1(v2) - F2(v1)))] with v1 ~ p_b1, v2 ~ p_b2, by enumeration."""
    s = exact.all_states(rbm.n_visible)
    f1 = free_energy(s, rbm.weights, rbm.visible_bias, rbm.hidden_bias, b1, a0)
    f2 = free_energy(s, rbm.weights, rbm.visible_bias, rbm.hidden_bias, b2, a0)
    p1 = np.exp(-f1 - np.logaddexp.reduce(-f1))
    p2 = np.exp(-f2 - np.logaddexp.reduce(-f2))
    log_acc = (f1[:, None] + f2[None, :]) - (f1[None, :] + f2[:, None])
    return float(p1 @ np.minimum(1.0, np.exp(log_acc)) @ p2)


@pytest.mark.parametrize("with_base", [False, True])
def test_generic_rbm_marginal_and_swap_rates_match_exact(with_base):
    rbm = RBM.random(7, 5, connectivity=0.6, weight_scale=2.0, bias_scale=0.5, seed=4)
    a0 = np.linspace(-1, 1, 7) if with_base else np.zeros(7)
    p = np.exp(exact.log_prob_visible(rbm))
    ladder = np.array([0.3, 0.55, 1.0])
    n = 3000
    res = sample(rbm, n, 200, betas=ladder, seed=5, burn_in=50, base_bias=a0 if with_base else None)
    # The base measure only weights the hot replicas: the beta = 1 marginal is the RBM's.
    assert tv(res.samples[-1], p) < tv_bound(p, n)
    per_chain = res.diagnostics.swap_acceptance_per_chain.values
    for k in range(2):
        want = exact_swap_acceptance(rbm, ladder[k], ladder[k + 1], a0)
        # Chains are independent: the spread of their own acceptance rates gives the standard
        # error of the mean; 5 of them, two-sided, for each of the 2 pairs (4 tails of 3e-7; the
        # chains are stationary after burn-in).
        se = per_chain[:, k].std(ddof=1) / math.sqrt(n)
        assert abs(per_chain[:, k].mean() - want) < 5 * se, (k, per_chain[:, k].mean(), want)


def test_wrong_swap_rule_would_be_caught():
    # The swap check can fail: the rate expected for a different pair of temperatures is far off.
    rbm = RBM.random(7, 5, connectivity=0.6, weight_scale=2.0, bias_scale=0.5, seed=4)
    res = sample(rbm, 500, 100, betas=[0.3, 0.55, 1.0], seed=5, burn_in=50)
    wrong = exact_swap_acceptance(rbm, 0.3, 1.0, np.zeros(7))
    per_chain = res.diagnostics.swap_acceptance_per_chain.values[:, 0]
    assert abs(per_chain.mean() - wrong) > 5 * per_chain.std(ddof=1) / math.sqrt(500)


def test_adaptation_reaches_target_and_keeps_the_marginal(bimodal):
    rbm, p = bimodal
    n = 2000
    res = sample(rbm, n, 100, n_temps=5, beta_min=0.05, seed=6, burn_in=400, adapt=True, target_swap_rate=0.6)
    d = res.diagnostics
    ladder = d.betas.values
    assert ladder[-1] == 1.0 and np.all(np.diff(ladder) > 0)
    assert not np.allclose(ladder, d.initial_betas.values)
    zeros = np.zeros(rbm.n_visible)
    before, after = (
        np.array([exact_swap_acceptance(rbm, b[k], b[k + 1], zeros) for k in range(b.size - 1)])
        for b in (d.initial_betas.values, ladder)
    )
    # Adaptation moves every pair's exact swap rate toward the target.
    assert np.all(np.abs(after - 0.6) < np.abs(before - 0.6)), (before, after)
    # The recorded rates are those of the frozen ladder: 4 pairs, two-sided, SE from the spread
    # of the independent chains' own rates.
    per_chain = d.swap_acceptance_per_chain.values
    se = per_chain.std(axis=0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(d.swap_acceptance.values - after) < z_bound(8) * se), (d.swap_acceptance.values, after)
    assert tv(res.samples[-1], p) < tv_bound(p, n)


def test_adapt_ladder_direction():
    ladder = np.array([0.1, 0.3, 1.0])
    wider = adapt_ladder(ladder, np.array([0.9, 0.9]), 0.3)
    narrower = adapt_ladder(ladder, np.array([0.0, 0.0]), 0.3)
    assert wider[0] < ladder[0] < narrower[0]
    assert wider[-1] == narrower[-1] == 1.0


def test_round_trips_and_diagnostics_layout(bimodal):
    rbm, _ = bimodal
    res = sample(rbm, 8, 400, n_temps=4, beta_min=0.2, seed=7, thin=100)
    d = res.diagnostics
    assert res.samples.shape == (4, 8, rbm.n_visible)
    assert res.replicas.shape == (8, 4, rbm.n_visible)
    assert d.swap_acceptance.dims == ("pair",) and d.swap_acceptance.size == 3
    assert d.round_trips.dims == ("chain",)
    assert int(d.round_trips.sum()) > 0
    # A round trip visits both ends: at least n_temps - 1 hops each way, one hop per two sweeps
    # per pair at best.
    assert float(d.round_trip_time) >= 2 * (4 - 1)
    np.testing.assert_array_equal(res.samples[-1], res.replicas[:, -1])
    single = sample(rbm, 4, 10, betas=[1.0], seed=7)
    assert single.diagnostics.swap_acceptance.size == 0
    assert math.isnan(float(single.diagnostics.round_trip_time))


def test_reproducible_and_thread_count_independent(bimodal):
    rbm, _ = bimodal
    kw = dict(n_temps=4, beta_min=0.2, seed=8, burn_in=30, thin=5)
    first = sample(rbm, 6, 50, **kw)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = sample(rbm, 6, 50, **kw)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(first.samples, single.samples)
    np.testing.assert_array_equal(
        first.diagnostics.swap_acceptance_per_chain, single.diagnostics.swap_acceptance_per_chain
    )
    other = sample(rbm, 6, 50, **{**kw, "seed": 9})
    assert not np.array_equal(first.samples, other.samples)


def test_float32_model(bimodal):
    rbm, p = bimodal
    res = sample(rbm.astype(np.float32), 2000, 100, n_temps=6, beta_min=0.1, seed=10, burn_in=100)
    assert res.samples.dtype == np.float32
    assert tv(res.samples[-1], p) < tv_bound(p, 2000)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(betas=[0.5, 0.9]), ValueError, "must be 1"),
        (dict(betas=[0.9, 0.5, 1.0]), ValueError, "increase strictly"),
        (dict(thin=20), ValueError, "thin must be <="),
        (dict(adapt=True, burn_in=5), ValueError, "burn_in >= 20"),
        (dict(adapt=True, burn_in=50, target_swap_rate=1.5), ValueError, "target_swap_rate"),
        (dict(base_bias=np.zeros(3)), ValueError, "base_bias"),
        (dict(init=np.zeros((2, 2, 10))), ValueError, "init must have shape"),
        (dict(burn_in=-1), ValueError, "burn_in"),
    ],
)
def test_bad_input(bimodal, kwargs, error, message):
    rbm, _ = bimodal
    with pytest.raises(error, match=message):
        sample(rbm, 2, 10, seed=0, **kwargs)
