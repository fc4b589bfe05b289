"""AIS estimates of log Z against exact enumeration; schedules; weight statistics; reproducibility."""

from __future__ import annotations

import math
import warnings

import numba
import numpy as np
import pytest
import scipy.io
from scipy.special import logsumexp
from scipy.stats import norm

from dilution import exact, schedules
from dilution.ais import (
    DegenerateReverseWeightsWarning,
    DegenerateWeightsWarning,
    ais_kernel,
    base_rate_bias,
    log_likelihood,
    log_partition,
    padded_weights,
    weight_summary,
)
from dilution.model import RBM
from dilution.rng import chain_keys


# Every statistical test below fails for a correct implementation with probability at most ALPHA:
# its k one-sided checks each allow z_bound(k) standard errors (a two-sided check counts as two),
# and the union bound adds their tail probabilities. The standard errors are the estimates'
# own (delta method), so the normal tails are asymptotic in the number of chains.
ALPHA = 1e-3


def z_bound(n_checks: int) -> float:
    """z with n_checks * P(N(0, 1) > z) = ALPHA."""
    return float(norm.isf(ALPHA / n_checks))


def exact_samples(rbm: RBM, n: int, seed: int) -> np.ndarray:
    """Exact samples of p(v): h from its marginal by enumerating the hidden layer, then v | h."""
    w = rbm.weights.astype(np.float64)
    a = rbm.visible_bias.astype(np.float64)
    b = rbm.hidden_bias.astype(np.float64)
    h_all = exact.all_states(rbm.n_hidden)
    log_p_h = h_all @ b + np.logaddexp(0.0, a + h_all @ w.T).sum(axis=1)
    p_h = np.exp(log_p_h - logsumexp(log_p_h))
    rng = np.random.default_rng(seed)
    h = h_all[rng.choice(h_all.shape[0], size=n, p=p_h / p_h.sum())]
    p_v = 1.0 / (1.0 + np.exp(-(a + h @ w.T)))
    return (rng.random(p_v.shape) < p_v).astype(rbm.dtype)


def make_models(n_models: int, seed: int) -> list[RBM]:
    """Random masked RBMs: 20-40 visible, 16-18 hidden, weak and strong weights, connectivity 1 to 0.1."""
    rng = np.random.default_rng(seed)
    models = []
    for k in range(n_models):
        n_v = int(rng.integers(20, 41))
        n_h = int(rng.integers(16, 19))
        conn = [1.0, 0.5, 0.25, 0.1][k % 4]
        scale = [0.3, 1.0, 2.0][k % 3] / math.sqrt(conn)  # sparse models keep comparable fields
        dtype = np.float32 if k % 5 == 4 else np.float64
        models.append(
            RBM.random(
                n_v, n_h, connectivity=conn, weight_scale=scale, bias_scale=0.5, dtype=dtype, seed=1000 * seed + k
            )
        )
    return models


def all_threads_and_one(rbm: RBM, kw: dict):
    """log_partition(rbm, **kw) with numba's threads as they are, then with one thread."""
    first = log_partition(rbm, **kw)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = log_partition(rbm, **kw)
    finally:
        numba.set_num_threads(old)
    return first, single


def check_against_exact(models: list[RBM], n_chains: int, betas: np.ndarray) -> tuple[list, list]:
    # Per model three one-sided checks: the forward estimate within z SE of exact on either side,
    # and exact below the reverse (upper-bound) estimate plus z SE.
    z = z_bound(3 * len(models))
    inside, bracket = [], []
    for k, rbm in enumerate(models):
        truth = exact.log_partition(rbm)
        ds = log_partition(
            rbm, n_chains=n_chains, betas=betas, seed=k, reverse_init=exact_samples(rbm, n_chains, seed=k),
            n_bootstrap=0,
        )
        lz, se = float(ds.log_z), float(ds.log_z_std)
        up, se_up = float(ds.log_z_upper), float(ds.log_z_upper_std)
        inside.append(abs(lz - truth) < z * se)
        # Forward is a stochastic lower bound and reverse (from exact samples) an upper one: the
        # bracket widened by z standard errors on each side must hold the truth.
        bracket.append(lz - z * se <= truth <= up + z * se_up)
    return inside, bracket


def test_ais_matches_exact_on_random_masked_rbms():
    # 8 models, 300 chains, 1000 linear betas; 24 one-sided checks at z_bound(24) = 3.9 SE, so a
    # correct AIS fails this test with probability at most ALPHA (union bound).
    models = make_models(8, seed=1)
    inside, bracket = check_against_exact(models, 300, schedules.linear(1000))
    assert all(inside), f"AIS outside {z_bound(24):.2f} SE of exact for models {[k for k, ok in enumerate(inside) if not ok]}"
    outside = [k for k, ok in enumerate(bracket) if not ok]
    assert not outside, f"exact log Z outside the forward/reverse bracket for models {outside}"


@pytest.mark.slow
def test_ais_matches_exact_on_many_random_masked_rbms():
    models = make_models(24, seed=2)
    inside, bracket = check_against_exact(models, 500, schedules.geometric(3000, 1e-3))
    assert all(inside), f"AIS outside {z_bound(72):.2f} SE of exact for models {[k for k, ok in enumerate(inside) if not ok]}"
    assert all(bracket), f"exact log Z outside the bracket for models {[k for k, ok in enumerate(bracket) if not ok]}"


def test_ais_detects_a_wrong_model():
    # The comparison above can fail: AIS of a model with shifted hidden biases is farther from the
    # exact log Z of the original than the tolerance of test_ais_matches_exact_on_random_masked_rbms.
    rbm = make_models(1, seed=3)[0]
    other = rbm.replace(hidden_bias=rbm.hidden_bias + 0.1)
    ds = log_partition(other, n_chains=200, betas=schedules.linear(500), seed=0, reverse=False)
    assert abs(float(ds.log_z) - exact.log_partition(rbm)) > z_bound(24) * float(ds.log_z_std)


def test_resampling_ais_matches_exact_on_random_masked_rbms():
    # AIS with resampling: 30 populations of 10 chains on a 40-beta schedule, short enough that
    # the populations of every model with weight scale >= 1 (k % 3 != 0 in make_models) resample
    # (checked: the comparison would not test the stage products otherwise; the weak models need
    # none). The estimate is the log of the mean of 30 i.i.d. unbiased estimates of Z, its
    # standard error the delta method over them; 8 two-sided checks at z_bound(16).
    models = make_models(8, seed=1)
    z = z_bound(16)
    outside, resampled = [], []
    for k, rbm in enumerate(models):
        truth = exact.log_partition(rbm)
        ds = log_partition(rbm, n_chains=300, betas=schedules.linear(40), seed=k, reverse=False, resample=0.5,
                           n_groups=30, n_bootstrap=0)
        resampled.append(int(ds.n_resamples.sum()))
        if abs(float(ds.log_z) - truth) >= z * float(ds.log_z_std):
            outside.append((k, float(ds.log_z) - truth, float(ds.log_z_std)))
    assert all(n > 0 for k, n in enumerate(resampled) if k % 3), f"a strong model never resampled: {resampled}"
    assert not outside, f"resampling AIS outside {z:.2f} SE of exact (model, error, SE): {outside}"


def test_resampling_rescues_a_schedule_too_short_for_plain_ais():
    # Strong weights and 30 betas: plain AIS's weights collapse onto a few chains, while the
    # populations of the resampling run stay balanced and land within z SE of the exact log Z.
    rbm = RBM.random(30, 16, weight_scale=2.0, bias_scale=0.5, seed=12)
    truth = exact.log_partition(rbm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateWeightsWarning)
        plain = log_partition(rbm, n_chains=400, betas=schedules.linear(30), seed=0, reverse=False, n_bootstrap=0)
    smc = log_partition(rbm, n_chains=400, betas=schedules.linear(30), seed=0, reverse=False, resample=0.5,
                        n_groups=20, n_bootstrap=0)
    assert float(plain.ess) < 0.1 * 400
    assert float(smc.ess) > 0.5 * 20
    assert abs(float(smc.log_z) - truth) < z_bound(2) * float(smc.log_z_std)


def test_resampling_is_reproducible_any_thread_count():
    rbm = RBM.random(30, 16, weight_scale=2.0, bias_scale=0.5, seed=12)
    kw = dict(n_chains=40, betas=schedules.linear(30), seed=7, reverse=False, resample=0.5, n_groups=4,
              n_bootstrap=0)
    first, single = all_threads_and_one(rbm, kw)
    assert int(first.n_resamples.sum()) > 0
    np.testing.assert_array_equal(first.group_log_ratio.values, single.group_log_ratio.values)
    np.testing.assert_array_equal(first.n_resamples.values, single.n_resamples.values)
    other = log_partition(rbm, **{**kw, "seed": 8})
    assert not np.array_equal(first.group_log_ratio.values, other.group_log_ratio.values)


def test_systematic_resampling_draws_ancestors_in_proportion():
    # Systematic resampling gives ancestor i floor(n p_i) or ceil(n p_i) copies, whatever the offset.
    from dilution.ais import _systematic

    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 40))
        log_w = rng.normal(0.0, 2.0, n)
        p = np.exp(log_w - logsumexp(log_w))
        counts = np.bincount(_systematic(log_w, float(rng.random())), minlength=n)
        assert counts.sum() == n
        assert np.all(counts >= np.floor(n * p - 1e-9)) and np.all(counts <= np.ceil(n * p + 1e-9))


def test_ais_on_salakhutdinov_15_hidden_mnist_model(data_dir, models_dir):
    m = scipy.io.loadmat(models_dir / "mnistvh.mat")
    rbm = RBM(m["vishid"], m["visbiases"].ravel(), m["hidbiases"].ravel())
    with np.load(data_dir / "mnist" / "mnist.npz") as f:
        train = (f["x_train"][::10].reshape(-1, 784) > 127).astype(np.float64)
    truth = exact.log_partition(rbm)
    ds = log_partition(
        rbm, n_chains=100, betas=schedules.linear(2000), data=train, seed=0,
        reverse_init=exact_samples(rbm, 100, seed=0), n_bootstrap=200,
    )
    lz, se = float(ds.log_z), float(ds.log_z_std)
    z = z_bound(3)  # as in check_against_exact, for one model
    assert abs(lz - truth) < z * se
    assert lz - z * se <= truth <= float(ds.log_z_upper) + z * float(ds.log_z_upper_std)


def test_the_reverse_chains_are_burnt_in_before_the_reverse_run():
    # A 10-beta forward run on a strongly coupled 12 x 6 model ends far from the model, so reverse
    # AIS started from its end states directly is biased low (the starts look like the base); the
    # default 1000 Gibbs sweeps at beta = 1 make them near-exact samples, and the reverse estimate is
    # then the log of a mean of 1000 independent weights: normal around log Z with its delta-method
    # se, off by about se**2 / 2 upwards, so within 4 se + se**2 / 2 of exact but with probability
    # ~6e-5. Without the burn-in the same seed lands below exact - 4 se: the check has power.
    rbm = RBM.random(12, 6, weight_scale=3.0, bias_scale=0.5, seed=3)
    truth = float(exact.log_partition(rbm))
    kw = dict(n_chains=1000, betas=schedules.linear(10), seed=1, n_bootstrap=0, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateWeightsWarning)  # the 10-beta forward run is meant to be poor
        burnt = log_partition(rbm, **kw)
        raw = log_partition(rbm, **kw, reverse_burn_in=0)
    upper, se = float(burnt.log_z_upper), float(burnt.log_z_upper_std)
    assert abs(upper - truth) <= 4 * se + se**2 / 2, (upper - truth, se)
    assert float(raw.log_z_upper) < truth - 4 * float(raw.log_z_upper_std), (float(raw.log_z_upper) - truth)
    # the forward run is the same either way: the burn-in draws only for the reverse chains
    np.testing.assert_array_equal(burnt.log_weights.values, raw.log_weights.values)


def test_same_seed_same_log_weights_any_thread_count():
    rbm = make_models(1, seed=4)[0]
    kw = dict(n_chains=16, betas=schedules.linear(200), seed=7, reverse_burn_in=20, n_bootstrap=0)
    first, single = all_threads_and_one(rbm, kw)
    np.testing.assert_array_equal(first.log_weights.values, single.log_weights.values)
    np.testing.assert_array_equal(first.log_weights_reverse.values, single.log_weights_reverse.values)
    other = log_partition(rbm, **{**kw, "seed": 8})
    assert not np.array_equal(first.log_weights.values, other.log_weights.values)


def test_splitting_the_schedule_into_kernel_calls_changes_nothing():
    # The driver chunks the schedule to keep a progress bar alive; chunks must not change draws.
    rbm = make_models(1, seed=5)[0]
    betas = schedules.linear(50)
    keys = chain_keys(0, 8)
    v0 = (np.random.default_rng(0).random((8, rbm.n_visible)) < 0.5).astype(rbm.dtype)
    a0 = np.zeros(rbm.n_visible, dtype=rbm.dtype)
    w, w_t = padded_weights(rbm)
    args = (w, w_t, rbm.visible_bias, rbm.hidden_bias, a0)
    single = rbm.dtype == np.float32
    whole_v, whole_w = ais_kernel(v0, np.zeros(8), *args, betas, keys, 1, False, single)
    v, log_w = v0, np.zeros(8)
    for s in range(0, 49, 10):
        e = min(49, s + 10)
        v, log_w = ais_kernel(v, log_w, *args, betas[s : e + 1], keys, s + 1, e < 49, single)
    np.testing.assert_array_equal(log_w, whole_w)
    np.testing.assert_array_equal(v, whole_v)


def zero_weight_relative_variance(a: np.ndarray, a0: np.ndarray, betas: np.ndarray) -> float:
    """Exact Var(w) / E[w]^2 of one AIS weight for an RBM with W = 0, biases a (visible), 0 (hidden).

    The visible units of every intermediate distribution are independent Bernoullis with
    P(v_i = 1) = q_i = sigmoid(beta a_i + (1 - beta) a0_i), and a Gibbs sweep draws them exactly
    (with W = 0 they ignore h), so the factors f_t = exp((beta_t - beta_{t-1}) (a - a0).v),
    v ~ p_{t-1}, are independent: E[w^2] / E[w]^2 = prod_t prod_i E[f_ti^2] / E[f_ti]^2, with
    E[e^{c v_i}] = 1 + q_i (e^c - 1)."""
    d = a - a0
    log_ratio = 0.0
    for b_old, b_new in zip(betas[:-1], betas[1:]):
        q = 1 / (1 + np.exp(-(b_old * a + (1 - b_old) * a0)))
        c = (b_new - b_old) * d
        log_ratio += np.log1p(q * np.expm1(2 * c)).sum() - 2 * np.log1p(q * np.expm1(c)).sum()
    return math.expm1(log_ratio)


def test_zero_weights_give_exact_answer_with_zero_variance():
    # With W = 0 and base rates equal to the model's own biases, every intermediate distribution
    # is the base model: all log-weights are exactly 0 and log Z is the closed form.
    n_v, n_h, n_chains = 12, 5, 200
    a = np.linspace(-2, 2, n_v)
    rbm = RBM(np.zeros((n_v, n_h)), a, np.zeros(n_h))
    p = 1 / (1 + np.exp(-a))
    data = (np.random.default_rng(0).random((100_000, n_v)) < p).astype(float)
    betas = schedules.linear(20)
    ds = log_partition(rbm, n_chains=n_chains, betas=betas, data=data, seed=0, reverse_burn_in=5)
    closed = np.logaddexp(0, a).sum() + n_h * math.log(2)
    a0 = base_rate_bias(data, n_v)
    # log Z_base differs from log Z by the bias mismatch; the weights carry exactly that. The mean
    # of n weights has relative standard error sqrt(r / n) with r the exact relative variance, so
    # log mean(w) is within z of those of log E[w] (delta method), up to the Jensen bias r / (2 n).
    assert np.isfinite(ds.log_weights).all()
    r = zero_weight_relative_variance(a, a0, betas)
    assert abs(float(ds.log_z) - closed) < z_bound(2) * math.sqrt(r / n_chains) + r / n_chains
    rbm0 = RBM(np.zeros((n_v, n_h)), a0, np.zeros(n_h))
    ds0 = log_partition(rbm0, n_chains=8, betas=schedules.linear(20), data=data, seed=0, reverse_burn_in=5)
    assert np.abs(ds0.log_weights.values).max() < 1e-9
    assert float(ds0.log_z) == pytest.approx(np.logaddexp(0, a0).sum() + n_h * math.log(2), abs=1e-9)


def test_float32_model_matches_exact():
    rbm = RBM.random(30, 16, connectivity=0.5, weight_scale=1.5, bias_scale=0.5, dtype=np.float32, seed=11)
    ds = log_partition(rbm, n_chains=200, betas=schedules.linear(800), seed=3, reverse=False)
    assert ds.log_weights.dtype == np.float64
    assert abs(float(ds.log_z) - exact.log_partition(rbm)) < z_bound(2) * float(ds.log_z_std)


def test_degenerate_weights_warn():
    rbm = RBM.random(30, 16, weight_scale=3.0, bias_scale=0.5, seed=12)
    with pytest.warns(DegenerateWeightsWarning, match="effective sample size"):
        log_partition(rbm, n_chains=100, betas=schedules.linear(3), seed=0, reverse=False)


def test_degenerate_reverse_weights_warn_with_a_class_of_their_own():
    # the reverse ESS is often tiny where the forward one is not: a caller tells the two apart
    rbm = RBM.random(30, 16, weight_scale=3.0, bias_scale=0.5, seed=12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log_partition(rbm, n_chains=100, betas=schedules.linear(3), seed=0, reverse_burn_in=10)
    degenerate = [w for w in caught if issubclass(w.category, DegenerateWeightsWarning)]
    assert [w.category for w in degenerate] == [DegenerateWeightsWarning, DegenerateReverseWeightsWarning]
    assert [str(w.message).split()[0] for w in degenerate] == ["forward", "reverse"]


def test_weight_summary_against_direct_formulas():
    rng = np.random.default_rng(0)
    log_w = rng.normal(3.0, 0.7, size=2000)
    s = weight_summary(log_w, n_bootstrap=2000, seed=1)
    w = np.exp(log_w)
    assert s["log_mean"] == pytest.approx(np.log(w.mean()), rel=1e-12)
    assert s["std"] == pytest.approx(w.std(ddof=1) / (np.sqrt(w.size) * w.mean()), rel=1e-10)
    assert s["ess"] == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-10)
    # Bootstrap std estimates the same standard error. With B = 2000 resamples of a near-normal
    # statistic its Monte Carlo relative error is 1/sqrt(2 (B - 1)) = 1.6 %, allowed z of them.
    # The two differ systematically by the curvature of log (relative O(std) = 1.7 % here,
    # allowed twice) and the ddof of the resampled spread (1/n).
    b = 2000
    tol = z_bound(2) / math.sqrt(2 * (b - 1)) + 2 * s["std"] + 1 / w.size
    assert s["bootstrap_std"] == pytest.approx(s["std"], rel=tol)
    assert s["ci_low"] < s["log_mean"] < s["ci_high"]
    assert weight_summary(np.full(50, -3.0), n_bootstrap=0)["ess"] == pytest.approx(50)
    with pytest.raises(ValueError, match="finite"):
        weight_summary(np.array([0.0, np.nan]))


def test_log_likelihood_with_exact_and_ais_log_z():
    rbm = RBM.random(20, 16, connectivity=0.5, weight_scale=1.0, bias_scale=0.5, seed=13)
    data = exact_samples(rbm, 500, seed=1)
    truth = exact.log_likelihood(rbm, data)
    ds = log_likelihood(rbm, data, log_z=exact.log_partition(rbm))
    assert float(ds.log_likelihood) == pytest.approx(truth.mean(), abs=1e-9)
    assert float(ds.log_likelihood_std) == pytest.approx(truth.std(ddof=1) / np.sqrt(500), rel=1e-9)
    z = log_partition(rbm, n_chains=100, betas=schedules.linear(500), seed=2, reverse_init=exact_samples(rbm, 100, 2))
    est = log_likelihood(rbm, data, log_z=z)
    assert float(est.log_likelihood_std) == pytest.approx(math.hypot(float(ds.log_likelihood_std), float(z.log_z_std)))
    # The same free energies on both sides: the difference is the AIS error of log Z alone.
    assert abs(float(est.log_likelihood) - truth.mean()) < z_bound(2) * float(z.log_z_std)
    assert float(est.log_likelihood_lower) == pytest.approx(float(est.mean_neg_free_energy) - float(z.log_z_upper))
    with pytest.raises(ValueError, match="seed is required"):
        log_likelihood(rbm, data)


def test_dataset_layout():
    rbm = RBM.random(10, 4, weight_scale=0.5, seed=14)
    ds = log_partition(rbm, n_chains=4, betas=schedules.linear(10), seed=0, reverse_burn_in=2, n_bootstrap=10)
    scalars = ("log_z", "log_z_std", "log_z_bootstrap_std", "log_z_ci_low", "log_z_ci_high", "ess")
    for name in scalars + ("log_z_upper", "log_z_upper_std", "ess_reverse"):
        assert ds[name].ndim == 0, name
    assert ds.log_weights.dims == ("chain",) and ds.log_weights.size == 4
    assert ds.attrs["n_betas"] == 10 and ds.attrs["reverse_init"].startswith("forward")
    assert "log_z_upper" not in log_partition(rbm, n_chains=4, betas=schedules.linear(10), seed=0, reverse=False)


def test_bad_input_is_rejected():
    rbm = RBM.random(10, 4, seed=15)
    with pytest.raises(ValueError, match="n_chains"):
        log_partition(rbm, n_chains=1, betas=schedules.linear(10), seed=0)
    with pytest.raises(ValueError, match="start at beta = 0"):
        log_partition(rbm, n_chains=4, betas=[0.1, 1.0], seed=0)
    with pytest.raises(ValueError, match="reverse_init must have 4 rows"):
        log_partition(rbm, n_chains=4, betas=schedules.linear(10), seed=0, reverse_init=np.zeros((3, 10)))
    # reverse starts without the reverse run were dropped without a word
    with pytest.raises(ValueError, match="reverse_init gives the starts of the reverse run, which reverse=False"):
        log_partition(rbm, n_chains=4, betas=schedules.linear(10), seed=0, reverse=False,
                      reverse_init=np.zeros((4, 10)))
    with pytest.raises(ValueError, match="binary"):
        log_partition(rbm, n_chains=4, betas=schedules.linear(10), seed=0, data=np.full((5, 10), 0.5))
    with pytest.raises(TypeError, match="dilution.RBM"):
        log_partition("rbm", n_chains=4, seed=0)
    for bad in (1.0, -0.1, True, "0.5"):
        with pytest.raises(ValueError, match="resample must be a number in"):
            log_partition(rbm, n_chains=4, betas=schedules.linear(10), seed=0, resample=bad)
    with pytest.raises(ValueError, match="multiple of n_groups"):
        log_partition(rbm, n_chains=10, betas=schedules.linear(10), seed=0, resample=0.5, n_groups=4)
    with pytest.raises(ValueError, match="at least 2 chains per population"):
        log_partition(rbm, n_chains=4, betas=schedules.linear(10), seed=0, resample=0.5, n_groups=4)


# --- schedules -----------------------------------------------------------------------------


def test_classic_schedule():
    b = schedules.classic()
    assert b.size == 14_500
    assert b[0] == 0.0 and b[-1] == 1.0
    assert np.all(np.diff(b) > 0)
    assert np.sum(b < 0.5) == 500 and np.sum((b >= 0.5) & (b < 0.9)) == 4000 and np.sum(b >= 0.9) == 10_000
    np.testing.assert_allclose(np.diff(b[:500]), 1e-3)
    np.testing.assert_allclose(np.diff(b[500:4500]), 1e-4)
    np.testing.assert_array_equal(schedules.classic(14_500), b)


@pytest.mark.parametrize("n, counts", [(10_000, (345, 2759, 6896)), (29, (1, 8, 20)), (4, (1, 1, 2))])
def test_classic_schedule_scaled_to_n_betas_keeps_its_proportions(n, counts):
    b = schedules.classic(n)
    assert b.size == n and b[0] == 0.0 and b[-1] == 1.0 and np.all(np.diff(b) > 0)
    assert (np.sum(b < 0.5), np.sum((b >= 0.5) & (b < 0.9)), np.sum(b >= 0.9)) == counts


def test_classic_schedule_needs_four_betas():
    with pytest.raises(ValueError, match="n_betas"):
        schedules.classic(3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: schedules.linear(7),
        lambda: schedules.geometric(7, 1e-3),
        lambda: schedules.piecewise_uniform([0, 0.3, 1], [4, 3]),
    ],
)
def test_schedules_run_from_zero_to_one(make):
    b = make()
    assert b.size == 7 and b[0] == 0.0 and b[-1] == 1.0 and np.all(np.diff(b) > 0)
    np.testing.assert_array_equal(schedules.check_schedule(b), b)


def test_geometric_schedule_and_ladder_are_geometric():
    b = schedules.geometric(6, 1e-4)
    np.testing.assert_allclose(b[1:], [1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    ladder = schedules.geometric_ladder(4, 0.125)
    np.testing.assert_allclose(ladder, [0.125, 0.25, 0.5, 1.0])
    assert schedules.geometric_ladder(1).tolist() == [1.0]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: schedules.linear(1), "n_betas must be an integer >= 2"),
        (lambda: schedules.linear(2.5), "n_betas must be an integer"),
        (lambda: schedules.geometric(10, 0.0), "beta_min must be in"),
        (lambda: schedules.piecewise_uniform([0, 0.5], [3]), "edges must increase strictly from 0 to 1"),
        (lambda: schedules.piecewise_uniform([0, 0.5, 1], [3]), "one entry per interval"),
        (lambda: schedules.check_schedule([0.0, 0.6, 0.5, 1.0]), "non-decreasing"),
        (lambda: schedules.check_schedule([0.0, 0.5]), "end at beta = 1"),
        (lambda: schedules.check_schedule([[0.0, 1.0]]), "1-D"),
        (lambda: schedules.check_schedule([0.0, np.nan, 1.0]), "finite"),
        (lambda: schedules.check_ladder([0.5, 0.9]), "must be 1"),
        (lambda: schedules.check_ladder([0.5, 0.5, 1.0]), "increase strictly"),
        (lambda: schedules.geometric_ladder(3, 1.0), "below 1"),
    ],
)
def test_schedule_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_warnings_are_not_raised_for_a_good_run():
    rbm = RBM.random(12, 4, weight_scale=0.5, seed=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateWeightsWarning)
        log_partition(rbm, n_chains=50, betas=schedules.linear(100), seed=0, reverse_burn_in=10)
