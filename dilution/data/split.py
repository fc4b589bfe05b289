"""Sample-indexed data sets: seeded shuffles, train/validation splits, the matrix view.

Data sets of :mod:`dilution.data` share one layout: a dimension ``sample`` and the states in
a variable ``images`` (sample, row, col) or ``states`` (sample, visible). :func:`as_matrix`
gives the (n, n_visible) array that training and estimators take, images flattened row-major.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import xarray as xr

from ..rng import derive_seed

__all__ = ["as_matrix", "shuffle", "train_validation_split"]


def _check_dataset(ds) -> int:
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"expected an xarray.Dataset with a 'sample' dimension, got {type(ds).__name__}")
    if "sample" not in ds.dims:
        raise ValueError(f"dataset has no 'sample' dimension; its dims are {dict(ds.sizes)}")
    return ds.sizes["sample"]


def as_matrix(ds: xr.Dataset, dtype=None) -> np.ndarray:
    """The states as a C-contiguous (n, n_visible) array.

    Parameters
    ----------
    ds : xarray.Dataset
        With ``images`` (sample, row, col) (flattened row-major) or ``states`` (sample, visible).
    dtype : dtype, optional
        Output dtype; default that of the stored variable.

    Returns
    -------
    ndarray, shape (n_samples, n_visible)
    """
    _check_dataset(ds)
    if "images" in ds.data_vars:
        da = ds["images"].transpose("sample", ...)
        if da.ndim != 3:
            raise ValueError(f"'images' must have dims (sample, row, col), got {da.dims}")
    elif "states" in ds.data_vars:
        da = ds["states"].transpose("sample", ...)
        if da.ndim != 2:
            raise ValueError(f"'states' must have dims (sample, visible), got {da.dims}")
    else:
        raise ValueError(f"dataset has neither 'images' nor 'states'; its variables are {sorted(ds.data_vars)}")
    values = da.values.reshape(da.shape[0], -1)
    return np.ascontiguousarray(values, dtype=dtype)


def shuffle(ds: xr.Dataset, *, seed: int) -> xr.Dataset:
    """The samples in a random order fixed by ``seed`` (attr ``shuffle_seed``).

    The ``sample`` coordinate moves with the data, so the original index stays known.
    """
    n = _check_dataset(ds)
    perm = np.random.default_rng(derive_seed(seed, "shuffle")).permutation(n)
    out = ds.isel(sample=perm)
    # isel shares the attrs dict with ds: assign a new one so ds is left unchanged.
    out.attrs = {**ds.attrs, "shuffle_seed": int(seed)}
    return out


def train_validation_split(
    ds: xr.Dataset, validation: float | int = 0.1, *, seed: int
) -> tuple[xr.Dataset, xr.Dataset]:
    """Split the samples at random into a training and a validation set.

    Parameters
    ----------
    ds : xarray.Dataset
        With a ``sample`` dimension.
    validation : float in (0, 1) or int >= 1
        Fraction (rounded to the nearest count) or number of samples held out.
    seed : int
        Fixes the permutation. Both sets come out in shuffled order (which matters for data
        grouped by class, like the training part of ``mnist.npz``).

    Returns
    -------
    train, validation : xarray.Dataset
        attrs ``subset`` ("train" or "validation"), ``split_seed``, ``split_n_validation``.
    """
    n = _check_dataset(ds)
    if isinstance(validation, bool) or not isinstance(validation, Real):
        raise TypeError(f"validation must be a fraction in (0, 1) or a count >= 1, got {validation!r}")
    if isinstance(validation, Integral):
        n_val = int(validation)
        if n_val < 1:
            raise ValueError(f"validation count must be >= 1, got {validation}")
    else:
        if not 0.0 < validation < 1.0:
            raise ValueError(f"validation fraction must be in (0, 1), got {validation!r}")
        n_val = int(round(validation * n))
    if not 1 <= n_val <= n - 1:
        raise ValueError(
            f"validation={validation!r} holds out {n_val} of {n} samples; "
            "both sets need at least one sample"
        )
    perm = np.random.default_rng(derive_seed(seed, "train-validation-split")).permutation(n)
    parts = []
    for subset, idx in (("train", perm[n_val:]), ("validation", perm[:n_val])):
        part = ds.isel(sample=idx)
        part.attrs = {**ds.attrs, "subset": subset, "split_seed": int(seed), "split_n_validation": n_val}
        parts.append(part)
    return parts[0], parts[1]
