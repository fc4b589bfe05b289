"""Seed means and their confidence intervals, the statistic every figure's bands show."""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats

__all__ = ["seed_interval"]


def seed_interval(da: xr.DataArray, dim: str = "seed", level: float = 0.95) -> xr.Dataset:
    """Mean over ``dim`` with the Student-t confidence interval of the mean.

    ``mean +- t_{(1+level)/2, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation of
    the ``n`` finite values (NaN entries, e.g. unfinished grid points, are left out). With
    fewer than two values the bounds are NaN: one seed says nothing about the spread.

    Parameters
    ----------
    da : DataArray with dimension ``dim``
    dim : str
    level : float in (0, 1)

    Returns
    -------
    xarray.Dataset
        ``mean``, ``lower``, ``upper`` and ``n`` with the dims of ``da`` except ``dim``; ``mean``
        and the bounds keep ``da``'s attrs.
    """
    if dim not in da.dims:
        raise ValueError(f"{da.name!r} has no dimension {dim!r} to average over; its dims are {da.dims}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    n = da.notnull().sum(dim)
    mean = da.mean(dim, skipna=True)
    sd = da.std(dim, ddof=1, skipna=True)
    t = xr.apply_ufunc(lambda k: stats.t.ppf(0.5 + level / 2, np.maximum(k - 1, 1)), n)
    half = (t * sd / np.sqrt(n)).where(n >= 2)
    out = xr.Dataset({"mean": mean.where(n >= 1), "lower": mean - half, "upper": mean + half, "n": n})
    for name in ("mean", "lower", "upper"):
        out[name].attrs = dict(da.attrs)
    return out
