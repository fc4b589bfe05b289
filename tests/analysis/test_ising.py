from __future__ import annotations

import numpy as np
import pytest

from analysis.ising import _field_term, _pair_term, compare_couplings, coupling_summary, ising_parameters
from dilution import exact
from dilution.model import RBM


def walsh_coefficients(rbm):
    """Degree-1 and degree-2 Walsh coefficients of the exact log p(sigma), sigma = 2v - 1."""
    n = rbm.n_visible
    lp = exact.log_prob_visible(rbm)
    sigma = 2 * exact.all_states(n) - 1
    fields = sigma.T @ lp / 2**n
    couplings = np.einsum("s,si,sj->ij", lp, sigma, sigma) / 2**n
    np.fill_diagonal(couplings, 0.0)
    return fields, couplings


@pytest.mark.parametrize("connectivity,seed", [(0.6, 1), (1.0, 2)])
def test_exact_variant_equals_walsh_transform_of_marginal(connectivity, seed):
    rbm = RBM.random(8, 4, connectivity=connectivity, weight_scale=1.0, bias_scale=0.5, seed=seed)
    fields, couplings = walsh_coefficients(rbm)
    ds = ising_parameters(rbm, method="exact")
    # Both sides are exact: only rounding (2^8-term sums of O(1) numbers) separates them.
    np.testing.assert_allclose(ds.field.values, fields, atol=1e-12)
    np.testing.assert_allclose(ds.coupling.values, couplings, atol=1e-12)
    # J vanishes off the support fixed by the mask, and the support is what the mask says.
    shared = (rbm.mask.astype(int) @ rbm.mask.T.astype(int)) > 0
    np.fill_diagonal(shared, False)
    np.testing.assert_array_equal(ds.support.values, shared)
    assert np.all(ds.coupling.values[~shared] == 0.0)
    if connectivity < 1:
        assert not shared.all()


def test_gaussian_is_exact_without_other_spins():
    # Hidden units of degree 2: the pair term has X = 0 in both variants, so the couplings agree.
    mask = np.zeros((6, 3), bool)
    mask[[0, 1], 0] = mask[[2, 3], 1] = mask[[4, 5], 2] = True
    rbm = RBM.random(6, 3, weight_scale=1.0, bias_scale=1.0, seed=3).replace(mask=mask)
    g = ising_parameters(rbm, method="gaussian")
    e = ising_parameters(rbm, method="exact")
    np.testing.assert_allclose(g.coupling.values, e.coupling.values, atol=1e-14)
    np.testing.assert_allclose(g.coupling.values, walsh_coefficients(rbm)[1], atol=1e-12)


def test_gaussian_error_decreases_with_degree():
    # Hidden units with d neighbours and the standard deviation of sum_l w_l sigma_l fixed at 1.5:
    # the discrete X approaches the Gaussian as d grows. Its excess kurtosis is
    # -2 sum w^4 / (sum w^2)^2 ~ 1/d, so the relative error of J should fall as d^-p with p = 1
    # at leading order. The test fits p from d = 4 to 16 and asks that it be closer to 1 than to
    # p = 1/2 or 3/2: O(1/d) corrections at d = 4 move p by far less, while a Gaussian term with a
    # wrong variance or quadrature leaves an error that does not vanish with d (p near 0).
    errors, field_errors = [], []
    for d in (4, 8, 16):
        rng = np.random.default_rng(10)
        num = den = f_num = f_den = 0.0
        for _ in range(20):
            w = rng.uniform(0.5, 1.5, size=(d, 1)) * rng.choice([-1, 1], size=(d, 1))
            w *= 4 * 1.5 / np.sqrt((w**2).sum())  # W = 4 w in the RBM's convention
            rbm = RBM(w, np.zeros(d), np.array([rng.normal()]))
            e = ising_parameters(rbm, method="exact")
            g = ising_parameters(rbm, method="gaussian")
            num += np.sum((g.coupling.values - e.coupling.values) ** 2)
            den += np.sum(e.coupling.values ** 2)
            f_num += np.sum((g.field.values - e.field.values) ** 2)
            f_den += np.sum(e.field.values ** 2)
        errors.append(np.sqrt(num / den))
        field_errors.append(np.sqrt(f_num / f_den))
    assert errors[0] > errors[1] > errors[2]
    p = -np.log(errors[2] / errors[0]) / np.log(16 / 4)
    assert abs(p - 1) < 0.5, p
    assert field_errors[0] > field_errors[2]


def test_auto_switches_per_unit_and_exact_refuses_large_degree():
    rbm = RBM.random(10, 6, connectivity=0.5, weight_scale=0.8, bias_scale=0.3, seed=4)
    degrees = rbm.mask.sum(axis=0)
    cut = int(np.median(degrees))
    auto = ising_parameters(rbm, method="auto", max_exact_degree=cut)
    np.testing.assert_array_equal(auto.exact_unit.values, degrees <= cut)
    full = ising_parameters(rbm, method="auto", max_exact_degree=30)
    np.testing.assert_allclose(full.coupling.values, walsh_coefficients(rbm)[1], atol=1e-12)
    gauss = ising_parameters(rbm, method="gaussian")
    assert not gauss.exact_unit.values.any()
    with pytest.raises(ValueError, match="max_exact_degree"):
        ising_parameters(rbm, method="exact", max_exact_degree=int(degrees.max()) - 1)


def _lncosh(x):
    return np.logaddexp(x, -x) - np.log(2.0)


def test_quadrature_against_fine_reference():
    rng = np.random.default_rng(0)
    for _ in range(30):
        theta = 3 * rng.normal()
        s = abs(rng.normal()) * np.exp(rng.uniform(-3, 1.5))
        w1, w2 = 0.3 * rng.normal(size=2)
        x = np.linspace(-10 * s, 10 * s, 200_001)
        gauss = np.exp(-0.5 * (x / s) ** 2) / (s * np.sqrt(2 * np.pi))
        pair = 0.25 * np.log1p(2 * np.sinh(2 * w1) * np.sinh(2 * w2) / (np.cosh(2 * (theta + x)) + np.cosh(2 * (w1 - w2))))
        field = 0.5 * (_lncosh(theta + w1 + x) - _lncosh(theta - w1 + x))
        # The reference's own error (step s/10^4, cut at 10 sd) is far below 1e-10 relative.
        assert _pair_term(theta, s, w1, w2, 0.4) == pytest.approx(np.trapezoid(gauss * pair, x), rel=1e-8)
        assert _pair_term(theta, s, w1, w2, 0.2) == pytest.approx(np.trapezoid(gauss * pair, x), rel=1e-11)
        assert _field_term(theta, s, w1, 0.4) == pytest.approx(np.trapezoid(gauss * field, x), rel=1e-8)


def test_coupling_summary_known_network():
    rbm = RBM.random(6, 3, weight_scale=1.0, seed=5)
    ds = ising_parameters(rbm, method="exact")
    j = ds.coupling.values
    ds["coupling"].values[:] = 0.0
    ds["coupling"].values[0, 3] = ds["coupling"].values[3, 0] = -0.5
    ds["coupling"].values[1, 2] = ds["coupling"].values[2, 1] = 0.2
    s = coupling_summary(ds, thresholds=(0.1, 0.3), top_k=3, bins=[-1, -0.25, 0.1, 1])
    np.testing.assert_allclose(s.fraction_above.values, [2 / 15, 1 / 15])
    assert (int(s.top_j[0]), int(s.top_k_index[0]), float(s.top_value[0])) == (0, 3, -0.5)
    assert (int(s.top_j[1]), int(s.top_k_index[1]), float(s.top_value[1])) == (1, 2, 0.2)
    np.testing.assert_array_equal(s.histogram.values, [1, 13, 1])
    assert float(s.rms_coupling) == pytest.approx(np.sqrt((0.25 + 0.04) / 15))
    assert j.shape == (6, 6)


def test_compare_couplings_identity_and_pruning():
    dense = RBM.random(9, 5, weight_scale=1.0, bias_scale=0.3, seed=6)
    mask = dense.mask.copy()
    mask[:, 2:] = False  # keep 2 hidden units
    pruned = dense.replace(mask=mask)
    a = ising_parameters(dense, method="exact")
    same = compare_couplings(a, a, top_k=10)
    assert float(same.pearson_r) == pytest.approx(1.0) and float(same.rmse) == 0.0
    assert float(same.top_k_overlap) == 1.0 and float(same.support_kept) == 1.0
    b = ising_parameters(pruned, method="exact")
    cmp = compare_couplings(a, b, top_k=10)
    iu = np.triu_indices(9, 1)
    assert float(cmp.rmse) == pytest.approx(np.sqrt(np.mean((a.coupling.values[iu] - b.coupling.values[iu]) ** 2)))
    # Two fully connected hidden units still connect every pair.
    assert float(cmp.support_kept) == 1.0


@pytest.mark.slow
def test_mnist_sized_model_runs():
    rbm = RBM.random(784, 500, connectivity=0.02, weight_scale=0.05, bias_scale=0.5, seed=1)
    ds = ising_parameters(rbm, method="auto")
    assert np.isfinite(ds.coupling.values).all()
    assert np.all(ds.coupling.values[~ds.support.values] == 0.0)
