from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis.pca import energy_distance, pca_comparison, principal_axes


def data_set(seed=0, n=400, d=12):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 3)) * [3.0, 2.0, 1.0]
    return z @ rng.standard_normal((3, d)) + 0.1 * rng.standard_normal((n, d))


def test_axes_match_svd():
    x = data_set()
    mean, axes, var = principal_axes(x, 3)
    _, s, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    np.testing.assert_allclose(np.abs(axes @ vt[:3].T), np.eye(3), atol=1e-10)
    np.testing.assert_allclose(var, s[:3] ** 2 / len(x), rtol=1e-10)


def test_identical_sets_have_zero_distance():
    x = data_set()
    ds = pca_comparison(x, x, n_components=3)
    np.testing.assert_allclose(ds.wasserstein.values, 0.0, atol=1e-12)
    assert float(ds.energy_distance) == pytest.approx(0.0, abs=1e-6)  # sqrt of a cancellation of O(1) means


def test_shift_along_first_axis():
    x = data_set(1)
    _, axes, _ = principal_axes(x, 3)
    ds = pca_comparison(x + 2.5 * axes[0], x, n_components=3)
    # Projections move by exactly 2.5 on component 0 only: W1 of a translated distribution = shift.
    np.testing.assert_allclose(ds.wasserstein.values, [2.5, 0.0, 0.0], atol=1e-10)


def test_energy_distance_reference():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=300), rng.normal(0.5, 2.0, size=200)
    assert energy_distance(a, b) == pytest.approx(stats.energy_distance(a, b), rel=1e-10)
    # Two point masses at distance r: 2E|X-Y| - 0 - 0 = 2r.
    assert energy_distance(np.zeros((5, 2)), np.tile([3.0, 4.0], (7, 1))) == pytest.approx(np.sqrt(10.0), rel=1e-14)
