"""Grey levels to binary {0, 1} units: a deterministic threshold or seeded Bernoulli draws.

With intensity ``p = x / max_value`` (``max_value = 255`` for MNIST):

- ``"threshold"``: unit on when ``p > threshold`` (strictly). The default 0.5 on 0..255 grey
  levels means ``x > 127.5``, i.e. ``x >= 128`` for integer pixels.
- ``"stochastic"``: unit on with probability ``p``, independently (``u < p`` with ``u``
  uniform in [0, 1)), as in Salakhutdinov & Murray (2008). Reproducible from the seed.

The method, threshold and seed are recorded in the Dataset attrs.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from ..rng import derive_seed

__all__ = ["binarize", "binarize_array", "Method"]

Method = Literal["threshold", "stochastic"]
_CHUNK_ROWS = 4096  # bounds the uniform draws held at once; the draws do not depend on it


def _check_grey(x, max_value: float) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"grey levels must be a real numeric array in [0, {max_value:g}], got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError("grey levels must be an array of at least one dimension, got a scalar")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"grey levels must be finite, found {bad} NaN or infinite entries")
    if arr.size and (arr.min() < 0 or arr.max() > max_value):
        raise ValueError(
            f"grey levels must lie in [0, {max_value:g}], found range [{arr.min()}, {arr.max()}]; "
            "pass max_value for data on another scale (e.g. max_value=1.0 for intensities in [0, 1])"
        )
    return arr


def _check_options(method: str, threshold: float, seed, max_value: float) -> None:
    if method not in ("threshold", "stochastic"):
        raise ValueError(f"method must be 'threshold' or 'stochastic', got {method!r}")
    if not (np.isfinite(max_value) and max_value > 0):
        raise ValueError(f"max_value must be a positive finite number, got {max_value!r}")
    if method == "threshold":
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1) (a fraction of max_value), got {threshold!r}")
        if seed is not None:
            raise ValueError("seed is only used by method='stochastic'; threshold binarisation is deterministic")
    elif seed is None:
        raise ValueError("method='stochastic' needs a seed (a non-negative integer) to be reproducible")


def binarize_array(
    x,
    method: Method = "threshold",
    *,
    threshold: float = 0.5,
    seed: int | None = None,
    max_value: float = 255.0,
) -> np.ndarray:
    """Binary version of grey-level data.

    Parameters
    ----------
    x : array_like, shape (n, ...)
        Grey levels in ``[0, max_value]``; the first axis indexes samples.
    method : {"threshold", "stochastic"}
    threshold : float in [0, 1)
        Fraction of ``max_value`` above which (strictly) a unit is on; threshold method only.
    seed : int
        Seed of the Bernoulli draws; stochastic method only (required there).
    max_value : float
        Grey level of full intensity.

    Returns
    -------
    ndarray of uint8, same shape as ``x``, values in {0, 1}
    """
    _check_options(method, threshold, seed, max_value)
    arr = _check_grey(x, max_value)
    if method == "threshold":
        return (arr > threshold * max_value).astype(np.uint8)
    rng = np.random.default_rng(derive_seed(seed, "binarize-stochastic"))
    out = np.empty(arr.shape, dtype=np.uint8)
    flat_in = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(-1, 1)
    flat_out = out.reshape(flat_in.shape)
    for start in range(0, flat_in.shape[0], _CHUNK_ROWS):
        rows = flat_in[start:start + _CHUNK_ROWS]
        u = rng.random(rows.shape)
        flat_out[start:start + _CHUNK_ROWS] = u * max_value < rows
    return out


def binarize(
    ds: xr.Dataset,
    method: Method = "threshold",
    *,
    threshold: float = 0.5,
    seed: int | None = None,
    max_value: float = 255.0,
    variable: str = "images",
) -> xr.Dataset:
    """A copy of ``ds`` with ``ds[variable]`` binarised (uint8 0/1) and the choice in attrs.

    See :func:`binarize_array` for the parameters. attrs added: ``binarize_method``,
    ``binarize_max_value`` and ``binarize_threshold`` (threshold method) or ``binarize_seed``
    (stochastic method).

    Raises
    ------
    ValueError
        If ``ds`` is already binarised (attr ``binarize_method`` present) or lacks ``variable``.
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"binarize expects an xarray.Dataset (use binarize_array for arrays), got {type(ds).__name__}")
    if variable not in ds.data_vars:
        raise ValueError(f"dataset has no variable {variable!r}; it has {sorted(ds.data_vars)}")
    if "binarize_method" in ds.attrs:
        raise ValueError(f"dataset is already binarised (binarize_method={ds.attrs['binarize_method']!r})")
    values = binarize_array(ds[variable].values, method, threshold=threshold, seed=seed, max_value=max_value)
    out = ds.copy()
    out[variable] = (ds[variable].dims, values,
                     {"long_name": f"binary unit from grey level ({method} binarisation)", "units": "1"})
    out.attrs["binarize_method"] = method
    out.attrs["binarize_max_value"] = float(max_value)
    if method == "threshold":
        out.attrs["binarize_threshold"] = float(threshold)
        out.attrs["binarize_rule"] = f"on when grey level > {threshold * max_value:g}"
    else:
        out.attrs["binarize_seed"] = int(seed)
        out.attrs["binarize_rule"] = f"on with probability grey level / {max_value:g}"
    return out
