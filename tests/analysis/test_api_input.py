"""Bad input at the public boundary of analysis is refused by name, before any work, with the engine's
messages where the engine checks the same value (cases from a bad-input audit of the Python API)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from analysis import likelihood
from dilution import ais, exact
from dilution.model import RBM
from dilution.schedules import linear


@pytest.fixture(scope="module")
def rbm():
    return RBM.random(8, 4, connectivity=0.5, weight_scale=1.0, bias_scale=0.5, seed=0)


@pytest.fixture(scope="module")
def data():
    return (np.random.default_rng(1).random((20, 8)) < 0.4).astype(np.float64)


@pytest.mark.parametrize("log_z, error, message", [
    ("8.7", TypeError, "log_z must be a number, got '8.7'"),  # the engine took the string as 8.7
    (np.nan, ValueError, "log_z must be finite, got nan"),
    (np.array([8.7, 8.8]), TypeError, "log_z must be a number, got an array of shape (2,) and dtype float64"),
    (xr.Dataset({"log_z": np.nan, "log_z_std": 0.1}), ValueError, "log_z must be finite, got nan"),
    (xr.Dataset({"log_z": ("n", [8.7, 8.8]), "log_z_std": 0.1}), TypeError,
     "log_z must be a number, got an array of shape (2,) and dtype float64"),
])
def test_a_given_log_z_is_checked_alike_here_and_in_the_engine(rbm, data, log_z, error, message):
    # two checks of one value, which had drifted apart
    for call in (lambda: likelihood.log_likelihood(rbm, data, log_z),
                 lambda: ais.log_likelihood(rbm, data, log_z=log_z)):
        with pytest.raises(error) as err:
            call()
        assert str(err.value) == message


def test_a_log_z_dataset_needs_no_standard_error_here(rbm, data):
    # only log_z is used: a Dataset without log_z_std is a number here (the engine propagates the error)
    log_z = exact.log_partition(rbm)
    expected = likelihood.log_likelihood(rbm, data, log_z)
    np.testing.assert_array_equal(likelihood.log_likelihood(rbm, data, xr.Dataset({"log_z": log_z})), expected)
    with pytest.raises(ValueError, match=r"^log_z Dataset lacks \['log_z_std'\]"):
        ais.log_likelihood(rbm, data, log_z=xr.Dataset({"log_z": log_z}))


@pytest.mark.parametrize("base_data, message", [
    (np.ones((5, 9)), r"^base_data must have shape \(n_samples, 8\), got \(5, 9\)$"),
    (np.ones((0, 8)), r"^base_data must hold at least one row to fit base rates \(or pass base_data=None"),
])
def test_ais_log_likelihood_names_base_data(rbm, data, base_data, message):
    # the messages named `data`, which was fine
    with pytest.raises(ValueError, match=message):
        likelihood.ais_log_likelihood(rbm, data, n_chains=10, seed=0, betas=linear(20), base_data=base_data)
