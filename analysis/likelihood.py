"""Test-set log-likelihood of an RBM: exact (enumerable models) or with an AIS estimate of log Z.

``log p(v) = -F(v) - log Z`` with the free energy ``F`` of :func:`dilution.conditionals.free_energy`. The
free energy is exact for any size; only ``log Z`` needs enumeration (:mod:`dilution.exact`, smaller
layer <= 30 units) or annealed importance sampling (:mod:`dilution.ais`). The AIS estimate of
``log Z`` is a stochastic lower bound, so the AIS log-likelihood is a stochastic *upper* bound
on the true one; its uncertainty is the AIS standard error of ``log Z``, common to every sample.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from dilution import ais, exact
from dilution.conditionals import free_energy
from dilution.model import RBM
from dilution.validation import check_binary

__all__ = ["exact_log_likelihood", "ais_log_likelihood", "log_likelihood"]


def _free_energy(rbm: RBM, data) -> np.ndarray:
    v = check_binary("data", data, rbm.n_visible, np.float64)
    a = rbm.visible_bias.astype(np.float64)
    return free_energy(v, rbm.weights.astype(np.float64), a, rbm.hidden_bias.astype(np.float64), 1.0, np.zeros_like(a))


def log_likelihood(rbm: RBM, data, log_z: float) -> np.ndarray:
    """``log p(v) = -F(v) - log_z`` of each row of ``data``, with a ``log_z`` computed elsewhere.

    With one ``log_z`` for two data sets (training and test images), the difference of their means
    carries none of ``log_z``'s error: the generalisation gap is exact even when ``log_z`` is an
    AIS estimate.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    if not np.isfinite(log_z):
        raise ValueError(f"log_z must be a finite number, got {log_z!r}")
    return -_free_energy(rbm, data) - float(log_z)


def _dataset(log_lik: np.ndarray, log_z: float, method: str, extra: dict, attrs: dict) -> xr.Dataset:
    n = log_lik.shape[0]
    ds = xr.Dataset(
        {
            "log_likelihood": ("sample", log_lik, {"long_name": "log p(v) of each test sample", "units": "nats"}),
            "mean_log_likelihood": ((), float(log_lik.mean()), {"long_name": "mean test log-likelihood", "units": "nats per sample"}),
            "std_error": ((), float(log_lik.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
                          {"long_name": "standard error of the mean over test samples (log Z held fixed)",
                           "units": "nats per sample"}),
            "log_z": ((), float(log_z), {"long_name": "log partition function used", "units": "nats"}),
            **extra,
        },
        coords={"sample": ("sample", np.arange(n), {"long_name": "test sample index", "units": "1"})},
    )
    ds.attrs.update(metric=f"test log-likelihood ({method})", is_proxy=0, n_samples=int(n), **attrs)
    return ds


def exact_log_likelihood(rbm: RBM, data, *, max_units: int = exact.MAX_UNITS) -> xr.Dataset:
    """Exact log-likelihood of held-out data (``log Z`` by enumeration of the smaller layer).

    Parameters
    ----------
    rbm : RBM
        Smaller layer of at most ``max_units`` units.
    data : array_like, shape (n, n_visible)
        Binary test samples.

    Returns
    -------
    xarray.Dataset
        ``log_likelihood`` (sample), ``mean_log_likelihood``, ``std_error``, ``log_z``.
    """
    log_z = exact.log_partition(rbm, max_units=max_units)
    return _dataset(exact.log_likelihood(rbm, data, log_z=log_z, max_units=max_units), log_z, "exact", {}, {})


def ais_log_likelihood(rbm: RBM, data, *, n_chains: int, seed: int, betas=None, base_data=None, **ais_options) -> xr.Dataset:
    """Log-likelihood of held-out data with ``log Z`` estimated by AIS (:func:`dilution.ais.log_partition`).

    Parameters
    ----------
    rbm : RBM
    data : array_like, shape (n, n_visible)
        Binary test samples.
    n_chains : int
        AIS runs.
    seed : int
    betas : array_like, optional
        Annealing schedule; default that of :func:`dilution.ais.log_partition`.
    base_data : array_like, shape (m, n_visible), optional
        Training data for the base-rate model (never the test set, to keep the estimate honest).
    **ais_options
        Passed to :func:`dilution.ais.log_partition` (e.g. ``reverse=False``).

    Returns
    -------
    xarray.Dataset
        As :func:`exact_log_likelihood`, plus ``log_z_std`` (AIS standard error of ``log Z``, which
        shifts every sample's value together) and ``mean_log_likelihood_lower``, computed from the
        reverse-AIS upper bound on ``log Z`` when AIS ran in reverse too.
    """
    f = _free_energy(rbm, data)
    est = ais.log_partition(rbm, n_chains=n_chains, betas=betas, data=base_data, seed=seed, **ais_options)
    log_z = float(est["log_z"])
    extra = {"log_z_std": ((), float(est["log_z_std"]), {"long_name": "AIS standard error of log Z", "units": "nats"})}
    if "log_z_upper" in est:
        extra["mean_log_likelihood_lower"] = (
            (), float(np.mean(-f) - float(est["log_z_upper"])),
            {"long_name": "mean test log-likelihood with the reverse-AIS log Z (the other side of the sandwich)", "units": "nats per sample"},
        )
    return _dataset(-f - log_z, log_z, "AIS", extra, {"ais_n_chains": int(n_chains), "ais_seed": int(seed)})
