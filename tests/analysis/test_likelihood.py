from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from analysis.likelihood import ais_log_likelihood, exact_log_likelihood, log_likelihood
from dilution import exact
from dilution.model import RBM


def tiny_rbm(seed=0):
    return RBM.random(8, 5, connectivity=0.7, weight_scale=1.0, bias_scale=0.5, seed=seed)


def test_exact_matches_dilution_exact():
    rbm = tiny_rbm()
    data = exact.all_states(8)[np.random.default_rng(0).integers(0, 256, 50)]
    ds = exact_log_likelihood(rbm, data)
    np.testing.assert_allclose(ds.log_likelihood.values, exact.log_likelihood(rbm, data), rtol=0, atol=1e-12)
    assert float(ds.mean_log_likelihood) == pytest.approx(exact.log_likelihood(rbm, data).mean(), abs=1e-12)
    assert float(ds.log_z) == pytest.approx(exact.log_partition(rbm), abs=1e-12)
    # Normalisation: all states together carry probability 1.
    all_ll = exact_log_likelihood(rbm, exact.all_states(8)).log_likelihood.values
    assert np.exp(all_ll).sum() == pytest.approx(1.0, abs=1e-12)
    assert ds.attrs["is_proxy"] == 0


def test_log_likelihood_with_a_given_log_z():
    rbm = tiny_rbm(2)
    data = exact.all_states(8)[np.random.default_rng(2).integers(0, 256, 30)]
    log_z = exact.log_partition(rbm)
    np.testing.assert_allclose(log_likelihood(rbm, data, log_z), exact.log_likelihood(rbm, data), rtol=0, atol=1e-12)
    # another log Z shifts every value by the difference and nothing else
    np.testing.assert_allclose(log_likelihood(rbm, data, log_z + 2.5), exact.log_likelihood(rbm, data) - 2.5,
                               rtol=0, atol=1e-12)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="log_z must be a finite number"):
            log_likelihood(rbm, data, bad)
    with pytest.raises(ValueError, match="data"):
        log_likelihood(rbm, data[:, :5], log_z)


def test_ais_agrees_with_exact():
    rbm = tiny_rbm(1)
    data = exact.all_states(8)[np.random.default_rng(1).integers(0, 256, 40)]
    ds = ais_log_likelihood(rbm, data, n_chains=200, seed=3, betas=np.linspace(0.0, 1.0, 500), reverse=False)
    ref = exact_log_likelihood(rbm, data)
    # Same free energies, so the difference is the AIS error of log Z: asymptotically normal with
    # the delta-method standard error se, two-sided at total false-alarm probability 1e-3, plus
    # the Jensen bias of the log of a mean of weights, -se^2 / 2 to second order.
    diff = float(ds.mean_log_likelihood - ref.mean_log_likelihood)
    se = float(ds.log_z_std)
    assert abs(diff) < norm.isf(1e-3 / 2) * se + se**2 / 2
    np.testing.assert_allclose(ds.log_likelihood - ref.log_likelihood, -float(ds.log_z) + float(ref.log_z), atol=1e-9)
