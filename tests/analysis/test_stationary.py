"""Stationary-law comparisons against exact answers: samples from known laws, closed forms, slow references.

Tolerances. Draws here are independent (or a Markov chain with a known law), so a mean's
standard error is ``sd / sqrt(n)`` up to the ESS estimate; a comparison fails at 4 standard
errors (false alarm 6e-5 each). Divergences are compared with their own noise floor (the
``level`` quantile of the divergence of ESS-sized resamples of the reference).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis.stationary import (
    active_count_law,
    density_continuity,
    effective_sample_size,
    expected_log_likelihood,
    first_order_optimality,
    flip_statistics,
    inclusion_probabilities,
    mask_codes,
    mask_divergence,
    masks_from_codes,
    mixing,
    split_rhat,
    stationarity,
    weight_laws,
)

Z_FAIL = 4.0


def _missing_attrs(ds) -> list[str]:
    return [f"{n}: {k}" for n, var in ds.variables.items() for k in ("long_name", "units")
            if not isinstance(var.attrs.get(k), str) or not var.attrs.get(k)]


def _bernoulli_masks(p, n_replicas, n_records, seed):
    p = np.asarray(p)
    return np.random.default_rng(seed).random((n_replicas, n_records, *p.shape)) < p


def _ar1(phi, shape, seed):
    rng = np.random.default_rng(seed)
    x = np.empty(shape)
    x[:, 0] = rng.standard_normal(shape[0])
    noise = rng.standard_normal(shape) * np.sqrt(1 - phi**2)
    for t in range(1, shape[1]):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


def test_mask_codes_round_trip_and_bit_order():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 5, 4, 2)) < 0.5
    codes = mask_codes(masks)
    assert codes.shape == (3, 5)
    assert np.array_equal(masks_from_codes(codes, (4, 2)), masks)
    one = np.zeros((4, 2), bool)
    one[1, 0] = True  # row-major pair k = 1 * 2 + 0 = 2
    assert mask_codes(one) == 4


def test_split_rhat_matches_the_formula_and_flags_disagreeing_chains():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 10))
    halves = np.concatenate([x[:, :5], x[:, 5:]])
    n = 5
    w = np.mean([np.var(c, ddof=1) for c in halves])
    b = n * np.var([c.mean() for c in halves], ddof=1)
    assert split_rhat(x) == pytest.approx(np.sqrt(((n - 1) / n * w + b / n) / w), rel=1e-12)
    assert split_rhat(rng.standard_normal((8, 4000))) < 1.01
    shifted = rng.standard_normal((8, 1000)) + np.arange(8)[:, None]
    assert split_rhat(shifted) > 1.5
    assert split_rhat(np.ones((3, 10))) == 1.0


def test_effective_sample_size_of_ar1():
    """tau = (1 + phi) / (1 - phi) = 3 for phi = 0.5; the relative error of tau is
    sqrt(2 (2M + 1) / n) with window M ~ 5 tau (Madras & Sokal), ~0.012 here."""
    x = _ar1(0.5, (8, 20000), seed=2)
    ess = effective_sample_size(x)
    rel = np.sqrt(2 * (2 * 15 + 1) / x.size)
    assert ess == pytest.approx(x.size / 3, rel=Z_FAIL * rel)


def test_inclusion_probabilities_cover_the_truth():
    p = np.array([[0.1, 0.5], [0.9, 0.3], [0.0, 1.0]])
    masks = _bernoulli_masks(p, 8, 500, seed=3)
    ds = inclusion_probabilities(masks, reference=p)
    assert not _missing_attrs(ds)
    assert np.abs(ds["z_score"].values).max() < Z_FAIL
    assert np.all(ds["ess"].values > 0.8 * 4000)  # independent draws: ESS close to n
    assert float(ds["standard_error"].sel(visible=2, hidden=0)) == 0.0
    off = inclusion_probabilities(masks, reference=np.clip(p + 0.1, 0, 1))
    assert np.abs(off["z_score"].values[:2]).min() > Z_FAIL


def test_active_count_law_is_binomial_for_independent_pairs():
    masks = _bernoulli_masks(np.full((3, 2), 0.4), 8, 500, seed=4)
    ref = stats.binom.pmf(np.arange(7), 6, 0.4)
    ds = active_count_law(masks, reference=ref)
    assert not _missing_attrs(ds)
    se_ref = np.sqrt(ref * (1 - ref) / 4000)
    assert np.all(np.abs(ds["probability"].values - ref) < Z_FAIL * se_ref)
    assert abs(float(ds["mean_active"]) - 2.4) < Z_FAIL * np.sqrt(6 * 0.24 / 4000)
    # TV of the empirical law: E|p_k - ref_k| <= sqrt(ref_k (1 - ref_k) / n) per cell.
    assert float(ds["total_variation"]) < Z_FAIL * 0.5 * se_ref.sum()
    fixed = np.zeros((2, 10, 3, 2), bool)
    fixed[..., 0] = True
    law = active_count_law(fixed)
    assert law["probability"].sel(n_active=3) == 1.0 and float(law["standard_error"].sum()) == 0.0


def test_mask_divergence_equals_the_closed_form_for_exact_frequencies():
    """A sample whose frequencies are exactly p (pseudo-count 0) gives KL(q||p), KL(p||q), TV in closed form."""
    q = np.array([0.1, 0.2, 0.3, 0.4])  # 2 pairs: 4 masks
    p = np.array([0.25, 0.25, 0.25, 0.25])
    codes = np.repeat(np.arange(4), 50)  # 200 draws, 50 of each
    rng = np.random.default_rng(5)
    masks = masks_from_codes(rng.permutation(codes).reshape(4, 50), (2, 1))
    ds = mask_divergence(masks, q, pseudo_count=0.0, n_boot=20)
    assert not _missing_attrs(ds)
    assert float(ds["kl_reference_estimate"]) == pytest.approx(np.sum(q * np.log(q / p)), rel=1e-12)
    assert float(ds["kl_estimate_reference"]) == pytest.approx(np.sum(p * np.log(p / q)), rel=1e-12)
    assert float(ds["total_variation"]) == pytest.approx(0.5 * np.abs(p - q).sum(), rel=1e-12)


def test_mask_divergence_of_a_law_from_itself_is_at_the_noise_floor():
    rng = np.random.default_rng(6)
    q = rng.dirichlet(np.ones(2**4))
    codes = rng.choice(2**4, size=(8, 400), p=q)
    masks = masks_from_codes(codes, (2, 2))
    ds = mask_divergence(masks, q, level=0.999, n_boot=500, seed=1)
    for name in ("kl_reference_estimate", "kl_estimate_reference", "total_variation"):
        assert float(ds[name]) <= float(ds[f"{name}_floor_upper"]), name
        assert float(ds[f"{name}_floor"]) > 0
    # Two samples of the same law, and a clearly different law.
    other = masks_from_codes(rng.choice(2**4, size=(8, 400), p=q), (2, 2))
    two = mask_divergence(masks, other, level=0.999, n_boot=500, seed=2)
    assert float(two["total_variation"]) <= float(two["total_variation_floor_upper"])
    far = mask_divergence(masks, np.full(16, 1 / 16), level=0.999, n_boot=500, seed=3)
    assert float(far["total_variation"]) > float(far["total_variation_floor_upper"])


def test_mask_divergence_restricts_to_the_size_k_slice():
    rng = np.random.default_rng(7)
    masks = rng.random((4, 300, 2, 2)) < 0.5
    sizes = masks.sum(axis=(2, 3))
    ds = mask_divergence(masks, np.full(16, 1 / 16), n_active=2, n_boot=50)
    assert ds.sizes["mask"] == 6
    assert float(ds["probability"].sum()) == pytest.approx(1.0)
    assert np.all(masks_from_codes(ds["mask"].values, (2, 2)).sum(axis=(1, 2)) == 2)
    assert (sizes == 2).any()
    with pytest.raises(ValueError, match="reference"):
        mask_divergence(masks, np.ones(5), n_boot=50)


def test_weight_laws_shift_and_same_law():
    rng = np.random.default_rng(8)
    masks = np.ones((4, 300, 2, 1), bool)
    w = rng.exponential(0.5, size=masks.shape)
    ref = rng.exponential(0.5, size=masks.shape)
    same = weight_laws(w, masks, ref, masks)
    assert not _missing_attrs(same)
    assert np.all(same["ks_statistic"].values < same["ks_critical"].values)
    # Wasserstein-1 between a sample and the same sample shifted by delta is exactly delta.
    shifted = weight_laws(w + 0.3, masks, w, masks)
    assert np.allclose(shifted["wasserstein"].values, 0.3, atol=1e-12)
    assert np.all(shifted["ks_statistic"].values > shifted["ks_critical"].values)
    # Only active records count: dormant values are ignored.
    partial = masks.copy()
    partial[:, ::2] = False
    junk = np.where(partial, w, 1e6)
    assert float(weight_laws(junk, partial, w, masks)["wasserstein"].max()) < 1.0


def test_density_continuity_detects_a_jump_at_zero():
    rng = np.random.default_rng(9)
    smooth = rng.uniform(-1, 1, size=(8, 400, 2, 2))
    ds = density_continuity(smooth, delta=0.2)
    assert not _missing_attrs(ds)
    assert float(ds["density_above"]) == pytest.approx(0.5, abs=Z_FAIL * np.sqrt(0.1 / (0.04 * 12800)))
    assert abs(float(ds["z_score"])) < Z_FAIL
    # Density 1/3 below 0 and 2/3 above on [-1, 1): the jump is 1/3 per unit theta.
    jump = np.where(rng.random(smooth.shape) < 1 / 3, -rng.random(smooth.shape), rng.random(smooth.shape))
    ds = density_continuity(jump, delta=0.2, level=0.9999)
    assert float(ds["lower"]) < 1 / 3 < float(ds["upper"])
    assert float(ds["z_score"]) > Z_FAIL


def test_expected_log_likelihood_interval_and_difference():
    rng = np.random.default_rng(10)
    x = -2.0 + 0.3 * rng.standard_normal((8, 500))
    ds = expected_log_likelihood(x, reference=-2.0, level=0.9999)  # z = 3.9
    assert not _missing_attrs(ds)
    assert float(ds["lower"]) < -2.0 < float(ds["upper"])
    assert float(ds["standard_error"]) == pytest.approx(0.3 / np.sqrt(4000), rel=0.1)
    other = -1.9 + 0.3 * rng.standard_normal((8, 500))
    ds = expected_log_likelihood(x, reference=other, level=0.9999)
    assert float(ds["difference_upper"]) < 0
    assert float(ds["difference_lower"]) < -0.1 < float(ds["difference_upper"])


def test_flip_statistics_on_a_constructed_sequence():
    on = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1], bool)  # births at 1, 4, 7; lifetimes 2, 1, censored 3
    masks = on[None, :, None, None]
    ds = flip_statistics(masks, steps_per_record=2)
    assert not _missing_attrs(ds)
    assert int(ds["n_births"]) == 3 and int(ds["n_censored"]) == 1
    assert float(ds["birth_rate_total"]) == pytest.approx(3 / (9 * 2))
    assert float(ds["death_rate_total"]) == pytest.approx(2 / (9 * 2))
    # Kaplan-Meier: at 1 record 3 at risk, 1 dies -> 2/3; at 2 records 2 at risk, 1 dies -> 1/3.
    survival = ds["survival"].values
    assert survival[0] == pytest.approx(2 / 3) and survival[1] == pytest.approx(1 / 3)
    assert float(ds["one_step_survival"]) == pytest.approx(2 / 3)


def test_flip_statistics_of_a_two_state_chain():
    """Birth probability a, death probability d per step: the birth rate is pi_off a with
    pi_off = d / (a + d), lifetimes are Geometric(d) (survival (1 - d)^L)."""
    a, d, n = 0.1, 0.3, 4000
    rng = np.random.default_rng(11)
    u = rng.random((8, n))
    x = np.empty((8, n), bool)
    x[:, 0] = rng.random(8) < a / (a + d)
    for t in range(1, n):
        x[:, t] = np.where(x[:, t - 1], u[:, t] >= d, u[:, t] < a)
    ds = flip_statistics(x[:, :, None, None])
    rate = d / (a + d) * a
    assert float(ds["birth_rate_total"]) == pytest.approx(rate, abs=Z_FAIL * np.sqrt(rate / (8 * n)) * 2)
    n_b = int(ds["n_births"])
    assert float(ds["one_step_survival"]) == pytest.approx(1 - d, abs=Z_FAIL * np.sqrt(d * (1 - d) / n_b))
    assert ds["survival"].values[2] == pytest.approx((1 - d) ** 3, abs=Z_FAIL * np.sqrt(0.343 * 0.657 / n_b))


def test_mixing_of_independent_and_sticky_chains():
    rng = np.random.default_rng(12)
    masks = rng.random((8, 2000, 2, 2)) < 0.5
    ds = mixing(masks, log_likelihood=rng.standard_normal((8, 2000)))
    assert not _missing_attrs(ds)
    assert np.all(np.abs(ds["tau"].values - 1) < 0.2)
    assert np.all(ds["rhat"].values < 1.01)
    # Replicas stuck in different masks: R-hat of the indicators is infinite.
    stuck = np.zeros((4, 100, 1, 2), bool)
    stuck[:2, :, 0, 0] = True
    ds = mixing(stuck)
    assert np.isinf(float(ds["rhat_inclusion"].sel(visible=0, hidden=0)))


def test_stationarity_halves():
    rng = np.random.default_rng(13)
    steady = rng.random((8, 1000, 2, 2)) < 0.3
    ll = rng.standard_normal((8, 1000))
    ds = stationarity(steady, ll, level=0.999, n_boot=300)
    assert not _missing_attrs(ds)
    assert float(ds["max_abs_z_score"]) < Z_FAIL + 0.5  # max of 4 |z|: 4.5 keeps the false alarm < 1e-4
    assert float(ds["mask_total_variation"]) <= float(ds["mask_total_variation_floor_upper"])
    assert float(ds["log_likelihood_difference_lower"]) < 0 < float(ds["log_likelihood_difference_upper"])
    p = np.where(np.arange(1000) < 500, 0.2, 0.5)[None, :, None, None]
    drifting = rng.random((8, 1000, 2, 2)) < p
    assert float(stationarity(drifting, n_boot=50)["max_abs_z_score"]) > 10


@pytest.mark.parametrize("call, message", [
    (lambda: inclusion_probabilities(np.zeros((2, 3, 2, 2), bool)), "at least 4 records"),
    (lambda: inclusion_probabilities(np.zeros((2, 8, 2), bool)), "replica, record, visible, hidden"),
    (lambda: inclusion_probabilities(np.zeros((2, 8, 2, 2), bool), level=1.5), "level"),
    (lambda: density_continuity(np.zeros((2, 8, 2, 2)), delta=0.0), "delta"),
    (lambda: mask_divergence(np.zeros((2, 8, 2, 2), bool), np.ones(16), pseudo_count=-1.0), "pseudo_count"),
    (lambda: flip_statistics(np.zeros((2, 8, 2, 2), bool), steps_per_record=0), "steps_per_record"),
])
def test_bad_input_is_refused_by_name(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_first_order_optimality_counts_by_hand():
    masks = np.array([[[True, False], [False, False]]])
    g = np.array([[[5.0, 0.3], [-0.4, 0.1]]])
    signs = np.array([[1, 1], [-1, 1]])
    deep = first_order_optimality(masks, g, signs=signs, alpha=0.2)
    assert not _missing_attrs(deep)
    # Absent pairs: s g - alpha = 0.1, 0.2, -0.1 -> two improving; the active pair never counts.
    assert deep["improving"].values.tolist() == [[[0, 1], [1, 0]]]
    assert int(deep["n_improving"][0]) == 2 and float(deep["fraction_improving"][0]) == pytest.approx(2 / 3)
    ncg = first_order_optimality(masks, g, weights=np.array([[[1.0, -1.0], [-1.0, 0.0]]]))
    assert ncg["improving"].values.tolist() == [[[0, 0], [1, 0]]]
    with pytest.raises(ValueError, match="not both"):
        first_order_optimality(masks, g, signs=signs, alpha=0.2, weights=g)
