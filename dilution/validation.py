"""Checks of arguments at the public boundary: integers, seeds, finite numbers, real arrays, binary states.

One validator per kind of value, so that every function rejects a bad value with the same
message: what was wrong and what was expected. Kernels never validate; their drivers call these.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

import numpy as np

__all__ = ["check_int", "check_seed", "check_finite", "check_real_array", "check_binary"]


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as a Python int, if it is an integer (not a bool) in ``[low, high]``.

    Raises
    ------
    ValueError
        ``"{name} must be an integer >= {low}, got {value!r}"`` (or ``in [low, high]``, or
        ``<= high``), for wrong types as well as out-of-range values.
    """
    integral = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if integral and (low is None or value >= low) and (high is None or value <= high):
        return int(value)
    if low is not None and high is not None:
        expected = f"an integer in [{low}, {high}]"
    elif low is not None:
        expected = f"an integer >= {low}"
    elif high is not None:
        expected = f"an integer <= {high}"
    else:
        expected = "an integer"
    raise ValueError(f"{name} must be {expected}, got {value!r}")


def check_seed(seed: Any) -> int:
    """A user seed: a non-negative integer (``numpy.random.SeedSequence`` accepts no other).

    Raises
    ------
    ValueError
        ``"seed must be a non-negative integer, got {seed!r}"``.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_finite(name: str, value: Any, low: float | None = None) -> float:
    """``value`` as a float, if it is a finite real number, ``>= low`` when given.

    A real number is a Python int or float, a numpy integer or floating scalar, or a 0-d array of
    one (an xarray DataArray too, such as ``ds["log_z"]``); a bool, a string (``"0.05"`` would be
    recorded as a string in a run's config), an array with dimensions, a complex number or None
    is not.

    Raises
    ------
    TypeError
        ``"{name} must be a number, got {value!r}"``, for any other type.
    ValueError
        If it is NaN, infinite or below ``low``.
    """
    real = (int, float, np.integer, np.floating)
    if not isinstance(value, (np.ndarray, bool, np.bool_, *real)) and hasattr(value, "__array__"):
        value = np.asarray(value)  # a 0-d DataArray: its number
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or value.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be a number, got an array of shape {value.shape} and dtype {value.dtype}")
        value = value.item()  # the number, also in the messages below
    elif isinstance(value, bool) or not isinstance(value, real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and x < low:
        raise ValueError(f"{name} must be a finite number >= {low:g}, got {value!r}")
    return x


def check_real_array(name: str, x: Any) -> np.ndarray:
    """``x`` as a float64 array, if it holds real numbers (integers or floats; not bools, strings or objects).

    Raises
    ------
    TypeError
        ``"{name} must be an array of real numbers, got ..."``.
    """
    try:
        arr = np.asarray(x)
    except ValueError:  # a ragged nested sequence
        arr = None
    if arr is None or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be an array of real numbers, got {reprlib.repr(x)}")
    return arr.astype(np.float64, copy=False)


def check_binary(name: str, x: Any, n_units: int, dtype: np.dtype) -> np.ndarray:
    """Validate a batch of binary states and return it as a C-contiguous array of ``dtype``.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    x : array_like, shape (n_samples, n_units) or (n_units,)
        Values 0 and 1 (bool or any numeric dtype); one state may be given as a 1-D array.
    n_units : int
    dtype : dtype

    Returns
    -------
    ndarray of ``dtype``, shape (n_samples, n_units)

    Raises
    ------
    ValueError
        If ``x`` is not 2-D with ``n_units`` columns or holds values other than 0 and 1.
    TypeError
        If ``x`` is not numeric.
    """
    arr = np.asarray(x)
    if arr.ndim == 1 and arr.shape[0] == n_units:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != n_units:
        raise ValueError(f"{name} must have shape (n_samples, {n_units}), got {arr.shape}")
    if arr.dtype == bool:
        return np.ascontiguousarray(arr, dtype=dtype)
    if not (np.issubdtype(arr.dtype, np.number)):
        raise TypeError(f"{name} must be numeric with values in {{0, 1}}, got dtype {arr.dtype}")
    if arr.size:
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            example = arr[bad].ravel()[0]
            raise ValueError(
                f"{name} must be binary (values 0 or 1), found {int(bad.sum())} other entries, e.g. {example!r}; "
                "binarise grey-level data first (dilution.data.binarize)"
            )
    return np.ascontiguousarray(arr, dtype=dtype)
