from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from analysis.autocorr import autocorrelation, integrated_time


def test_autocorrelation_matches_direct_sum():
    x = np.random.default_rng(0).standard_normal((2, 300)).cumsum(axis=1)
    rho = autocorrelation(x)
    for c in range(2):
        y = x[c] - x[c].mean()
        direct = np.array([y[: len(y) - t] @ y[t:] for t in range(len(y))]) / (y @ y)
        np.testing.assert_allclose(rho[c], direct, atol=1e-12)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_ar1_matches_closed_form(phi, ar1):
    tau_true = (1 + phi) / (1 - phi)
    x = ar1(phi, n_chains=8, n_steps=20_000, seed=1)
    ds = integrated_time(xr.DataArray(x, dims=("chain", "draw")))
    # Madras-Sokal: relative sd of tau is sqrt(2 (2M + 1) / N) for N = 8 * 20000 draws; 4 sd.
    # The window bias (tail of rho beyond M >= 5 tau, ~ 2 phi^M / (1 - phi^2) / tau) is < 1e-3 here.
    assert abs(float(ds.tau_mean) / tau_true - 1) < 4 * float(ds.relative_error)
    assert bool(ds.reliable)
    per_chain_err = np.sqrt(2 * (2 * ds.window.values + 1) / 20_000)
    assert np.all(np.abs(ds.tau.values / tau_true - 1) < 4 * per_chain_err)


def test_constant_trace_and_bad_input():
    ds = integrated_time(np.ones(100))
    assert float(ds.tau_mean) == 1.0
    with pytest.raises(ValueError, match="shape"):
        integrated_time(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="window constant"):
        integrated_time(np.ones(10), c=0)
