"""The reference posterior sampler against exact answers: enumeration, closed forms, quadrature, emcee.

Tolerances. Every Monte Carlo comparison uses the effective sample size ``ESS`` of the quantity
(integrated autocorrelation time over the replica-averaged autocorrelation function): a mean's
standard error is ``sd / sqrt(ESS)`` and a test fails at ``|difference| > 4 se`` (a false
alarm probability of 6e-5 per comparison, ~1e-3 over the comparisons of a test). One-sample KS
statistics are compared with the asymptotic Kolmogorov quantile ``kstwobign.ppf(0.999) /
sqrt(n_eff)``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import comb

from analysis.posterior import (
    Posterior,
    batched_gradient,
    batched_log_likelihood,
    mask_profiles,
    profile_log_likelihood,
    sample_posterior,
)
from analysis.stationary import (
    active_count_law,
    effective_sample_size,
    inclusion_probabilities,
    mask_codes,
    mask_divergence,
    masks_from_codes,
)
from dilution import exact
from dilution.deep_r import inclusion_probability
from dilution.model import RBM

Z_FAIL = 4.0
KS_999 = float(stats.kstwobign.ppf(0.999))


def _missing_attrs(ds) -> list[str]:
    return [f"{n}: {k}" for n, var in ds.variables.items() for k in ("long_name", "units")
            if not isinstance(var.attrs.get(k), str) or not var.attrs.get(k)]


def _signs(shape, seed):
    return np.where(np.random.default_rng(seed).random(shape) < 0.5, -1, 1)


def _pooled_n_eff(values: np.ndarray, trace: np.ndarray) -> float:
    """Effective number of the ``values`` pooled from ``trace`` (replica, record, ...): their count
    scaled by the smallest ESS / records ratio of the per-pair traces (conservative)."""
    r, n = trace.shape[:2]
    flat = trace.reshape(r, n, -1)
    ratios = [effective_sample_size(flat[:, :, k]) / (r * n) for k in range(flat.shape[2])
              if flat[:, :, k].min() != flat[:, :, k].max()]
    return values.size * min(ratios)


def test_batched_likelihood_and_gradient_match_enumeration():
    rng = np.random.default_rng(0)
    data = (rng.random((12, 5)) < 0.4).astype(float)
    w = rng.normal(size=(4, 5, 3))
    b = rng.normal(size=(4, 5))
    c = rng.normal(size=(4, 3))
    ll, gw, gb, gc = batched_gradient(data, w, b, c)
    assert np.allclose(batched_log_likelihood(data, w, b, c), ll, atol=1e-12)
    for k in range(4):
        rbm = RBM(w[k], b[k], c[k])
        g = exact.gradient(rbm, data)
        assert ll[k] == pytest.approx(exact.log_likelihood(rbm, data).mean(), abs=1e-10)
        assert np.allclose(gw[k], g.weights, atol=1e-10)
        assert np.allclose(gb[k], g.visible_bias, atol=1e-10)
        assert np.allclose(gc[k], g.hidden_bias, atol=1e-10)


def test_log_density_is_the_documented_formula():
    rng = np.random.default_rng(1)
    data = (rng.random((6, 3)) < 0.5).astype(float)
    signs = _signs((3, 2), 2)
    post = Posterior("soft-deep-r", signs, alpha=0.3, temperature=0.2, data=data, theta_min=-0.4, bias_l2=0.05)
    theta = np.array([[0.5, -0.1], [-0.3, 1.2], [0.0, -0.4]])
    b, c = rng.normal(size=3), rng.normal(size=2)
    w = np.where(theta >= 0, signs * theta, 0.0)
    ll = exact.log_likelihood(RBM(w, b, c), data).mean()
    expected = (ll - 0.3 * (0.5 + 1.2 + 0.0) - 0.025 * (b @ b + c @ c)) / 0.2
    assert post.log_density(theta, b[None], c[None])[0] == pytest.approx(expected, rel=1e-12)
    below = theta.copy()
    below[0, 1] = -0.41
    assert post.log_density(below, b[None], c[None])[0] == -np.inf
    deep = Posterior("deep-r", signs, alpha=0.3, temperature=0.2, data=data, n_active=3, bias_l2=0.05)
    assert deep.log_density(theta, b[None], c[None])[0] == pytest.approx(expected, rel=1e-12)
    assert deep.log_density(np.where(theta >= 0, theta, np.nan), b[None], c[None])[0] == pytest.approx(expected)
    assert deep.log_density(np.abs(theta), b[None], c[None])[0] == -np.inf  # 6 active, not K = 3


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="soft", theta_min=-1.0), "kind"),
    (dict(kind="soft-deep-r"), "theta_min"),
    (dict(kind="soft-deep-r", theta_min=-1.0, n_active=2), "n_active"),
    (dict(kind="deep-r"), "n_active"),
    (dict(kind="deep-r", n_active=9), "n_active"),
    (dict(kind="deep-r", n_active=2, theta_min=-1.0), "theta_min"),
    (dict(kind="deep-r", n_active=2, data=np.ones((3, 4))), "bias_l2"),
    (dict(kind="deep-r", n_active=2, data=np.full((3, 4), 0.5)), "data"),
])
def test_posterior_refuses_bad_parameters_by_name(kwargs, message):
    if "data" in kwargs and message == "bias_l2":
        kwargs["bias_l2"] = 0.0
    with pytest.raises(ValueError, match=message):
        Posterior(signs=_signs((4, 2), 0), alpha=1.0, temperature=1.0, **kwargs)


def test_soft_deep_r_prior_limit_matches_closed_forms():
    """No data: independent pairs active with p_on, |M| ~ Binomial(D, p_on), active theta ~
    Exp(alpha/T), dormant theta ~ U[theta_min, 0) (digest B.7)."""
    alpha, temperature, theta_min = 0.2, 0.1, -1.0
    post = Posterior("soft-deep-r", _signs((4, 2), 3), alpha, temperature, theta_min=theta_min)
    draws = sample_posterior(post, n_chains=32, n_draws=500, thin=2, n_warmup=200, seed=0)
    p_on = inclusion_probability(alpha, temperature, theta_min)
    assert p_on == pytest.approx(1 / 3)
    incl = inclusion_probabilities(draws.masks, reference=np.full((4, 2), p_on))
    assert np.abs(incl["z_score"].values).max() < Z_FAIL
    law = active_count_law(draws.masks, reference=stats.binom.pmf(np.arange(9), 8, p_on))
    # Per count k the tolerance is 4 binomial standard errors at the reference probability.
    se_ref = np.sqrt(law["reference"] * (1 - law["reference"]) / float(law["ess"]))
    assert np.all(np.abs(law["probability"] - law["reference"]) <= Z_FAIL * se_ref)
    theta = draws.theta
    active, dormant = theta[theta >= 0], theta[theta < 0]
    n_eff = _pooled_n_eff(active, theta)
    assert stats.ks_1samp(active, stats.expon(scale=temperature / alpha).cdf).statistic < KS_999 / np.sqrt(n_eff)
    n_eff = _pooled_n_eff(dormant, theta)
    assert stats.ks_1samp(dormant, stats.uniform(theta_min, -theta_min).cdf).statistic < KS_999 / np.sqrt(n_eff)
    assert draws.diagnostics["rhat_inclusion"].max() < 1.01
    assert not _missing_attrs(draws.diagnostics)


def test_deep_r_prior_limit_is_uniform_over_size_k_masks():
    k, alpha, temperature = 3, 0.5, 0.2
    post = Posterior("deep-r", _signs((4, 2), 4), alpha, temperature, n_active=k)
    draws = sample_posterior(post, n_chains=32, n_draws=400, n_warmup=100, seed=1)
    assert np.all(draws.masks.sum(axis=(2, 3)) == k)
    assert np.all(np.isnan(draws.theta[~draws.masks]))
    uniform = np.zeros(2**8)
    codes = np.arange(2**8)
    uniform[masks_from_codes(codes, (4, 2)).sum(axis=(1, 2)) == k] = 1 / comb(8, k)
    div = mask_divergence(draws.masks, uniform, n_active=k, level=0.999, n_boot=1000, seed=0)
    assert div.sizes["mask"] == comb(8, k, exact=True)
    for name in ("total_variation", "kl_estimate_reference", "kl_reference_estimate"):
        assert float(div[name]) <= float(div[f"{name}_floor_upper"]), name
    active = draws.theta[draws.masks]
    n_eff = _pooled_n_eff(active, np.nan_to_num(draws.theta, nan=-1.0))
    assert stats.ks_1samp(active, stats.expon(scale=temperature / alpha).cdf).statistic < KS_999 / np.sqrt(n_eff)
    assert set(np.unique(mask_codes(draws.masks))) <= set(codes[uniform > 0])


def _one_connection_log_density(theta, data, sign, b, c, alpha, temperature):
    """Unnormalised log target of a 1 x 1 RBM with fixed biases, in closed form (vectorised in theta):
    log p(v) = b v + softplus(c + w v) - log sum_v' exp(b v' + softplus(c + w v'))."""
    t = np.maximum(np.asarray(theta, dtype=float), 0.0)
    w = sign * t
    log_z = np.logaddexp(np.logaddexp(0, c), b + np.logaddexp(0, c + w))
    mean_ll = np.mean([b * v + np.logaddexp(0, c + w * v) for v in data[:, 0]], axis=0) - log_z
    return (mean_ll - alpha * t) / temperature


def test_one_connection_matches_quadrature():
    data = np.array([[1.0], [1.0], [0.0]])
    alpha, temperature, theta_min, b, c = 1 / 3, 1 / 3, -0.5, 0.3, -0.2
    post = Posterior("soft-deep-r", np.array([[-1]]), alpha, temperature, data=data, theta_min=theta_min,
                     visible_bias=np.array([b]), hidden_bias=np.array([c]))
    shift = _one_connection_log_density(0.0, data, -1, b, c, alpha, temperature)

    def f(t):
        return np.exp(_one_connection_log_density(t, data, -1, b, c, alpha, temperature) - shift)

    z_dormant = integrate.quad(f, theta_min, 0.0)[0]
    z_active = integrate.quad(f, 0.0, np.inf)[0]
    p_active = z_active / (z_dormant + z_active)
    mean_active = integrate.quad(lambda t: t * f(t), 0.0, np.inf)[0] / z_active

    draws = sample_posterior(post, n_chains=16, n_draws=500, n_warmup=100, seed=2)
    on = draws.masks[:, :, 0, 0].astype(float)
    mean, se = on.mean(), on.std() / np.sqrt(effective_sample_size(on))
    assert abs(mean - p_active) < Z_FAIL * se
    theta_plus = np.maximum(draws.theta[:, :, 0, 0], 0.0)
    se = theta_plus.std() / np.sqrt(effective_sample_size(theta_plus))
    assert abs(theta_plus.mean() - p_active * mean_active) < Z_FAIL * se
    grid = np.linspace(theta_min, 12.0, 40001)
    cdf = integrate.cumulative_trapezoid(f(grid), grid, initial=0.0) / (z_dormant + z_active)
    theta = draws.theta[:, :, 0, 0]
    ks = stats.ks_1samp(theta.ravel(), lambda x: np.interp(x, grid, cdf)).statistic
    assert ks < KS_999 / np.sqrt(effective_sample_size(theta))


def test_agrees_with_emcee():
    """soft-DEEP R on a 3 x 1 model with sampled biases (6 dims) against emcee's ensemble sampler."""
    emcee = pytest.importorskip("emcee")
    data = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 1, 1], [0, 0, 1], [1, 1, 0]], dtype=float)
    post = Posterior("soft-deep-r", np.array([[1], [1], [-1]]), alpha=0.25, temperature=1 / 6, data=data,
                     theta_min=-0.3, bias_l2=0.05)
    draws = sample_posterior(post, n_chains=24, n_draws=600, n_warmup=200, seed=3)

    def log_prob(x):
        return post.log_density(x[:, :3].reshape(-1, 3, 1), x[:, 3:6], x[:, 6:])

    n_walkers = 32
    rng = np.random.default_rng(4)
    start = np.concatenate([rng.uniform(0.0, 0.5, (n_walkers, 3)), 0.3 * rng.standard_normal((n_walkers, 4))], axis=1)
    sampler = emcee.EnsembleSampler(n_walkers, 7, log_prob, vectorize=True)
    sampler.random_state = np.random.RandomState(5).get_state()
    sampler.run_mcmc(start, 3500)
    chain = np.swapaxes(sampler.get_chain(discard=1000), 0, 1)  # (walker, step, dim)

    def compare(ours: np.ndarray, theirs: np.ndarray):
        se = np.hypot(ours.std() / np.sqrt(effective_sample_size(ours)),
                      theirs.std() / np.sqrt(effective_sample_size(theirs)))
        assert abs(ours.mean() - theirs.mean()) < Z_FAIL * se, (ours.mean(), theirs.mean(), se)

    for i in range(3):
        compare(draws.masks[:, :, i, 0].astype(float), (chain[:, :, i] >= 0).astype(float))
        compare(np.maximum(draws.theta[:, :, i, 0], 0), np.maximum(chain[:, :, i], 0))
    compare(draws.hidden_bias[:, :, 0], chain[:, :, 6])
    compare(draws.visible_bias[:, :, 0], chain[:, :, 3])


def test_profile_of_the_empty_mask_is_the_independent_model():
    rng = np.random.default_rng(6)
    data = (rng.random((20, 4)) < [0.2, 0.5, 0.7, 0.9]).astype(float)
    data[:2] = [[0, 0, 0, 0], [1, 1, 1, 1]]  # every pixel takes both values: the optimum is finite
    p = data.mean(axis=0)
    independent = float(np.sum(p * np.log(p) + (1 - p) * np.log(1 - p)))
    fit = profile_log_likelihood(data, np.zeros((4, 2), bool), seed=0)
    assert fit.log_likelihood == pytest.approx(independent, abs=1e-6)
    assert np.all(fit.weights == 0)


def test_mask_profiles_are_nested_sign_constrained_and_name_the_oracle():
    rng = np.random.default_rng(7)
    data = (rng.random((16, 3)) < 0.5).astype(float)
    data[:8, 1] = data[:8, 0]  # correlated pixels, so connections matter
    signs = _signs((3, 1), 8)
    free = mask_profiles(data, (3, 1), n_restarts=2, seed=0)
    signed = mask_profiles(data, (3, 1), signs=signs, n_restarts=2, seed=0)
    assert not _missing_attrs(free)
    values, codes = free["profile_log_likelihood"].values, free["mask"].values
    # Nested masks: more connections (unconstrained) cannot fit worse; tolerance is the optimiser's.
    for a, va in zip(codes, values):
        for b_, vb in zip(codes, values):
            if a & b_ == a:
                assert va <= vb + 1e-6
    assert np.all(signed["profile_log_likelihood"].values <= values + 1e-6)
    for k in free["size"].values:
        of_size = free["n_active"].values == k
        best = codes[of_size][np.argmax(values[of_size])]
        assert int(free["oracle_mask"].sel(size=k)) == best
    sliced = mask_profiles(data, (3, 1), sizes=[1], n_restarts=2, seed=0)
    assert np.array_equal(sliced["mask"].values, [1, 2, 4])
    assert np.allclose(sliced["profile_log_likelihood"].values,
                       free["profile_log_likelihood"].sel(mask=[1, 2, 4]).values, atol=1e-9)
    # The single-connection profile matches the general-purpose fit of the 1-connection RBM.
    fit = profile_log_likelihood(data, np.array([[True], [False], [False]]), seed=1)
    rbm = RBM(fit.weights, fit.visible_bias, fit.hidden_bias)
    assert exact.log_likelihood(rbm, data).mean() == pytest.approx(fit.log_likelihood, abs=1e-10)


def test_deep_r_posterior_is_soft_deep_r_conditioned_on_the_count():
    """With data, pi_K(M) ∝ J(M) is soft-DEEP R's mask law restricted to |M| = K (digest B.7):
    the swap-only DEEP R chain and the soft chain's size-K slice agree within the two-sample noise floor."""
    data = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 1, 1], [0, 0, 1], [1, 1, 0]], dtype=float)
    signs = np.array([[1, -1], [1, 1], [-1, 1]])
    common = dict(alpha=0.5, temperature=1 / 6, data=data, bias_l2=0.05)
    soft = sample_posterior(Posterior("soft-deep-r", signs, theta_min=-0.2, **common),
                            n_chains=16, n_draws=500, n_warmup=150, seed=6)
    deep = sample_posterior(Posterior("deep-r", signs, n_active=3, **common), n_chains=16, n_draws=300, n_warmup=150, seed=7)
    assert (soft.masks.sum(axis=(2, 3)) == 3).mean() > 0.1
    div = mask_divergence(deep.masks, soft.masks, n_active=3, level=0.999, n_boot=500, seed=0)
    assert float(div["total_variation"]) <= float(div["total_variation_floor_upper"])
    on_k = soft.masks.sum(axis=(2, 3)) == 3
    ll_soft = soft.log_likelihood[on_k]
    se = np.hypot(deep.log_likelihood.std() / np.sqrt(effective_sample_size(deep.log_likelihood)),
                  ll_soft.std() / np.sqrt(_pooled_n_eff(ll_soft, soft.masks.astype(float))))
    assert abs(deep.log_likelihood.mean() - ll_soft.mean()) < Z_FAIL * se


def test_deep_r_single_connection_masks_match_quadrature():
    """K = 1 on a 3 x 1 model with fixed biases: pi_K(M_k) ∝ J_k = ∫_0^inf exp((lbar(s_k theta e_k) - alpha theta)/T) dtheta,
    a 1-D integral per mask, so the exact mask law and each conditional weight law are known."""
    data = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 1, 1], [0, 0, 1], [1, 1, 0]], dtype=float)
    signs = np.array([[1], [-1], [1]])
    b, c = np.array([0.2, -0.1, 0.3]), np.array([-0.5])
    alpha, temperature = 0.3, 1 / 6
    post = Posterior("deep-r", signs, alpha, temperature, data=data, n_active=1, visible_bias=b, hidden_bias=c)

    def log_f(theta, k):
        w = np.zeros((np.size(theta), 3, 1))
        w[:, k, 0] = signs[k, 0] * np.atleast_1d(theta)
        return (batched_log_likelihood(data, w, b, c) - alpha * np.atleast_1d(theta)) / temperature

    shift = log_f(0.0, 0)[0]
    j = np.array([integrate.quad(lambda t: np.exp(log_f(t, k)[0] - shift), 0, np.inf)[0] for k in range(3)])
    exact_law = np.zeros(8)
    exact_law[[1, 2, 4]] = j / j.sum()  # mask codes of pairs 0, 1, 2
    draws = sample_posterior(post, n_chains=16, n_draws=600, n_warmup=150, seed=8)
    div = mask_divergence(draws.masks, exact_law, n_active=1, level=0.999, n_boot=500, seed=0)
    assert float(div["total_variation"]) <= float(div["total_variation_floor_upper"])
    grid = np.linspace(0, 10 * temperature / alpha, 20001)
    for k in range(3):
        theta_k = draws.theta[:, :, k, 0]
        sample = theta_k[draws.masks[:, :, k, 0]]
        density = np.exp(log_f(grid, k) - shift)
        cdf = integrate.cumulative_trapezoid(density, grid, initial=0.0) / j[k]
        n_eff = _pooled_n_eff(sample, np.nan_to_num(draws.theta, nan=-1.0)[:, :, k:k + 1])
        ks = stats.ks_1samp(sample, lambda x: np.interp(x, grid, cdf, right=1.0)).statistic
        assert ks < KS_999 / np.sqrt(n_eff), k


def test_draws_dataset_is_labelled_and_round_trips(tmp_path):
    from dilution import io

    data = np.array([[1, 0], [0, 1], [1, 1]], dtype=float)
    post = Posterior("deep-r", np.array([[1], [-1]]), 0.5, 1 / 3, data=data, n_active=1)
    draws = sample_posterior(post, n_chains=4, n_draws=20, n_warmup=20, seed=9)
    ds = draws.to_dataset()
    assert not _missing_attrs(ds)
    assert ds["masks"].dims == ("replica", "record", "visible", "hidden")
    io.save(ds, tmp_path / "reference.nc")
    back = io.load_dataset(tmp_path / "reference.nc")
    assert np.array_equal(back["masks"].values.astype(bool), draws.masks)
    assert np.array_equal(back["theta"].values, draws.theta, equal_nan=True)
    assert back.attrs["kind"] == "deep-r"


def _converged(draws) -> dict[str, float]:
    g = draws.diagnostics
    return {name: float(g[name].max()) for name in ("rhat_log_likelihood", "rhat_n_active", "rhat_inclusion", "rhat_weight")}


def test_reference_converges_on_the_4x2_bars_and_stripes_model():
    """Digest C.4: >= 8 chains with R-hat < 1.01 (every inclusion indicator and weight) on the 4 x 2 model."""
    from dilution.data import bars_stripes

    data = bars_stripes.patterns(2).astype(float)
    temperature = 1 / len(data)
    post = Posterior("soft-deep-r", _signs((4, 2), 10), alpha=2 * temperature, temperature=temperature, data=data,
                     theta_min=-0.5)
    draws = sample_posterior(post, n_chains=16, n_draws=4000, n_warmup=1000, seed=10)
    assert max(_converged(draws).values()) < 1.01, _converged(draws)


@pytest.mark.slow
@pytest.mark.parametrize("shape, kind", [((6, 3), "deep-r"), ((9, 3), "soft-deep-r")])
def test_reference_converges_on_larger_models(shape, kind):
    """The 6 x 3 model (K = 4) and bars-and-stripes 3 x 3 with 3 hidden units, as the 4 x 2 test."""
    from dilution.data import bars_stripes

    if shape == (9, 3):
        data = bars_stripes.patterns(3).astype(float)
    else:
        data = (np.random.default_rng(11).random((12, 6)) < 0.5).astype(float)
        data[:, 1] = data[:, 0]
    temperature = 1 / len(data)
    extra = dict(n_active=4) if kind == "deep-r" else dict(theta_min=-0.5)
    post = Posterior(kind, _signs(shape, 12), alpha=2 * temperature, temperature=temperature, data=data, **extra)
    draws = sample_posterior(post, n_chains=16, n_draws=12000, n_warmup=2000, seed=11)
    assert max(_converged(draws).values()) < 1.01, _converged(draws)
