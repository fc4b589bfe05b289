"""First and second moments of model samples against data.

For each set: pixel means ``<v_i>`` and connected correlations ``C_ij = <v_i v_j> - <v_i><v_j>``
(``i < j``, population normalisation). Model statistics are compared with data statistics by the
root-mean-square error, the least-squares slope of model on data (1 when the model reproduces
the data's statistics on average) and Pearson's r (scatter around that line).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["connected_correlations", "moment_errors", "as_sample_matrix"]


def as_sample_matrix(name: str, x) -> np.ndarray:
    """Samples as a float64 array of shape (n_samples, n_units): 2-D input as is, 3-D images
    (n_samples, rows, cols) flattened; at least one row, finite values."""
    arr = np.asarray(x)
    if arr.ndim == 3:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n_samples, n_units) with n_samples >= 1, got {arr.shape}")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def connected_correlations(x) -> tuple[np.ndarray, np.ndarray]:
    """Means and connected correlation matrix of a sample set.

    Parameters
    ----------
    x : array_like, shape (n, n_units)

    Returns
    -------
    means : ndarray, shape (n_units,)
    c : ndarray, shape (n_units, n_units)
        ``<v_i v_j> - <v_i><v_j>`` (diagonal: variances).
    """
    x = as_sample_matrix("x", x)
    m = x.mean(axis=0)
    xc = x - m
    return m, xc.T @ xc / x.shape[0]


def _compare(model: np.ndarray, data: np.ndarray) -> tuple[float, float, float]:
    rmse = float(np.sqrt(np.mean((model - data) ** 2)))
    dd = data - data.mean()
    dm = model - model.mean()
    var_d = float(dd @ dd)
    var_m = float(dm @ dm)
    slope = float(dd @ dm / var_d) if var_d > 0 else np.nan
    r = float(dd @ dm / np.sqrt(var_d * var_m)) if var_d > 0 and var_m > 0 else np.nan
    return rmse, slope, r


def moment_errors(samples, data) -> xr.Dataset:
    """Errors of the model's pixel means and connected pair correlations.

    Parameters
    ----------
    samples : array_like, shape (n_samples, n_units)
        Model samples.
    data : array_like, shape (n_data, n_units)
        Held-out data.

    Returns
    -------
    xarray.Dataset
        Dimension ``statistic`` = (mean, correlation) with ``rmse``, ``slope`` (least squares of
        model on data), ``pearson_r``; plus ``mean_model`` and ``mean_data`` (unit). Slope and r are
        NaN when the data (or model) statistic has no spread.
    """
    s = as_sample_matrix("samples", samples)
    d = as_sample_matrix("data", data)
    if s.shape[1] != d.shape[1]:
        raise ValueError(f"samples and data must have the same number of units, got {s.shape[1]} and {d.shape[1]}")
    if s.shape[1] < 2:
        raise ValueError("pair correlations need at least 2 units")
    ms, cs = connected_correlations(s)
    md, cd = connected_correlations(d)
    iu = np.triu_indices(s.shape[1], k=1)
    rows = [_compare(ms, md), _compare(cs[iu], cd[iu])]
    ds = xr.Dataset(
        {
            "rmse": ("statistic", [r[0] for r in rows],
                     {"long_name": "root-mean-square difference model - data", "units": "1"}),
            "slope": ("statistic", [r[1] for r in rows],
                      {"long_name": "least-squares slope of model statistic on data statistic", "units": "1"}),
            "pearson_r": ("statistic", [r[2] for r in rows],
                          {"long_name": "Pearson correlation of model and data statistics", "units": "1"}),
            "mean_model": ("unit", ms, {"long_name": "mean of each unit over the model samples", "units": "1"}),
            "mean_data": ("unit", md, {"long_name": "mean of each unit over the data", "units": "1"}),
        },
        coords={
            "statistic": ("statistic", ["mean", "correlation"],
                          {"long_name": "compared statistic: unit means or connected pair correlations", "units": "1"}),
            "unit": ("unit", np.arange(s.shape[1]), {"long_name": "visible unit index", "units": "1"}),
        },
    )
    ds.attrs.update(
        metric="moment errors: pixel means and connected correlations C_ij = <v_i v_j> - <v_i><v_j>, i < j",
        is_proxy=0,
        n_samples=int(s.shape[0]),
        n_data=int(d.shape[0]),
    )
    return ds
