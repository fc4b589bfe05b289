"""Block Gibbs sampling of masked RBMs: the kernel dispatch and the ``sample`` driver.

A sweep is one block update of the hidden layer given the visible one, then of the visible
layer given the hidden one (v -> h -> v). At inverse temperature ``beta`` the chains sample

    p_beta(v, h)  proportional to  exp(-beta E(v, h) + (1 - beta) sum_i a0_i v_i)

where ``a0`` is an optional base-rate visible bias (zero for plain tempering; the AIS base
model of Salakhutdinov & Murray 2008, eq. 13, otherwise). With ``beta = 1`` this is the RBM.

Kernels are pure: arrays and per-chain keys in, arrays out. Chain ``c`` uses draw indices
``counter + s * (n_hidden + n_visible) + u`` at sweep ``s`` and unit ``u`` (hidden units
first), so results do not depend on the number of threads, and running ``n`` sweeps at once
equals running them in pieces with the counter advanced in between.

:func:`gibbs_kernel` runs one of two fast paths, :mod:`dilution.gibbs_blocked` (dense blocks)
or :mod:`dilution.gibbs_sparse` (CSR, for diluted models), chosen by :func:`gibbs_path` from the
measured constants of :mod:`dilution.gibbs_tuning`; both draw the same uniforms as the slow
:mod:`dilution.gibbs_reference` kernel they are tested against. The conditionals and the free
energy are in :mod:`dilution.conditionals`.
"""

from __future__ import annotations

import math

import numpy as np

from .blas import gemm_address
from .conditionals import hidden_probabilities  # noqa: F401  (importable from here too, see below)
from .gibbs_blocked import dense_block, gibbs_blocked
from .gibbs_sparse import csr_arrays, gibbs_sparse
from .gibbs_tuning import GATHER_BELOW, SPARSE_BELOW, SPARSE_BLOCK, SPARSE_MIN_CHAINS
from .model import RBM
from .progress import progress_bar
from .rng import chain_keys, derive_seed
from .threads import single_threaded_blas
from .validation import check_binary

__all__ = [
    "sample",
    "gibbs_kernel",
    "gibbs_path",
    "draws_per_sweep",
]

# hidden_probabilities lives in dilution.conditionals; it stays importable from here for the
# callers written when it lived here (tests/dilution/test_training.py).


def draws_per_sweep(n_visible: int, n_hidden: int) -> int:
    """Random numbers one chain consumes per sweep."""
    return n_visible + n_hidden


def gibbs_path(weights: np.ndarray, n_chains: int) -> str:
    """Name of the path :func:`gibbs_kernel` runs: ``"sparse"`` (CSR, connectivity below
    ``SPARSE_BELOW`` and at least ``SPARSE_MIN_CHAINS`` chains) or ``"blocked"`` (dense blocks; per
    block and half-sweep, rows of active units are summed when fewer than ``GATHER_BELOW`` of them
    are active, else a single-threaded GEMM)."""
    return _path(int(np.count_nonzero(weights)), weights.size, n_chains)


def _path(n_nonzero: int, size: int, n_chains: int) -> str:
    density = n_nonzero / max(size, 1)
    return "sparse" if density < SPARSE_BELOW and n_chains >= SPARSE_MIN_CHAINS else "blocked"


def gibbs_kernel(v, weights, weights_t, visible_bias, hidden_bias, beta, base_bias, keys, counter, n_sweeps,
                 path="auto"):
    """Run ``n_sweeps`` block-Gibbs sweeps on every chain.

    Dispatches to the fastest path for the model (module docstring of the paths: README,
    "which path runs when"); results depend only on the arguments, never on the thread count.

    Parameters
    ----------
    v : ndarray, shape (n_chains, n_visible)
        Binary visible states (in the model dtype); not modified.
    weights : ndarray, shape (n_visible, n_hidden)
        Masked weights (zero where there is no connection).
    weights_t : ndarray, shape (n_hidden, n_visible)
        C-contiguous transpose of ``weights``.
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
    path : {"auto", "blocked", "sparse"}
        ``"auto"`` runs :func:`gibbs_path`'s choice; the others force a path (benchmarks, tests).

    Returns
    -------
    v_out : ndarray, shape (n_chains, n_visible)
    h_out : ndarray, shape (n_chains, n_hidden)
        Hidden states sampled in the last sweep (all zero when ``n_sweeps == 0``).
    """
    if path not in ("auto", "blocked", "sparse"):
        raise ValueError(f"path must be 'auto', 'blocked' or 'sparse', got {path!r}")
    dt = weights.dtype
    v = np.ascontiguousarray(v, dtype=dt)
    beta = np.ascontiguousarray(beta, dtype=dt)
    counter = np.uint64(counter)
    n_nonzero = int(np.count_nonzero(weights))
    if path == "auto":
        path = _path(n_nonzero, weights.size, v.shape[0])
    if path == "sparse":
        return gibbs_sparse(v, *csr_arrays(weights, n_nonzero), visible_bias, hidden_bias, beta, base_bias, keys,
                            counter, int(n_sweeps), SPARSE_BLOCK)
    with single_threaded_blas():
        return gibbs_blocked(v, weights, weights_t, visible_bias, hidden_bias, beta, base_bias, keys, counter,
                             int(n_sweeps), dense_block(v.shape[0]), GATHER_BELOW[dt.itemsize], gemm_address(dt))


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
