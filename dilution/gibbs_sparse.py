"""The sparse Gibbs path for diluted models: CSR of the weights, chains along the SIMD dimension.

The nonzero weights are stored twice in CSR form (rows = visible units for the hidden field,
and the transpose for the visible one). Chains of a block sit in the inner, vectorised dimension
and a unit inactive in every chain of the block is skipped, so the cost of a half-sweep follows
the number of active connections.

The CSR *structure* (row pointers, column indices) depends only on where the nonzero weights
are, which changes only when the mask does; the *values* change at every training update.
:func:`csr_arrays` therefore keeps the structures of the few most recent nonzero patterns and,
when the weights it gets have one of them (checked exactly: the same count of nonzeros, all of
them at the stored positions), only gathers the values. Callers need not pass anything: the
training loop, which hands over fresh weight arrays at every update, gets the hit.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .conditionals import sigmoid
from .fastexp import FAST_JIT, exp_neg
from .rng import uniform64
from .threads import sized_kernel

__all__ = ["gibbs_sparse", "CSRPattern", "csr_pattern", "csr_arrays", "csr_hidden_probabilities", "sample_block",
           "RECENT_PATTERNS"]

# Nonzero patterns whose CSR structure is kept: enough for a few models alternating (AIS beside
# training, tempering ladders), small enough to stay negligible (784 x 500 at 5 %: 0.6 MB each).
RECENT_PATTERNS = 4


class CSRPattern(NamedTuple):
    """Where the nonzero weights of a (n_visible, n_hidden) matrix ``W`` are, in CSR form.

    indptr : ndarray of int64, shape (n_visible + 1,)
    indices : ndarray of int64, shape (nnz,)
        Hidden unit of each nonzero of ``W``, row by row.
    flat : ndarray of int64, shape (nnz,)
        Its position in ``W.ravel()`` (row-major), where its value is gathered from.
    indptr_t : ndarray of int64, shape (n_hidden + 1,)
    indices_t : ndarray of int64, shape (nnz,)
        Visible unit of each nonzero of ``W^T``, row by row.
    flat_t : ndarray of int64, shape (nnz,)
        Its position in ``W.ravel()``.
    """

    indptr: np.ndarray
    indices: np.ndarray
    flat: np.ndarray
    indptr_t: np.ndarray
    indices_t: np.ndarray
    flat_t: np.ndarray


def csr_pattern(weights: np.ndarray) -> CSRPattern:
    """The CSR structure of the nonzero entries of ``weights`` and of its transpose.

    Parameters
    ----------
    weights : ndarray, shape (n_visible, n_hidden)

    Returns
    -------
    CSRPattern
    """
    return CSRPattern(*_csr_pattern_kernel(weights))


@njit(cache=True)
def _csr_pattern_kernel(weights):
    # Two passes over the matrix and no sort: a rewiring rule moves the pattern at every update,
    # so this runs once per update (numpy's flatnonzero + stable argsort took 1.5 ms at 784 x 500).
    n_visible, n_hidden = weights.shape
    zero = weights.dtype.type(0.0)
    indptr = np.zeros(n_visible + 1, dtype=np.int64)
    indptr_t = np.zeros(n_hidden + 1, dtype=np.int64)
    for i in range(n_visible):
        count = 0
        for j in range(n_hidden):
            if weights[i, j] != zero:  # NaN counts as nonzero, as in np.flatnonzero
                count += 1
                indptr_t[j + 1] += 1
        indptr[i + 1] = indptr[i] + count
    for j in range(n_hidden):
        indptr_t[j + 1] += indptr_t[j]
    nnz = indptr[n_visible]
    indices = np.empty(nnz, dtype=np.int64)
    flat = np.empty(nnz, dtype=np.int64)
    indices_t = np.empty(nnz, dtype=np.int64)
    flat_t = np.empty(nnz, dtype=np.int64)
    fill = indptr_t[:n_hidden].copy()
    k = 0
    for i in range(n_visible):
        for j in range(n_hidden):
            if weights[i, j] != zero:
                indices[k] = j
                flat[k] = i * n_hidden + j
                k += 1
                # rows visited in order: within a hidden unit the visible units come ascending
                q = fill[j]
                indices_t[q] = i
                flat_t[q] = i * n_hidden + j
                fill[j] = q + 1
    return indptr, indices, flat, indptr_t, indices_t, flat_t


_recent: list[CSRPattern] = []  # most recently used first
_recent_lock = threading.Lock()


def csr_arrays(weights: np.ndarray, n_nonzero: int | None = None) -> tuple[np.ndarray, ...]:
    """CSR of ``weights`` and of its transpose, as :func:`gibbs_sparse` takes them.

    The structure comes from a recent call when the nonzeros of ``weights`` sit exactly where they
    sat then (module docstring); only the values are gathered.

    Parameters
    ----------
    weights : ndarray, shape (n_visible, n_hidden)
    n_nonzero : int, optional
        ``np.count_nonzero(weights)``, when the caller has it already.

    Returns
    -------
    indptr, indices, data, indptr_t, indices_t, data_t : ndarray
        Row pointers and column indices (int64) and values (dtype of ``weights``) of ``W`` and
        of ``W^T``.
    """
    if n_nonzero is None:
        n_nonzero = int(np.count_nonzero(weights))
    n_visible, n_hidden = weights.shape
    with _recent_lock:
        candidates = list(_recent)
    for pattern in candidates:
        if (pattern.indptr.shape[0] != n_visible + 1 or pattern.indptr_t.shape[0] != n_hidden + 1
                or pattern.flat.shape[0] != n_nonzero):
            continue
        data = weights.take(pattern.flat)
        # As many nonzeros as the pattern and all of them at its positions: the same set.
        if data.all():
            break
    else:
        pattern = csr_pattern(weights)
        data = weights.take(pattern.flat)
    with _recent_lock:
        _recent[:] = [pattern, *(p for p in _recent if p is not pattern)][:RECENT_PATTERNS]
    return pattern.indptr, pattern.indices, data, pattern.indptr_t, pattern.indices_t, weights.take(pattern.flat_t)


@sized_kernel(lambda v, indptr, indices, *_: v.shape[0] * indices.shape[0])
def csr_hidden_probabilities(v, indptr, indices, data, hidden_bias, beta):
    """:func:`dilution.conditionals.hidden_probabilities` from the CSR of the weights, bit for bit.

    Per hidden unit the same products are added in the same (visible-unit) order as
    :func:`dilution.conditionals.hidden_row` adds them, less the zero weights, whose terms leave
    a sum unchanged; so the result is the dense kernel's to the last bit, at a cost that follows
    the number of connections.

    Parameters
    ----------
    v : ndarray, shape (n, n_visible)
    indptr, indices, data : ndarray
        CSR of the weights (rows = visible units), as :func:`csr_arrays` returns them.
    hidden_bias : ndarray, shape (n_hidden,)
    beta : float

    Returns
    -------
    ndarray, shape (n, n_hidden), dtype of ``data``
    """
    n, n_visible = v.shape
    n_hidden = hidden_bias.shape[0]
    out = np.empty((n, n_hidden), dtype=data.dtype)
    for s in prange(n):
        field = np.empty(n_hidden, dtype=data.dtype)
        for j in range(n_hidden):
            field[j] = hidden_bias[j]
        for i in range(n_visible):
            x = v[s, i]
            if x != 0:
                for k in range(indptr[i], indptr[i + 1]):
                    field[indices[k]] += x * data[k]
        for j in range(n_hidden):
            out[s, j] = sigmoid(beta * field[j])
    return out


# The blocked path's sample_row draws one chain's row of units; this path keeps the chains of a
# block in the inner dimension, so it draws a whole (units, chains) block after one exp pass.
@njit(inline="always", cache=True, **FAST_JIT)
def sample_block(x, out, keys, start, ef, eb):
    """``out[u, c] = 1`` iff draw ``start + u`` of stream ``keys[c]`` is below ``sigmoid(x[u, c])``;
    units in rows, chains in columns (one vectorised exp pass over the whole block)."""
    n_units, m = x.shape
    n = n_units * m
    exp_neg(x.reshape(n), ef[:n], eb[:n])
    one = x.dtype.type(1.0)
    zero = x.dtype.type(0.0)
    for u in range(n_units):
        index = start + np.uint64(u)
        for c in range(m):
            p = one / (one + ef[u * m + c] * eb[u * m + c])
            out[u, c] = one if uniform64(keys[c], index) < p else zero


@njit(parallel=True, cache=True, **FAST_JIT)
def gibbs_sparse(v, indptr, indices, data, indptr_t, indices_t, data_t, visible_bias, hidden_bias, beta,
                  base_bias, keys, counter, n_sweeps, block):
    """Diluted path: CSR of the mask (rows = visible) and of its transpose, chains of a block in the
    inner (SIMD) dimension; a visible (hidden) unit inactive in every chain of the block is skipped,
    so the cost follows the number of active connections."""
    n_chains, n_visible = v.shape
    n_hidden = indptr_t.shape[0] - 1
    dt = v.dtype
    v_out = np.empty_like(v)
    h_out = np.zeros((n_chains, n_hidden), dtype=dt)
    stride = np.uint64(n_visible + n_hidden)
    n_blocks = (n_chains + block - 1) // block
    one = dt.type(1.0)
    zero = dt.type(0.0)
    for blk in prange(n_blocks):
        c0 = blk * block
        c1 = min(c0 + block, n_chains)
        m = c1 - c0
        vt = np.empty((n_visible, m), dtype=dt)
        for r in range(m):
            for i in range(n_visible):
                vt[i, r] = v[c0 + r, i]
        ht = np.zeros((n_hidden, m), dtype=dt)
        fh = np.empty((n_hidden, m), dtype=dt)
        fv = np.empty((n_visible, m), dtype=dt)
        bt = np.empty(m, dtype=dt)
        kb = keys[c0:c1].copy()
        vbias = np.empty((n_visible, m), dtype=dt)
        for r in range(m):
            bt[r] = beta[c0 + r]
        for i in range(n_visible):
            for r in range(m):
                vbias[i, r] = bt[r] * visible_bias[i] + (one - bt[r]) * base_bias[i]
        ef = np.empty(max(n_visible, n_hidden) * m, dtype=dt)
        eb = np.empty(max(n_visible, n_hidden) * m, dtype=dt)
        for s in range(n_sweeps):
            start = counter + np.uint64(s) * stride
            for j in range(n_hidden):
                for r in range(m):
                    fh[j, r] = hidden_bias[j]
            for i in range(n_visible):
                si = vt[i]
                active = False
                for r in range(m):
                    active |= si[r] != zero
                if active:
                    for k in range(indptr[i], indptr[i + 1]):
                        w = data[k]
                        fj = fh[indices[k]]
                        for r in range(m):
                            fj[r] += w * si[r]
            for j in range(n_hidden):
                fj = fh[j]
                for r in range(m):
                    fj[r] = bt[r] * fj[r]
            sample_block(fh, ht, kb, start, ef, eb)
            start = start + np.uint64(n_hidden)
            fv[:] = zero
            for j in range(n_hidden):
                sj = ht[j]
                active = False
                for r in range(m):
                    active |= sj[r] != zero
                if active:
                    for k in range(indptr_t[j], indptr_t[j + 1]):
                        w = data_t[k]
                        fi = fv[indices_t[k]]
                        for r in range(m):
                            fi[r] += w * sj[r]
            for i in range(n_visible):
                fi = fv[i]
                vi = vbias[i]
                for r in range(m):
                    fi[r] = vi[r] + bt[r] * fi[r]
            sample_block(fv, vt, kb, start, ef, eb)
        for r in range(m):
            for i in range(n_visible):
                v_out[c0 + r, i] = vt[i, r]
            for j in range(n_hidden):
                h_out[c0 + r, j] = ht[j, r]
    return v_out, h_out
