from __future__ import annotations

import numpy as np
import pytest

from analysis.autocorr import integrated_time
from analysis.convergence import effective_sample_size, rank_normalize, rhat, split_chains


def test_split_and_rank_normalize():
    x = np.arange(10.0).reshape(2, 5)
    np.testing.assert_array_equal(split_chains(x), [[0, 1], [5, 6], [3, 4], [8, 9]])
    z = rank_normalize(np.array([3.0, 1.0, 2.0]))
    assert z[1] < z[2] < z[0] and abs(z.sum()) < 1e-12


@pytest.mark.parametrize("method", ["split", "rank"])
def test_rhat_iid_is_one(method):
    x = np.random.default_rng(2).standard_normal((4, 2000))
    # For iid draws, R^2 - 1 ~ (chi2_{m-1}/(m-1) - 1) / n with m = 8 half-chains of n = 1000:
    # sd ~ sqrt(2/7)/1000 ~ 5e-4 (tail version similar); 8 sd.
    assert abs(float(rhat(x, method=method).rhat) - 1) < 4e-3


def test_rhat_different_means_matches_closed_form():
    rng = np.random.default_rng(3)
    mu = np.array([0.0, 0.0, 0.5, 1.0])
    n = 4000
    x = mu[:, None] + rng.standard_normal((4, n))
    half = n // 2
    # Split halves keep their chain's mean: B/n = var(means of 8 halves) ~ var(mu repeated, ddof=1) + 1/half.
    expected = np.sqrt((half - 1) / half + np.var(np.repeat(mu, 2), ddof=1) + 1 / half)
    got = float(rhat(x, method="split").rhat)
    # Sampling error of W (8000 draws) and of the half means (sd 1/sqrt(2000)) is ~1 %; 3 % tolerance.
    assert abs(got / expected - 1) < 0.03
    # Rank normalisation compresses the separation, but it stays far above the iid level (< 1.004).
    assert float(rhat(x, method="rank").rhat) > 1.05


def test_ess_iid_and_ar1(ar1):
    x = np.random.default_rng(4).standard_normal((4, 5000))
    ess = float(effective_sample_size(x).ess)
    # Geyer's estimator of tau for iid draws has sd ~ sqrt(2 (2K+1) / N) with small K; 10 % is > 5 sd.
    assert abs(ess / x.size - 1) < 0.1
    phi = 0.5
    y = ar1(phi, n_chains=4, n_steps=20_000, seed=5)
    tau_true = (1 + phi) / (1 - phi)
    ds = effective_sample_size(y, method="basic")
    # Relative sd of tau ~ sqrt(2 (2M+1) / N), M ~ 10 lags, N = 80000 -> 2.3 %; 4 sd.
    assert abs(float(ds.tau) / tau_true - 1) < 0.1
    assert abs(float(ds.tau) / float(integrated_time(y).tau_mean) - 1) < 0.1


def test_rhat_bad_method():
    with pytest.raises(ValueError, match="method"):
        rhat(np.zeros((2, 10)), method="nope")
    with pytest.raises(ValueError, match="4 draws"):
        rhat(np.zeros((2, 3)))
