"""Inverse-temperature schedules for annealed importance sampling and ladders for tempering.

An AIS *schedule* is a non-decreasing sequence ``0 = beta_0 <= ... <= beta_K = 1`` from the base
model to the target RBM (Neal 2001; Salakhutdinov & Murray 2008). A tempering *ladder* is a
strictly increasing sequence of inverse temperatures in ``[0, 1]`` whose last entry is 1, the
replica whose samples are returned.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .validation import check_finite, check_int, check_real_array

__all__ = [
    "CLASSIC_EDGES",
    "CLASSIC_COUNTS",
    "linear",
    "geometric",
    "piecewise_uniform",
    "classic",
    "geometric_ladder",
    "check_schedule",
    "check_ladder",
]

# Salakhutdinov & Murray (2008) demo code: steps of 1e-3 on [0, 0.5), 1e-4 on [0.5, 0.9) and
# 1e-5 on [0.9, 1]; here 500 + 4000 + 10000 = 14,500 betas with 1 as the last one.
CLASSIC_EDGES = (0.0, 0.5, 0.9, 1.0)
CLASSIC_COUNTS = (500, 4000, 10000)


def linear(n_betas: int) -> np.ndarray:
    """``n_betas`` equally spaced betas from 0 to 1 (both included).

    Returns
    -------
    ndarray of float64, shape (n_betas,)
    """
    return np.linspace(0.0, 1.0, check_int("n_betas", n_betas, 2))


def geometric(n_betas: int, beta_min: float = 1e-4) -> np.ndarray:
    """An AIS schedule: 0, then ``n_betas - 1`` geometrically spaced betas from ``beta_min`` to 1.

    Geometric spacing puts most steps near beta = 1, where the intermediate distributions of a
    trained RBM change fastest.

    Returns
    -------
    ndarray of float64, shape (n_betas,)
    """
    n = check_int("n_betas", n_betas, 3)
    beta_min = float(beta_min)
    if not 0.0 < beta_min < 1.0:
        raise ValueError(f"beta_min must be in (0, 1) for a geometric schedule, got {beta_min!r}")
    return np.concatenate([[0.0], np.geomspace(beta_min, 1.0, n - 1)])


def piecewise_uniform(edges: Sequence[float], counts: Sequence[int]) -> np.ndarray:
    """Uniform steps inside each interval ``[edges[k], edges[k+1])``, ``counts[k]`` betas in it.

    The last interval is closed, so the schedule ends exactly at ``edges[-1]``.

    Parameters
    ----------
    edges : sequence of float, length m + 1
        Increasing, from 0 to 1.
    counts : sequence of int, length m
        Betas per interval (each >= 1; the last one >= 2, holding both of its endpoints).

    Returns
    -------
    ndarray of float64, shape (sum(counts),)
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2:
        raise ValueError(f"edges must be a 1-D sequence of at least 2 values, got {edges!r}")
    if e[0] != 0.0 or e[-1] != 1.0 or np.any(np.diff(e) <= 0):
        raise ValueError(f"edges must increase strictly from 0 to 1, got {edges!r}")
    if len(counts) != e.size - 1:
        raise ValueError(f"counts must have one entry per interval ({e.size - 1}), got {len(counts)}")
    parts = []
    for k, c in enumerate(counts):
        last = k == len(counts) - 1
        c = check_int(f"counts[{k}]", c, 2 if last else 1)
        parts.append(np.linspace(e[k], e[k + 1], c, endpoint=last))
    return np.concatenate(parts)


def classic(n_betas: int | None = None) -> np.ndarray:
    """The 14,500-beta schedule of Salakhutdinov & Murray (2008): 500 betas uniformly in
    [0, 0.5), 4000 in [0.5, 0.9) and 10,000 in [0.9, 1].

    Parameters
    ----------
    n_betas : int >= 4, optional
        The same shape with ``n_betas`` betas: 1/29, 8/29 and 20/29 of them in the three pieces
        (rounded; at least 1, 1 and 2). Default: the original 14,500.

    Returns
    -------
    ndarray of float64, shape (n_betas,)
    """
    if n_betas is None:
        return piecewise_uniform(CLASSIC_EDGES, CLASSIC_COUNTS)
    n = check_int("n_betas", n_betas, 4)
    total = sum(CLASSIC_COUNTS)
    first = max(1, round(n * CLASSIC_COUNTS[0] / total))
    second = max(1, round(n * CLASSIC_COUNTS[1] / total))
    return piecewise_uniform(CLASSIC_EDGES, (first, second, n - first - second))


def geometric_ladder(n_temps: int, beta_min: float = 0.1) -> np.ndarray:
    """A tempering ladder: ``n_temps`` geometrically spaced betas from ``beta_min`` to 1.

    Geometric spacing gives equal swap rates between neighbours when the heat capacity does
    not depend on temperature (Kofke 2002), a fair first guess.

    Returns
    -------
    ndarray of float64, shape (n_temps,)
    """
    n = check_int("n_temps", n_temps, 1)
    beta_min = check_finite("beta_min", beta_min)
    if not 0.0 < beta_min <= 1.0:
        raise ValueError(f"beta_min must be in (0, 1], got {beta_min!r}")
    if n == 1:
        return np.ones(1)
    if beta_min == 1.0:
        raise ValueError(f"beta_min must be below 1 for a ladder of {n} distinct temperatures, got 1.0")
    ladder = np.geomspace(beta_min, 1.0, n)
    ladder[-1] = 1.0
    return ladder


def check_schedule(betas) -> np.ndarray:
    """Validate an AIS schedule and return it as a float64 array.

    Raises
    ------
    TypeError
        If ``betas`` does not hold real numbers.
    ValueError
        Unless ``betas`` is 1-D with at least 2 finite entries, non-decreasing, from 0 to 1.
    """
    b = check_real_array("betas", betas)
    if b.ndim != 1 or b.size < 2:
        raise ValueError(f"betas must be a 1-D array of at least 2 inverse temperatures, got shape {b.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError("betas must be finite")
    if b[0] != 0.0 or b[-1] != 1.0:
        raise ValueError(f"an AIS schedule must start at beta = 0 and end at beta = 1, got {b[0]!r} ... {b[-1]!r}")
    steps = np.diff(b)
    if np.any(steps < 0):
        k = int(np.argmax(steps < 0))
        raise ValueError(f"betas must be non-decreasing, but betas[{k + 1}] = {b[k + 1]!r} < betas[{k}] = {b[k]!r}")
    return b


def check_ladder(betas) -> np.ndarray:
    """Validate a tempering ladder and return it as a float64 array.

    Raises
    ------
    TypeError
        If ``betas`` does not hold real numbers.
    ValueError
        Unless ``betas`` is 1-D, non-empty, strictly increasing, in [0, 1] and ends at 1.
    """
    b = check_real_array("betas", betas)
    if b.ndim != 1 or b.size < 1:
        raise ValueError(f"betas must be a 1-D, non-empty array of inverse temperatures, got shape {b.shape}")
    if not np.all(np.isfinite(b)) or b[0] < 0.0:
        raise ValueError(f"tempering betas must be finite and >= 0, got {b!r}")
    if b[-1] != 1.0:
        raise ValueError(f"the last (coldest) tempering beta must be 1, the replica that is returned; got {b[-1]!r}")
    if np.any(np.diff(b) <= 0):
        raise ValueError(f"tempering betas must increase strictly (hottest first), got {b!r}")
    return b
