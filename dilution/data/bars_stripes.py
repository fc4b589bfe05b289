"""Bars-and-stripes: the classic tiny benchmark with a known data distribution.

An n x n pattern is a *stripes* pattern (a subset of the rows on) or a *bars* pattern (a subset
of the columns on). The empty and the full grid are both, and are counted **once**: there are
``2**(n+1) - 2`` distinct patterns and the data distribution is uniform over them, so its
entropy is ``log(2**(n+1) - 2)`` (the convention of e.g. Fischer & Igel 2010; MacKay 2003
draws the orientation first, which doubles the weight of the two shared patterns).

Pixel ``(r, c)`` is visible unit ``u = r * n + c`` (row-major) and a pattern's code is
``sum_u v_u 2**u``, the state index of :func:`dilution.exact.all_states` and
:func:`dilution.exact.log_prob_visible`, so exact KL divergences are one vector operation.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from ..rng import derive_seed
from ..validation import check_int

__all__ = [
    "MAX_SIZE",
    "n_patterns",
    "patterns",
    "codes",
    "distribution",
    "log_prob_visible",
    "entropy",
    "kl_divergence",
    "sample",
    "dataset",
    "reference_layout",
]

MAX_SIZE = 7  # 49 pixels: codes fit in int64
_PATTERN_ATTRS = {"long_name": "bars-and-stripes pattern (1 = pixel on)", "units": "1"}


def _check_size(n) -> int:
    return check_int("bars-and-stripes size n", n, low=1, high=MAX_SIZE)


def n_patterns(n: int) -> int:
    """Number of distinct n x n patterns: ``2**(n+1) - 2``."""
    return 2 ** (_check_size(n) + 1) - 2


def patterns(n: int) -> np.ndarray:
    """Every distinct pattern once, sorted by code.

    Returns
    -------
    ndarray of uint8, shape (2**(n+1) - 2, n*n)
        Row-major flattened n x n images.
    """
    n = _check_size(n)
    subsets = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.uint8)  # (2**n, n)
    stripes = np.repeat(subsets[:, :, None], n, axis=2)  # row r on when subset bit r is set
    bars = np.repeat(subsets[:, None, :], n, axis=1)  # column c on when subset bit c is set
    every = np.concatenate([stripes, bars]).reshape(-1, n * n)
    unique = np.unique(every, axis=0)
    return unique[np.argsort(_codes_of(unique))]


def _codes_of(states: np.ndarray) -> np.ndarray:
    return (states.astype(np.int64) << np.arange(states.shape[1], dtype=np.int64)).sum(axis=1)


def codes(n: int) -> np.ndarray:
    """State indices ``sum_u v_u 2**u`` of the patterns, ascending.

    Returns
    -------
    ndarray of int64, shape (2**(n+1) - 2,)
    """
    return _codes_of(patterns(n))


def distribution(n: int) -> xr.Dataset:
    """The exact data distribution as a Dataset.

    Returns
    -------
    xarray.Dataset
        ``images`` (sample, row, col) uint8, one per distinct pattern; ``probability``
        (sample), uniform; ``code`` (sample) state index; attrs ``n``, ``entropy``.
    """
    pats = patterns(n)
    k = pats.shape[0]
    return xr.Dataset(
        {
            "images": (("sample", "row", "col"), pats.reshape(k, n, n), _PATTERN_ATTRS),
            "probability": ("sample", np.full(k, 1.0 / k),
                            {"long_name": "probability under the data distribution", "units": "1"}),
        },
        coords={"code": ("sample", _codes_of(pats),
                         {"long_name": "state index sum_u v_u 2**u, u = row * n + col", "units": "1"})},
        attrs={"source": "bars-and-stripes", "n": int(n), "entropy": entropy(n), "entropy_units": "nats",
               "convention": "distinct patterns, uniform; empty and full grids counted once"},
    )


def log_prob_visible(n: int) -> np.ndarray:
    """log P(v) of every state of the n*n pixels (``-inf`` off the patterns), order of ``all_states``.

    Returns
    -------
    ndarray of float64, shape (2**(n*n),)
    """
    n = _check_size(n)
    if n * n > 24:
        raise ValueError(f"log_prob_visible lists 2**(n*n) states; n={n} gives 2**{n * n} (max n=4)")
    out = np.full(2 ** (n * n), -np.inf)
    out[codes(n)] = -math.log(n_patterns(n))
    return out


def entropy(n: int) -> float:
    """Entropy of the data distribution, ``log(2**(n+1) - 2)`` nats."""
    return math.log(n_patterns(n))


def kl_divergence(n: int, model_log_prob) -> float:
    """``KL(P_data || Q_model)`` in nats from the model's log-probabilities of every state.

    Parameters
    ----------
    n : int
    model_log_prob : array_like, shape (2**(n*n),)
        ``log Q(v)`` in the order of ``dilution.exact.all_states``, e.g. ``exact.log_prob_visible(rbm)``.
    """
    n = _check_size(n)
    lq = np.asarray(model_log_prob, dtype=np.float64)
    if lq.shape != (2 ** (n * n),):
        raise ValueError(f"model_log_prob must have shape ({2 ** (n * n)},) for n={n}, got {lq.shape}")
    if np.isnan(lq).any():
        raise ValueError("model_log_prob contains NaN")
    return float(np.mean(-math.log(n_patterns(n)) - lq[codes(n)]))


def sample(n: int, n_samples: int, *, seed: int) -> np.ndarray:
    """i.i.d. draws from the uniform distribution over the distinct patterns.

    Returns
    -------
    ndarray of uint8, shape (n_samples, n*n)
    """
    n_samples = check_int("n_samples", n_samples, low=1)
    pats = patterns(n)
    rng = np.random.default_rng(derive_seed(seed, "bars-and-stripes"))
    return pats[rng.integers(pats.shape[0], size=int(n_samples))]


def dataset(n: int, n_samples: int, *, seed: int) -> xr.Dataset:
    """:func:`sample` as a Dataset: ``images`` (sample, row, col) uint8, attrs ``n``, ``seed``, ``entropy``."""
    v = sample(n, n_samples, seed=seed)
    return xr.Dataset(
        {"images": (("sample", "row", "col"), v.reshape(-1, n, n), _PATTERN_ATTRS)},
        coords={"sample": ("sample", np.arange(v.shape[0], dtype=np.int64),
                           {"long_name": "index of the draw", "units": "1"})},
        attrs={"source": "bars-and-stripes", "n": int(n), "sample_seed": int(seed), "entropy": entropy(n),
               "entropy_units": "nats", "convention": "distinct patterns, uniform; empty and full grids counted once"},
    )


def reference_layout(n: int) -> np.ndarray:
    """The training set of the NCG reference code (``Data.cpp``, ``DataDistribution::BAS``), in its order.

    All ``2**n`` row subsets, counting in binary with row 0 as the lowest bit; each gives its
    stripes pattern (rows of the subset on) followed by its bars pattern (columns of the
    subset on). The empty and the full grid therefore appear twice: ``2**(n+1)`` rows. Train on
    them in this fixed order (no shuffling) to match the reference.

    Returns
    -------
    ndarray of uint8, shape (2**(n+1), n*n)
        Row-major flattened n x n images.
    """
    n = _check_size(n)
    subsets = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.uint8)  # (2**n, n), row 0 lowest
    stripes = np.repeat(subsets[:, :, None], n, axis=2).reshape(-1, n * n)
    bars = np.repeat(subsets[:, None, :], n, axis=1).reshape(-1, n * n)
    return np.stack([stripes, bars], axis=1).reshape(-1, n * n)
