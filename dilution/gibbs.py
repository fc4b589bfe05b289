"""Block Gibbs sampling of masked RBMs: numba kernels and the ``sample`` driver.

A sweep is one block update of the hidden layer given the visible one, then of the visible
layer given the hidden one (v -> h -> v). At inverse temperature ``beta`` the chains sample

    p_beta(v, h)  proportional to  exp(-beta E(v, h) + (1 - beta) sum_i a0_i v_i)

where ``a0`` is an optional base-rate visible bias (zero for plain tempering; the AIS base
model of Salakhutdinov & Murray 2008, eq. 13, otherwise). With ``beta = 1`` this is the RBM.

Kernels are pure: arrays and per-chain keys in, arrays out. Chain ``c`` uses draw indices
``counter + s * (n_hidden + n_visible) + u`` at sweep ``s`` and unit ``u`` (hidden units
first), so results do not depend on the number of threads, and running ``n`` sweeps at once
equals running them in pieces with the counter advanced in between.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .model import RBM
from .progress import progress_bar
from .rng import chain_keys, derive_seed, uniform64

__all__ = [
    "sample",
    "gibbs_kernel",
    "hidden_probabilities",
    "visible_probabilities",
    "free_energy",
    "draws_per_sweep",
    "check_binary",
]


@njit(inline="always", cache=True)
def _sigmoid(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@njit(inline="always", cache=True)
def _softplus(x):
    if x > 0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


def draws_per_sweep(n_visible: int, n_hidden: int) -> int:
    """Random numbers one chain consumes per sweep."""
    return n_visible + n_hidden


@njit(parallel=True, cache=True)
def gibbs_kernel(v, weights, weights_t, visible_bias, hidden_bias, beta, base_bias, keys, counter, n_sweeps):
    """Run ``n_sweeps`` block-Gibbs sweeps on every chain.

    Parameters
    ----------
    v : ndarray, shape (n_chains, n_visible)
        Binary visible states (in the model dtype); not modified.
    weights : ndarray, shape (n_visible, n_hidden)
    weights_t : ndarray, shape (n_hidden, n_visible)
        C-contiguous transpose of ``weights`` (rows of active hidden units are summed).
    visible_bias : ndarray, shape (n_visible,)
    hidden_bias : ndarray, shape (n_hidden,)
    beta : ndarray, shape (n_chains,)
        Inverse temperature of each chain.
    base_bias : ndarray, shape (n_visible,)
        Base-rate visible bias ``a0`` weighted by ``1 - beta``.
    keys : ndarray of uint64, shape (n_chains,)
    counter : uint64
        Index of the first draw of each stream used by this call.
    n_sweeps : int

    Returns
    -------
    v_out : ndarray, shape (n_chains, n_visible)
    h_out : ndarray, shape (n_chains, n_hidden)
        Hidden states sampled in the last sweep (all zero when ``n_sweeps == 0``).
    """
    n_chains, n_visible = v.shape
    n_hidden = weights.shape[1]
    dt = weights.dtype
    v_out = np.empty_like(v)
    h_out = np.zeros((n_chains, n_hidden), dtype=dt)
    stride = np.uint64(n_visible + n_hidden)
    one = dt.type(1.0)
    zero = dt.type(0.0)
    for c in prange(n_chains):
        key = keys[c]
        b = beta[c]
        vc = v[c].copy()
        hc = np.zeros(n_hidden, dtype=dt)
        fh = np.empty(n_hidden, dtype=dt)
        fv = np.empty(n_visible, dtype=dt)
        vbias = np.empty(n_visible, dtype=dt)
        for i in range(n_visible):
            vbias[i] = b * visible_bias[i] + (one - b) * base_bias[i]
        for s in range(n_sweeps):
            start = counter + np.uint64(s) * stride
            fh[:] = hidden_bias
            for i in range(n_visible):
                if vc[i] != zero:
                    row = weights[i]
                    for j in range(n_hidden):
                        fh[j] += row[j]
            for j in range(n_hidden):
                p = _sigmoid(b * fh[j])
                u = uniform64(key, start + np.uint64(j))
                hc[j] = one if u < p else zero
            fv[:] = vbias
            for j in range(n_hidden):
                if hc[j] != zero:
                    row = weights_t[j]
                    for i in range(n_visible):
                        fv[i] += b * row[i]
            start = start + np.uint64(n_hidden)
            for i in range(n_visible):
                p = _sigmoid(fv[i])
                u = uniform64(key, start + np.uint64(i))
                vc[i] = one if u < p else zero
        v_out[c] = vc
        h_out[c] = hc
    return v_out, h_out


@njit(parallel=True, cache=True)
def hidden_probabilities(v, weights, hidden_bias, beta):
    """p(h_j = 1 | v) at inverse temperature ``beta``.

    Parameters
    ----------
    v : ndarray, shape (n, n_visible)
    weights : ndarray, shape (n_visible, n_hidden)
    hidden_bias : ndarray, shape (n_hidden,)
    beta : float

    Returns
    -------
    ndarray, shape (n, n_hidden)
    """
    n, n_visible = v.shape
    n_hidden = weights.shape[1]
    out = np.empty((n, n_hidden), dtype=weights.dtype)
    for s in prange(n):
        f = hidden_bias.copy()
        for i in range(n_visible):
            x = v[s, i]
            if x != 0:
                for j in range(n_hidden):
                    f[j] += x * weights[i, j]
        for j in range(n_hidden):
            out[s, j] = _sigmoid(beta * f[j])
    return out


def visible_probabilities(h, weights_t, visible_bias, beta):
    """p(v_i = 1 | h) at inverse temperature ``beta`` (no base-rate term).

    Parameters
    ----------
    h : ndarray, shape (n, n_hidden)
    weights_t : ndarray, shape (n_hidden, n_visible)
    visible_bias : ndarray, shape (n_visible,)
    beta : float

    Returns
    -------
    ndarray, shape (n, n_visible)
    """
    return hidden_probabilities(h, weights_t, visible_bias, beta)


@njit(parallel=True, cache=True)
def free_energy(v, weights, visible_bias, hidden_bias, beta, base_bias):
    """Free energy with the hidden layer summed out, at inverse temperature ``beta``.

    ``F_beta(v) = -beta a.v - (1 - beta) a0.v - sum_j softplus(beta (b_j + (v W)_j))``, so that
    ``p_beta(v) = exp(-F_beta(v)) / Z_beta``. Computed in float64 whatever the model dtype.

    Parameters
    ----------
    v : ndarray, shape (n, n_visible)
    weights : ndarray, shape (n_visible, n_hidden)
    visible_bias : ndarray, shape (n_visible,)
    hidden_bias : ndarray, shape (n_hidden,)
    beta : float
    base_bias : ndarray, shape (n_visible,)

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    n, n_visible = v.shape
    n_hidden = weights.shape[1]
    out = np.empty(n, dtype=np.float64)
    for s in prange(n):
        f = np.empty(n_hidden, dtype=np.float64)
        for j in range(n_hidden):
            f[j] = hidden_bias[j]
        lin = 0.0
        for i in range(n_visible):
            x = np.float64(v[s, i])
            if x != 0:
                lin += x * (beta * visible_bias[i] + (1.0 - beta) * base_bias[i])
                for j in range(n_hidden):
                    f[j] += x * weights[i, j]
        acc = 0.0
        for j in range(n_hidden):
            acc += _softplus(beta * f[j])
        out[s] = -lin - acc
    return out


def check_binary(name: str, x, n_units: int, dtype: np.dtype) -> np.ndarray:
    """Validate a batch of binary states and return it as a C-contiguous array of ``dtype``.

    Raises
    ------
    ValueError
        If ``x`` is not 2-D with ``n_units`` columns or holds values other than 0 and 1.
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


def _check_beta(beta) -> float:
    b = float(beta)
    if not (math.isfinite(b) and b >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    return b


def sample(
    rbm: RBM,
    n_chains: int,
    n_sweeps: int,
    *,
    seed: int,
    beta: float = 1.0,
    init=None,
    return_hidden: bool = False,
    progress: bool | None = None,
):
    """Draw visible states by block Gibbs sampling of independent chains.

    Parameters
    ----------
    rbm : RBM
    n_chains : int
        Number of independent chains; each returns its last state.
    n_sweeps : int
        Sweeps (v -> h -> v) per chain.
    seed : int
        Fixes the initial states (when ``init`` is None) and every draw. Same seed, same samples,
        whatever the number of threads.
    beta : float
        Inverse temperature.
    init : array_like, shape (n_chains, n_visible), optional
        Binary initial visible states; default uniform random.
    return_hidden : bool
        Also return the hidden states of the last sweep.
    progress : bool, optional
        Show a progress bar; default: when the run is long and stderr is a terminal.

    Returns
    -------
    v : ndarray, shape (n_chains, n_visible), dtype of the model
    h : ndarray, shape (n_chains, n_hidden), only with ``return_hidden``
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a dilution.RBM, got {type(rbm).__name__}")
    for name, value, low in (("n_chains", n_chains, 1), ("n_sweeps", n_sweeps, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    b = _check_beta(beta)
    dt = rbm.dtype
    if init is None:
        rng = np.random.default_rng(derive_seed(seed, "gibbs-init"))
        v = (rng.random((n_chains, rbm.n_visible)) < 0.5).astype(dt)
    else:
        v = check_binary("init", init, rbm.n_visible, dt)
        if v.shape[0] != n_chains:
            raise ValueError(f"init must have {n_chains} rows (one per chain), got {v.shape[0]}")
    keys = chain_keys(derive_seed(seed, "gibbs"), n_chains)
    betas = np.full(n_chains, b, dtype=dt)
    w_t = np.ascontiguousarray(rbm.weights.T)
    base = np.zeros(rbm.n_visible, dtype=dt)
    h = np.zeros((n_chains, rbm.n_hidden), dtype=dt)
    stride = draws_per_sweep(rbm.n_visible, rbm.n_hidden)
    # Chunks keep the progress bar alive; chunking does not change the draws (module docstring).
    work = n_chains * stride * rbm.n_hidden
    chunk = max(1, min(n_sweeps, int(2e9 // max(work, 1)))) if n_sweeps else 0
    done = 0
    with progress_bar(n_sweeps, "Gibbs sweeps", enabled=progress, expected_seconds=work * n_sweeps / 2e9) as bar:
        while done < n_sweeps:
            step = min(chunk, n_sweeps - done)
            v, h = gibbs_kernel(
                v, rbm.weights, w_t, rbm.visible_bias, rbm.hidden_bias, betas, base, keys,
                np.uint64(done * stride), step,
            )
            done += step
            bar.update(step)
    return (v, h) if return_hidden else v
