"""Sufficient statistics of RBM learning: the CD/PCD gradient estimate and the reconstruction error.

The log-likelihood gradient of a binary RBM (Hinton 2002; Fischer & Igel 2014, eqs. 28-30) is

    d<log p(v)>/dW_ij = <v_i h_j>_data - <v_i h_j>_model
    d<log p(v)>/da_i  = <v_i>_data     - <v_i>_model
    d<log p(v)>/db_j  = <h_j>_data     - <h_j>_model

with ``h`` replaced by its conditional mean ``p(h = 1 | v)`` on both sides (Rao-Blackwellisation).
The kernels compute it for *every* visible-hidden pair, masked pairs included: rewiring rules
(NCG) need the gradient on absent connections.

Summation order is fixed (a parallel loop over visible units, a serial loop over samples in
row order), so results are bit-identical for any number of threads. Sums are accumulated in
float64 and returned in the dtype of the inputs. Only nonzero entries of ``v`` are visited,
which skips most of the work for sparse binary data such as MNIST.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .conditionals import sigmoid
from .rng import uniform64
from .threads import sized_kernel

__all__ = ["GradientEstimate", "gradient_statistics", "gradient_row", "reconstruction_errors",
           "csr_reconstruction_errors"]


class GradientEstimate(NamedTuple):
    """An estimate of the mean log-likelihood gradient (ascent direction).

    Attributes
    ----------
    weights : ndarray, shape (n_visible, n_hidden)
        ``<v_i h_j>_data - <v_i h_j>_model`` for every pair, masked pairs included.
    visible_bias : ndarray, shape (n_visible,)
    hidden_bias : ndarray, shape (n_hidden,)
    """

    weights: np.ndarray
    visible_bias: np.ndarray
    hidden_bias: np.ndarray


@njit(cache=True)
def _column_means(x, out):
    """Mean over rows of ``x`` into float64 ``out``, rows added in order."""
    n = x.shape[0]
    out[:] = 0.0
    for s in range(n):
        for j in range(x.shape[1]):
            out[j] += x[s, j]
    for j in range(x.shape[1]):
        out[j] /= n


@sized_kernel(lambda v_data, h_data, *_: v_data.shape[1] * h_data.shape[1])
def _gradient_kernel(v_data, h_data, v_model, h_model):
    n_data, n_visible = v_data.shape
    n_model = v_model.shape[0]
    n_hidden = h_data.shape[1]
    dt = h_data.dtype
    grad_w = np.empty((n_visible, n_hidden), dtype=dt)
    inv_data = 1.0 / n_data
    inv_model = 1.0 / n_model
    for i in prange(n_visible):
        gradient_row(i, v_data, h_data, v_model, h_model, np.empty(n_hidden), np.empty(n_hidden), grad_w[i],
                     inv_data, inv_model)
    grad_a, grad_b = _bias_gradients(v_data, h_data, v_model, h_model)
    return grad_w, grad_a, grad_b


@sized_kernel(lambda v_data, h_data, *_: v_data.shape[1] * h_data.shape[1])
def _present_gradient_kernel(v_data, h_data, v_model, h_model, mask):
    """:func:`_gradient_kernel` on the pairs of ``mask`` only (0 elsewhere): each present pair's
    sums are :func:`gradient_row`'s, the same products added in the same order."""
    n_data, n_visible = v_data.shape
    n_model = v_model.shape[0]
    n_hidden = h_data.shape[1]
    dt = h_data.dtype
    grad_w = np.zeros((n_visible, n_hidden), dtype=dt)
    inv_data = 1.0 / n_data
    inv_model = 1.0 / n_model
    # visible units in rows: a unit's samples are contiguous
    vt_data = np.empty((n_visible, n_data), dtype=v_data.dtype)
    vt_model = np.empty((n_visible, n_model), dtype=v_model.dtype)
    for s in range(n_data):
        for i in range(n_visible):
            vt_data[i, s] = v_data[s, i]
    for s in range(n_model):
        for i in range(n_visible):
            vt_model[i, s] = v_model[s, i]
    n_blocks = (n_visible + _ROWS_PER_BLOCK - 1) // _ROWS_PER_BLOCK
    for blk in prange(n_blocks):
        cols = np.empty(n_hidden, dtype=np.int64)
        pos = np.empty(n_hidden)
        neg = np.empty(n_hidden)
        for i in range(blk * _ROWS_PER_BLOCK, min((blk + 1) * _ROWS_PER_BLOCK, n_visible)):
            n_cols = 0
            for j in range(n_hidden):
                if mask[i, j]:
                    cols[n_cols] = j
                    pos[n_cols] = 0.0
                    neg[n_cols] = 0.0
                    n_cols += 1
            if n_cols == 0:
                continue
            for s in range(n_data):
                x = np.float64(vt_data[i, s])
                if x != 0.0:
                    for c in range(n_cols):
                        pos[c] += x * h_data[s, cols[c]]
            for s in range(n_model):
                x = np.float64(vt_model[i, s])
                if x != 0.0:
                    for c in range(n_cols):
                        neg[c] += x * h_model[s, cols[c]]
            for c in range(n_cols):
                grad_w[i, cols[c]] = pos[c] * inv_data - neg[c] * inv_model
    grad_a, grad_b = _bias_gradients(v_data, h_data, v_model, h_model)
    return grad_w, grad_a, grad_b


_ROWS_PER_BLOCK = 64  # scratch allocated per block of visible units, not per unit


@njit(cache=True)
def _bias_gradients(v_data, h_data, v_model, h_model):
    n_visible = v_data.shape[1]
    n_hidden = h_data.shape[1]
    dt = h_data.dtype
    mv_data = np.empty(n_visible)
    mv_model = np.empty(n_visible)
    mh_data = np.empty(n_hidden)
    mh_model = np.empty(n_hidden)
    _column_means(v_data, mv_data)
    _column_means(v_model, mv_model)
    _column_means(h_data, mh_data)
    _column_means(h_model, mh_model)
    grad_a = np.empty(n_visible, dtype=dt)
    for i in range(n_visible):
        grad_a[i] = mv_data[i] - mv_model[i]
    grad_b = np.empty(n_hidden, dtype=dt)
    for j in range(n_hidden):
        grad_b[j] = mh_data[j] - mh_model[j]
    return grad_a, grad_b


@njit(inline="always", cache=True)
def gradient_row(i, v_data, h_data, v_model, h_model, pos, neg, out, inv_data, inv_model):
    """Row ``i`` of ``<v h>_data - <v h>_model`` into ``out``; ``pos``, ``neg`` float64 scratch rows.

    Samples are added in row order and only nonzero ``v`` are visited; every kernel that needs
    the same numbers (the trainer's, NCG's fused loop) calls this.
    """
    pos[:] = 0.0
    neg[:] = 0.0
    for s in range(v_data.shape[0]):
        x = np.float64(v_data[s, i])
        if x != 0.0:
            for j in range(pos.shape[0]):
                pos[j] += x * h_data[s, j]
    for s in range(v_model.shape[0]):
        x = np.float64(v_model[s, i])
        if x != 0.0:
            for j in range(neg.shape[0]):
                neg[j] += x * h_model[s, j]
    for j in range(out.shape[0]):
        out[j] = pos[j] * inv_data - neg[j] * inv_model


def gradient_statistics(v_data, h_data, v_model, h_model, mask=None) -> GradientEstimate:
    """Gradient estimate ``<v h>_data - <v h>_model`` and the bias gradients.

    Parameters
    ----------
    v_data : ndarray, shape (n_data, n_visible)
        Visible states of the positive phase (usually binary).
    h_data : ndarray, shape (n_data, n_hidden)
        Hidden activations paired with ``v_data``, usually ``p(h = 1 | v_data)``.
    v_model : ndarray, shape (n_model, n_visible)
        Visible states of the negative phase (chains after k sweeps, or exact model samples).
    h_model : ndarray, shape (n_model, n_hidden)
        Hidden activations paired with ``v_model``, usually ``p(h = 1 | v_model)``.

    mask : ndarray of bool, shape (n_visible, n_hidden), optional
        Given: the weight gradient on these pairs only, 0 on the others (the same bits on the
        pairs of the mask; a diluted model's update skips most of the work). For callers whose
        rule never reads the gradient of an absent pair (:mod:`dilution.connectivity`).

    All arrays must share one float dtype, which is the dtype of the result. ``n_data`` and
    ``n_model`` may differ (PCD with more chains than the batch).

    Returns
    -------
    GradientEstimate
    """
    arrays = (v_data, h_data, v_model, h_model)
    names = ("v_data", "h_data", "v_model", "h_model")
    for name, x in zip(names, arrays):
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} must be a 2-D float32 or float64 ndarray, got {_describe(x)}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} must have at least one row, got shape {x.shape}")
    if len({x.dtype for x in arrays}) != 1:
        raise TypeError(f"all inputs must share one dtype, got {[x.dtype.name for x in arrays]}")
    if v_data.shape[1] != v_model.shape[1] or h_data.shape[1] != h_model.shape[1]:
        raise ValueError(
            f"data and model layers differ: v {v_data.shape[1]} vs {v_model.shape[1]}, "
            f"h {h_data.shape[1]} vs {h_model.shape[1]}"
        )
    if v_data.shape[0] != h_data.shape[0] or v_model.shape[0] != h_model.shape[0]:
        raise ValueError(
            f"v and h must have the same number of rows: data {v_data.shape[0]} vs {h_data.shape[0]}, "
            f"model {v_model.shape[0]} vs {h_model.shape[0]}"
        )
    arrays = tuple(np.ascontiguousarray(x) for x in arrays)
    if mask is None:
        return GradientEstimate(*_gradient_kernel(*arrays))
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.shape != (v_data.shape[1], h_data.shape[1]):
        raise ValueError(f"mask must be a bool array of shape {(v_data.shape[1], h_data.shape[1])}, got "
                         f"{_describe(mask)}")
    return GradientEstimate(*_present_gradient_kernel(*arrays, np.ascontiguousarray(mask)))


@sized_kernel(lambda v, h_prob, weights_t, *_: weights_t.size)
def reconstruction_errors(v, h_prob, weights_t, visible_bias, keys, counter):
    """Squared reconstruction error of each sample, per visible unit.

    The reconstruction of ``v`` is ``p(v' = 1 | h)`` with ``h`` sampled from ``h_prob``
    (Hinton 2010, "A practical guide to training RBMs", sec. 5). Sample ``s`` uses draws
    ``counter + j`` of stream ``keys[s]`` for hidden unit ``j``.

    Parameters
    ----------
    v : ndarray, shape (n, n_visible)
    h_prob : ndarray, shape (n, n_hidden)
        ``p(h = 1 | v)``.
    weights_t : ndarray, shape (n_hidden, n_visible)
        C-contiguous transpose of the (masked) weights.
    visible_bias : ndarray, shape (n_visible,)
    keys : ndarray of uint64, shape (n,)
    counter : uint64

    Returns
    -------
    ndarray of float64, shape (n,)
        ``mean_i (v_i - p(v'_i = 1 | h))**2`` for each sample.
    """
    n, n_visible = v.shape
    n_hidden = h_prob.shape[1]
    out = np.empty(n)
    for s in prange(n):
        key = keys[s]
        field = visible_bias.copy()
        for j in range(n_hidden):
            if uniform64(key, counter + np.uint64(j)) < h_prob[s, j]:
                row = weights_t[j]
                for i in range(n_visible):
                    field[i] += row[i]
        out[s] = _squared_error(v[s], field)
    return out


@sized_kernel(lambda v, h_prob, indptr_t, indices_t, *_: v.shape[0] * indices_t.shape[0])
def csr_reconstruction_errors(v, h_prob, indptr_t, indices_t, data_t, visible_bias, keys, counter):
    """:func:`reconstruction_errors` from the CSR of the transposed weights, bit for bit.

    Per visible unit the same rows are added in the same (hidden-unit) order, less the zero
    weights, whose terms leave the field unchanged; the cost follows the connections.

    Parameters
    ----------
    v, h_prob, visible_bias, keys, counter
        As :func:`reconstruction_errors`.
    indptr_t, indices_t, data_t : ndarray
        CSR of ``W^T`` (rows = hidden units), as :func:`dilution.gibbs_sparse.csr_arrays` returns it.
    """
    n, n_visible = v.shape
    n_hidden = h_prob.shape[1]
    out = np.empty(n)
    for s in prange(n):
        key = keys[s]
        field = visible_bias.copy()
        for j in range(n_hidden):
            if uniform64(key, counter + np.uint64(j)) < h_prob[s, j]:
                for k in range(indptr_t[j], indptr_t[j + 1]):
                    field[indices_t[k]] += data_t[k]
        out[s] = _squared_error(v[s], field)
    return out


@njit(inline="always", cache=True)
def _squared_error(v, field):
    """``mean_i (v_i - sigmoid(field_i))**2`` of one sample."""
    acc = 0.0
    for i in range(v.shape[0]):
        d = np.float64(v[i]) - sigmoid(np.float64(field[i]))
        acc += d * d
    return acc / v.shape[0]


def _describe(x) -> str:
    if isinstance(x, np.ndarray):
        return f"ndarray of {x.dtype} with shape {x.shape}"
    return type(x).__name__
