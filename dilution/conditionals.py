"""Conditional distributions and free energies of a masked RBM at inverse temperature ``beta``.

With energy ``E(v, h) = -a.v - b.h - v W h`` (:mod:`dilution.model`) and a base-rate visible bias
``a0`` (zero unless stated), the tempered family ``p_beta(v, h) ~ exp(-beta E(v, h) + (1 - beta) a0.v)``
has the factorised conditionals

    p(h_j = 1 | v) = sigmoid(beta (b_j + (v W)_j))
    p(v_i = 1 | h) = sigmoid(beta (a_i + (W h)_i) + (1 - beta) a0_i)

and, with the hidden layer summed out, ``p_beta(v) = exp(-F_beta(v)) / Z_beta`` with

    F_beta(v) = -beta a.v - (1 - beta) a0.v - sum_j softplus(beta (b_j + (v W)_j))

(Salakhutdinov & Murray 2008, eqs. 11-14). This module holds these formulas once: the scalar
``sigmoid`` and ``softplus`` that every kernel inlines, the batch functions, and the one-chain field
and visible half-sweep kernels that AIS and parallel tempering share.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .rng import uniform32, uniform64
from .threads import sized_kernel

__all__ = [
    "sigmoid",
    "softplus",
    "hidden_probabilities",
    "hidden_row",
    "visible_probabilities",
    "free_energy",
    "hidden_field",
    "visible_half_sweep",
]


@njit(inline="always", cache=True)
def sigmoid(x):
    """``1 / (1 + exp(-x))`` without overflow for either sign of ``x`` (numba scalar)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@njit(inline="always", cache=True)
def softplus(x):
    """``log(1 + exp(x))`` without overflow for either sign of ``x`` (numba scalar)."""
    if x > 0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@sized_kernel()
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
    n = v.shape[0]
    n_hidden = weights.shape[1]
    out = np.empty((n, n_hidden), dtype=weights.dtype)
    for s in prange(n):
        hidden_row(v[s], weights, hidden_bias, beta, np.empty(n_hidden, dtype=weights.dtype), out[s])
    return out


@njit(inline="always", cache=True)
def hidden_row(v, weights, hidden_bias, beta, field, out):
    """``p(h_j = 1 | v)`` of one visible state into ``out`` (shape (n_hidden,)), ``field`` a scratch row.

    The rows of the active visible units are added to the bias in index order; every kernel that
    needs the same numbers (the trainer's, NCG's fused loop) calls this.
    """
    # element loops, not slice assignment: the latter compiles numba's shape-mismatch message
    # formatting (seconds of string code) into every serial kernel that uses it
    for j in range(field.shape[0]):
        field[j] = hidden_bias[j]
    for i in range(v.shape[0]):
        x = v[i]
        if x != 0:
            for j in range(field.shape[0]):
                field[j] += x * weights[i, j]
    for j in range(field.shape[0]):
        out[j] = sigmoid(beta * field[j])


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


@sized_kernel()
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
            acc += softplus(beta * f[j])
        out[s] = -lin - acc
    return out


@njit(inline="always", cache=True)
def hidden_field(vc, weights, hidden_bias, fh):
    """Hidden field ``b + v W`` of one binary state ``vc`` into ``fh`` (rows of active visible
    units summed; ``weights`` may have padded rows, only ``fh.shape[0]`` columns are read)."""
    for j in range(fh.shape[0]):
        fh[j] = hidden_bias[j]
    for i in range(vc.shape[0]):
        if vc[i] != 0:
            row = weights[i]
            for j in range(fh.shape[0]):
                fh[j] += row[j]


@njit(inline="always", cache=True)
def visible_half_sweep(out, hc, weights_t, visible_bias, base_bias, bt, key, start, fv, single):
    """Visible half-sweep of one chain at inverse temperature ``bt``: field
    ``bt (a + W h) + (1 - bt) a0`` into ``fv`` from the rows of active hidden units, then
    ``out[i] = u_i < sigmoid(field_i)`` with ``u_i`` draw ``start + i`` of stream ``key``
    (24-bit uniforms when ``single``, else 53-bit)."""
    one = fv.dtype.type(1.0)
    zero = fv.dtype.type(0.0)
    for i in range(fv.shape[0]):
        fv[i] = bt * visible_bias[i] + (one - bt) * base_bias[i]
    for j in range(hc.shape[0]):
        if hc[j] != zero:
            row = weights_t[j]
            for i in range(fv.shape[0]):
                fv[i] += bt * row[i]
    for i in range(fv.shape[0]):
        p = sigmoid(fv[i])
        if single:
            u = uniform32(key, start + np.uint64(i))
        else:
            u = uniform64(key, start + np.uint64(i))
        out[i] = one if u < p else zero
