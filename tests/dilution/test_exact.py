"""Exact enumeration against brute force over both layers, and the exact gradient against
finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from dilution import RBM, exact
from dilution.exact import BLOCK_BITS, _enumeration_view, _log_partition_kernel


def brute_log_z(rbm: RBM) -> float:
    v = exact.all_states(rbm.n_visible)
    h = exact.all_states(rbm.n_hidden)
    w = rbm.weights.astype(np.float64)
    neg_energy = (v @ rbm.visible_bias)[:, None] + (h @ rbm.hidden_bias)[None, :] + v @ w @ h.T
    return float(logsumexp(neg_energy))


CASES = [
    # (n_visible, n_hidden, connectivity, weight_scale, bias_scale, dtype)
    (6, 4, 1.0, 1.0, 1.0, np.float64),
    (4, 7, 0.5, 2.0, 1.0, np.float64),
    (9, 9, 0.3, 3.0, 0.5, np.float64),
    (3, 14, 0.7, 1.0, 1.0, np.float64),  # enumerates the visible layer
    (14, 3, 0.7, 1.0, 1.0, np.float32),
    (2, 15, 1.0, 0.5, 2.0, np.float64),  # 2**15 hidden states spans several Gray-code blocks
]


@pytest.mark.parametrize("case", CASES)
def test_log_partition_matches_brute_force(case):
    n_v, n_h, conn, ws, bs, dtype = case
    rbm = RBM.random(n_v, n_h, connectivity=conn, weight_scale=ws, bias_scale=bs, dtype=dtype, seed=n_v * 31 + n_h)
    ref = brute_log_z(rbm)
    assert exact.log_partition(rbm) == pytest.approx(ref, rel=1e-10, abs=1e-10)


def test_block_structure_crosses_block_boundaries():
    # more enumerated units than BLOCK_BITS, so several blocks with different high bits are summed
    n_e = BLOCK_BITS + 3
    rbm = RBM.random(n_e, 2, weight_scale=1.0, bias_scale=1.0, seed=3)
    assert exact.log_partition(rbm) == pytest.approx(brute_log_z(rbm), rel=1e-10)


def test_product_form_agrees_with_softplus_form_on_a_large_layer():
    rbm = RBM.random(784, 10, weight_scale=0.3, bias_scale=2.0, seed=1)
    w_e, e, o, _ = _enumeration_view(rbm, 30)
    assert exact.log_partition(rbm) == pytest.approx(_log_partition_kernel(w_e, e, o, BLOCK_BITS), rel=1e-12)


def test_huge_fields_fall_back_to_softplus_and_stay_finite():
    # fields of order 1e3 overflow exp(); the product form must not be used
    rbm = RBM(np.full((3, 2), 400.0), np.full(3, 300.0), np.zeros(2))
    assert np.isfinite(exact.log_partition(rbm))
    assert exact.log_partition(rbm) == pytest.approx(brute_log_z(rbm), rel=1e-12)


def test_log_likelihood_normalises():
    rbm = RBM.random(8, 5, connectivity=0.4, weight_scale=2.0, bias_scale=1.0, seed=2)
    logp = exact.log_prob_visible(rbm)
    assert logsumexp(logp) == pytest.approx(0.0, abs=1e-12)
    v = exact.all_states(8)[[3, 100, 255]]
    assert np.allclose(exact.log_likelihood(rbm, v), logp[[3, 100, 255]], rtol=0, atol=1e-12)


def test_too_large_layer_suggests_ais():
    rbm = RBM.random(40, 40, seed=0)
    with pytest.raises(ValueError, match="ais"):
        exact.log_partition(rbm)


def test_log_likelihood_rejects_non_binary_data():
    rbm = RBM.random(4, 3, seed=0)
    with pytest.raises(ValueError, match="binary"):
        exact.log_likelihood(rbm, np.full((2, 4), 0.5))
    with pytest.raises(ValueError, match=r"shape \(n_samples, 4\)"):
        exact.log_likelihood(rbm, np.zeros((2, 5)))


def _mean_ll(w, a, b, data):
    return exact.log_likelihood(RBM(w, a, b), data).mean()


@pytest.mark.parametrize("shape", [(5, 3), (3, 6)])
def test_gradient_matches_finite_differences_including_masked_pairs(shape):
    n_v, n_h = shape
    rbm = RBM.random(n_v, n_h, connectivity=0.5, weight_scale=1.0, bias_scale=0.5, seed=7)
    rng = np.random.default_rng(1)
    data = (rng.random((40, n_v)) < 0.4).astype(float)
    grad = exact.gradient(rbm, data)
    w, a, b = rbm.weights.copy(), rbm.visible_bias.copy(), rbm.hidden_bias.copy()
    eps = 1e-5
    # masked pairs: the derivative is that of the fully connected model at W_ij = 0
    for arr, g in ((w, grad.weights), (a, grad.visible_bias), (b, grad.hidden_bias)):
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = _mean_ll(w, a, b, data)
            arr[idx] = old - eps
            down = _mean_ll(w, a, b, data)
            arr[idx] = old
            # central differences: O(eps^2) truncation, O(1e-16 / eps) round-off
            assert g[idx] == pytest.approx((up - down) / (2 * eps), abs=1e-8)


def test_model_moments_match_brute_force():
    rbm = RBM.random(5, 4, connectivity=0.6, weight_scale=1.5, bias_scale=0.5, seed=11)
    v = exact.all_states(5)
    h = exact.all_states(4)
    neg_energy = (v @ rbm.visible_bias)[:, None] + (h @ rbm.hidden_bias)[None, :] + v @ rbm.weights @ h.T
    p = np.exp(neg_energy - logsumexp(neg_energy))
    mean_v, mean_h, mean_vh = exact.model_moments(rbm)
    assert np.allclose(mean_v, v.T @ p.sum(axis=1), atol=1e-13)
    assert np.allclose(mean_h, h.T @ p.sum(axis=0), atol=1e-13)
    assert np.allclose(mean_vh, v.T @ p @ h, atol=1e-13)
