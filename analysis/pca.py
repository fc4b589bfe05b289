"""Samples and data projected on the data's principal components, and distances between them.

The principal axes are those of the *data* (centred by the data mean), so both sets are seen
in the same frame. Two distances between the projected distributions:

- per component, the 1-D Wasserstein-1 distance (``scipy.stats.wasserstein_distance``), in the
  units of the projection;
- in the plane of the top-k components, the energy distance (Szekely & Rizzo 2013)
  ``sqrt(2 E|X - Y| - E|X - X'| - E|Y - Y'|)`` with Euclidean norms and V-statistics (self-pairs
  included), which is exactly 0 for identical sets and equals ``scipy.stats.energy_distance``
  in one dimension. Cost ``O((n_samples + n_data)^2 k)``.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from numba import njit, prange
from scipy import stats

from .moments import as_sample_matrix

__all__ = ["principal_axes", "pca_comparison", "energy_distance"]


def principal_axes(data, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, top principal axes and their variances of a data set.

    Returns
    -------
    mean : ndarray, shape (n_units,)
    axes : ndarray, shape (n_components, n_units)
        Orthonormal; each axis's sign makes its largest-magnitude loading positive.
    variance : ndarray, shape (n_components,)
    """
    d = as_sample_matrix("data", data)
    if not 1 <= n_components <= d.shape[1]:
        raise ValueError(f"n_components must be in [1, {d.shape[1]}], got {n_components}")
    mean = d.mean(axis=0)
    cov = (d - mean).T @ (d - mean) / d.shape[0]
    val, vec = np.linalg.eigh(cov)
    order = np.argsort(val)[::-1][:n_components]
    axes = vec[:, order].T
    sign = np.sign(axes[np.arange(n_components), np.abs(axes).argmax(axis=1)])
    return mean, axes * sign[:, None], val[order]


@njit(parallel=True, cache=True)
def _row_mean_distances(x, y):
    """Mean Euclidean distance from each row of ``x`` to all rows of ``y``."""
    out = np.empty(x.shape[0])
    for i in prange(x.shape[0]):
        acc = 0.0
        for j in range(y.shape[0]):
            d2 = 0.0
            for c in range(x.shape[1]):
                t = x[i, c] - y[j, c]
                d2 += t * t
            acc += math.sqrt(d2)
        out[i] = acc / y.shape[0]
    return out


def energy_distance(x, y) -> float:
    """Energy distance between two point sets (V-statistic form, see the module docstring).

    Parameters
    ----------
    x : array_like, shape (n, k) or (n,)
    y : array_like, shape (m, k) or (m,)
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (n, k) and (m, k) point sets, got {x.shape} and {y.shape}")
    xy = _row_mean_distances(x, y).mean()
    xx = _row_mean_distances(x, x).mean()
    yy = _row_mean_distances(y, y).mean()
    return float(math.sqrt(max(2.0 * xy - xx - yy, 0.0)))


def pca_comparison(samples, data, *, n_components: int = 2, energy_components: int | None = None) -> xr.Dataset:
    """Project samples and data on the data's top principal components and compare them.

    Parameters
    ----------
    samples : array_like, shape (n_samples, n_units)
    data : array_like, shape (n_data, n_units)
    n_components : int
        Components kept.
    energy_components : int, optional
        Dimension of the plane for the energy distance (default: all ``n_components``).

    Returns
    -------
    xarray.Dataset
        ``samples_projection`` (sample, component), ``data_projection`` (datum, component),
        ``explained_variance`` and ``explained_fraction`` (component, of the data),
        ``wasserstein`` (component): 1-D Wasserstein-1 distance, ``energy_distance``, ``axes``
        (component, unit).
    """
    s = as_sample_matrix("samples", samples)
    d = as_sample_matrix("data", data)
    if s.shape[1] != d.shape[1]:
        raise ValueError(f"samples and data must have the same number of units, got {s.shape[1]} and {d.shape[1]}")
    k_e = n_components if energy_components is None else int(energy_components)
    if not 1 <= k_e <= n_components:
        raise ValueError(f"energy_components must be in [1, n_components={n_components}], got {energy_components}")
    mean, axes, var = principal_axes(d, n_components)
    ps = (s - mean) @ axes.T
    pdat = (d - mean) @ axes.T
    total_var = float(d.var(axis=0).sum())
    ds = xr.Dataset(
        {
            "samples_projection": (("sample", "component"), ps,
                                   {"long_name": "projection of each sample on the data's principal axes", "units": "1"}),
            "data_projection": (("datum", "component"), pdat,
                                {"long_name": "projection of each data point on the data's principal axes", "units": "1"}),
            "axes": (("component", "unit"), axes, {"long_name": "principal axes of the data", "units": "1"}),
            "explained_variance": ("component", var, {"long_name": "data variance along each axis", "units": "1"}),
            "explained_fraction": ("component", var / total_var if total_var > 0 else np.full_like(var, np.nan),
                                   {"long_name": "fraction of the data's total variance along each axis", "units": "1"}),
            "wasserstein": ("component", [stats.wasserstein_distance(ps[:, c], pdat[:, c]) for c in range(n_components)],
                            {"long_name": "1-D Wasserstein-1 distance between projected samples and data", "units": "1"}),
            "energy_distance": ((), energy_distance(ps[:, :k_e], pdat[:, :k_e]),
                                {"long_name": f"energy distance in the plane of the top {k_e} components", "units": "1"}),
        },
        coords={"component": ("component", np.arange(n_components),
                              {"long_name": "principal component index, largest variance first", "units": "1"})},
    )
    ds.attrs.update(metric="PCA projection comparison (axes of the data)", is_proxy=0, energy_components=k_e)
    return ds
