"""Exact partition function, likelihood and likelihood gradient by enumeration.

The sum over the joint states factorises over the larger layer, so only the smaller layer
(``n_e = min(n_visible, n_hidden)`` units) is enumerated:

    Z = sum_{s in {0,1}^n_e} exp( e.s + sum_k softplus(o_k + (s W_e)_k) )

where ``e`` is the bias of the enumerated layer, ``o`` that of the other layer and ``W_e`` the
weights seen from the enumerated layer. States are visited in Gray-code order inside blocks of
``2**BLOCK_BITS``: one flipped unit updates the fields in O(n_other); each block starts from an
exactly computed field, which bounds round-off drift and fixes the summation order whatever
the number of threads. Everything is computed in float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .conditionals import free_energy, sigmoid, softplus
from .model import RBM
from .statistics import GradientEstimate
from .validation import check_binary, check_finite, check_int

__all__ = [
    "MAX_UNITS",
    "log_partition",
    "log_likelihood",
    "log_prob_visible",
    "gradient",
    "model_moments",
    "all_states",
]

# Largest smaller layer enumerated unless a caller raises ``max_units``: the default of every
# function here and of every driver that chooses between exact values and AIS (training
# checkpoints, the CLIs, the exact gradient estimator). 2**25 states take ~5 s for log Z at
# 784 x 25 (README, "Speed"); moments and gradients cost about n_e times more per state.
MAX_UNITS = 25
BLOCK_BITS = 12


def _enumeration_view(rbm: RBM, max_units: int):
    """(W_e, e_bias, o_bias, enumerating_hidden) in float64, with the size check."""
    max_units = check_int("max_units", max_units, low=1)
    n_e = min(rbm.n_visible, rbm.n_hidden)
    if n_e > max_units:
        raise ValueError(
            f"exact enumeration needs 2**{n_e} states (smaller layer of {rbm.n_visible} x {rbm.n_hidden} RBM), "
            f"above the limit of {max_units} units; estimate log Z with dilution.ais.log_partition instead "
            f"(or raise max_units if you can wait for 2**{n_e} terms)"
        )
    w = rbm.weights.astype(np.float64)
    a = rbm.visible_bias.astype(np.float64)
    b = rbm.hidden_bias.astype(np.float64)
    if rbm.n_hidden <= rbm.n_visible:
        return np.ascontiguousarray(w.T), b, a, True
    return np.ascontiguousarray(w), a, b, False


@njit(inline="always", cache=True)
def _block_start(block, low_bits, w_e, e_bias, o_bias, field):
    """Exact field and linear term of the first state of ``block`` (its high bits set)."""
    n_e, n_o = w_e.shape
    for k in range(n_o):
        field[k] = o_bias[k]
    lin = 0.0
    for u in range(low_bits, n_e):
        if (block >> (u - low_bits)) & 1:
            lin += e_bias[u]
            for k in range(n_o):
                field[k] += w_e[u, k]
    return lin


@njit(inline="always", cache=True)
def _gray_step(g, state, e_bias, w_e, field):
    """Flip the unit Gray code flips at step ``g >= 1``: update ``state`` and ``field`` in place
    and return the change of the linear term ``e_bias . state``."""
    u = 0
    while not (g >> u) & 1:
        u += 1
    sign = -1.0 if state[u] else 1.0
    state[u] = not state[u]
    for k in range(field.shape[0]):
        field[k] += sign * w_e[u, k]
    return sign * e_bias[u]


@njit(inline="always", cache=True)
def _state_value(lin, field):
    acc = lin
    for k in range(field.shape[0]):
        acc += softplus(field[k])
    return acc


@njit(inline="always", cache=True)
def _lse_push(m, s, x):
    """Add ``exp(x)`` to the running sum ``s * exp(m)`` without overflow; returns the new (m, s)."""
    if x > m:
        return x, s * math.exp(m - x) + 1.0
    return m, s + math.exp(x - m)


@njit(cache=True)
def _combine_blocks(block_max, block_sum):
    """log of ``sum_b block_sum[b] * exp(block_max[b])``, blocks added in index order."""
    top = block_max.max()
    total = 0.0
    for blk in range(block_max.shape[0]):
        total += block_sum[blk] * math.exp(block_max[blk] - top)
    return top + math.log(total)


@njit(parallel=True, cache=True)
def _log_partition_kernel(w_e, e_bias, o_bias, block_bits):
    n_e, n_o = w_e.shape
    low_bits = min(n_e, block_bits)
    n_blocks = 1 << (n_e - low_bits)
    n_steps = 1 << low_bits
    block_max = np.empty(n_blocks)
    block_sum = np.empty(n_blocks)
    for blk in prange(n_blocks):
        field = np.empty(n_o)
        state = np.zeros(low_bits, dtype=np.bool_)
        lin = _block_start(blk, low_bits, w_e, e_bias, o_bias, field)
        m = _state_value(lin, field)
        s = 1.0
        for g in range(1, n_steps):
            lin += _gray_step(g, state, e_bias, w_e, field)
            x = _state_value(lin, field)
            m, s = _lse_push(m, s, x)
        block_max[blk] = m
        block_sum[blk] = s
    return _combine_blocks(block_max, block_sum)


_LN2 = math.log(2.0)
_RENORM_LOG2 = 1000.0  # a chunk product times a mantissa in [0.5, 1) stays below 2**1000


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract"}, error_model="numpy")
def _log_partition_fused_kernel(w_e, e_bias, o_bias, block_bits, chunk):
    """log Z in product form with long vectorised product chunks.

    ``exp(x_k)`` is carried multiplicatively (a flip multiplies by ``exp(+-W_uk)``), and
    ``prod_k (1 + exp(x_k))`` runs over chunks as long as the bound allows (a reduction the
    compiler vectorises with per-lane partial products: reassoc); after each chunk the running product
    is split into mantissa and binary exponent by ``frexp`` (exact), so one ``log`` per state
    remains. The caller guarantees that no chunk product exceeds ``2**_RENORM_LOG2``. Fields are
    reset exactly at every block start.
    """
    n_e, n_o = w_e.shape
    low_bits = min(n_e, block_bits)
    n_blocks = 1 << (n_e - low_bits)
    n_steps = 1 << low_bits
    n_chunks = (n_o + chunk - 1) // chunk
    # row n_e: factors of 1 for the first state of a block, which flips nothing. Element loops, not
    # np.ones / np.zeros: in a parallel kernel each of those becomes a parallel loop of its own
    # (a second or so of compilation on a cold cache).
    table = np.empty((2 * n_e + 1, n_o))
    for k in range(n_o):
        table[2 * n_e, k] = 1.0
    for u in range(n_e):
        for k in range(n_o):
            table[2 * u, k] = math.exp(w_e[u, k])
            table[2 * u + 1, k] = math.exp(-w_e[u, k])
    block_max = np.empty(n_blocks)
    block_sum = np.empty(n_blocks)
    for blk in prange(n_blocks):
        field = np.empty(n_o)
        ex = np.empty(n_o)
        state = np.empty(low_bits, dtype=np.bool_)
        for u in range(low_bits):
            state[u] = False
        lin = _block_start(blk, low_bits, w_e, e_bias, o_bias, field)
        for k in range(n_o):
            ex[k] = math.exp(field[k])
        m = -np.inf
        s = 0.0
        for g in range(n_steps):
            row = 2 * n_e
            if g > 0:
                u = 0
                while not (g >> u) & 1:
                    u += 1
                if state[u]:
                    lin -= e_bias[u]
                    row = 2 * u + 1
                else:
                    lin += e_bias[u]
                    row = 2 * u
                state[u] = not state[u]
            fac = table[row]
            for k in range(n_o):
                ex[k] *= fac[k]
            mant = 1.0
            n2 = 0
            for c in range(n_chunks):
                # a slice with a loop over its own length is what LLVM vectorises as a reduction
                seg = ex[c * chunk : min(c * chunk + chunk, n_o)]
                q = 1.0
                for k in range(seg.shape[0]):
                    q *= 1.0 + seg[k]
                mant, e2 = math.frexp(mant * q)
                n2 += e2
            x = lin + math.log(mant) + n2 * _LN2
            m, s = _lse_push(m, s, x)
        block_max[blk] = m
        block_sum[blk] = s
    return _combine_blocks(block_max, block_sum)


def _fused_chunk(w_e: np.ndarray, o_bias: np.ndarray) -> int:
    """Longest chunk whose factor products provably stay below ``2**_RENORM_LOG2``, or 0 when a
    single factor ``1 + exp(x_k)`` may overflow."""
    n_o = w_e.shape[1]
    bound = np.abs(o_bias) + np.abs(w_e).sum(axis=0)  # |x_k| over every state
    if bound.max() >= 700.0:
        return 0
    log2_factor = np.logaddexp(0.0, bound) / _LN2
    for chunk in (n_o, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1):
        n_pad = -n_o % chunk
        if np.pad(log2_factor, (0, n_pad)).reshape(-1, chunk).sum(axis=1).max() < _RENORM_LOG2:
            return chunk
    return 0


def log_partition(rbm: RBM, *, max_units: int = MAX_UNITS) -> float:
    """Exact log Z of an RBM whose smaller layer has at most ``max_units`` units.

    Cost: ``2**n_e * n_other`` multiply-adds and ``2**n_e`` logarithms, run in parallel.

    Raises
    ------
    ValueError
        If the smaller layer is larger than ``max_units`` (the message points to AIS).
    """
    _check_rbm(rbm)
    return _log_z(*_enumeration_view(rbm, max_units)[:3])


def _log_z(w_e: np.ndarray, e_bias: np.ndarray, o_bias: np.ndarray) -> float:
    """log Z from the enumeration view: product form when its bound allows, softplus otherwise."""
    chunk = _fused_chunk(w_e, o_bias)
    if chunk:
        return float(_log_partition_fused_kernel(w_e, e_bias, o_bias, BLOCK_BITS, chunk))
    # Fields too large for the product form (|x| near 700, where exp overflows): softplus per term.
    return float(_log_partition_kernel(w_e, e_bias, o_bias, BLOCK_BITS))


def log_likelihood(rbm: RBM, data, *, log_z: float | None = None, max_units: int = MAX_UNITS) -> np.ndarray:
    """Exact log p(v) of each row of ``data``: ``-F(v) - log Z``.

    Parameters
    ----------
    rbm : RBM
    data : array_like, shape (n, n_visible)
        Binary visible states.
    log_z : float, optional
        A precomputed ``log_partition(rbm)``, to avoid enumerating again.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    _check_rbm(rbm)
    v = check_binary("data", data, rbm.n_visible, np.float64)
    log_z = log_partition(rbm, max_units=max_units) if log_z is None else check_finite("log_z", log_z)
    w = rbm.weights.astype(np.float64)
    a = rbm.visible_bias.astype(np.float64)
    f = free_energy(v, w, a, rbm.hidden_bias.astype(np.float64), 1.0, np.zeros_like(a))
    return -f - log_z


def all_states(n_units: int) -> np.ndarray:
    """All binary states of ``n_units`` units; row ``k`` has bit ``u`` of ``k`` in column ``u``.

    Returns
    -------
    ndarray of float64, shape (2**n_units, n_units)
    """
    if check_int("n_units", n_units, low=0) > 24:
        raise ValueError(f"all_states materialises 2**n_units rows; n_units={n_units} is too many (max 24)")
    codes = np.arange(2**n_units, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n_units)) & 1).astype(np.float64)


def log_prob_visible(rbm: RBM) -> np.ndarray:
    """Exact log p(v) of every visible state, indexed as in :func:`all_states`.

    Returns
    -------
    ndarray of float64, shape (2**n_visible,)
    """
    _check_rbm(rbm)
    if rbm.n_visible > 24:
        raise ValueError(f"log_prob_visible lists 2**n_visible states; n_visible={rbm.n_visible} is too many (max 24)")
    return log_likelihood(rbm, all_states(rbm.n_visible))


@njit(parallel=True, cache=True)
def _moments_kernel(w_e, e_bias, o_bias, log_z, block_bits):
    """Model moments <s_u>, <sigma_k>, <s_u sigma_k> with s the enumerated layer and sigma_k the
    conditional mean of the other layer's unit k given s."""
    n_e, n_o = w_e.shape
    low_bits = min(n_e, block_bits)
    n_blocks = 1 << (n_e - low_bits)
    n_steps = 1 << low_bits
    m_s = np.zeros((n_blocks, n_e))
    m_o = np.zeros((n_blocks, n_o))
    m_so = np.zeros((n_blocks, n_e, n_o))
    for blk in prange(n_blocks):
        field = np.empty(n_o)
        sig = np.empty(n_o)
        state = np.zeros(n_e, dtype=np.bool_)
        for u in range(low_bits, n_e):
            state[u] = (blk >> (u - low_bits)) & 1
        lin = _block_start(blk, low_bits, w_e, e_bias, o_bias, field)
        for g in range(n_steps):
            if g > 0:
                lin += _gray_step(g, state, e_bias, w_e, field)
            p = math.exp(_state_value(lin, field) - log_z)
            for k in range(n_o):
                sig[k] = p * sigmoid(field[k])
                m_o[blk, k] += sig[k]
            for u in range(n_e):
                if state[u]:
                    m_s[blk, u] += p
                    for k in range(n_o):
                        m_so[blk, u, k] += sig[k]
    # Summing blocks in a fixed order keeps the result independent of the thread count.
    s_tot = np.zeros(n_e)
    o_tot = np.zeros(n_o)
    so_tot = np.zeros((n_e, n_o))
    for blk in range(n_blocks):
        s_tot += m_s[blk]
        o_tot += m_o[blk]
        so_tot += m_so[blk]
    return s_tot, o_tot, so_tot


def model_moments(rbm: RBM, *, max_units: int = MAX_UNITS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ``<v>``, ``<h>`` and ``<v h^T>`` under the model, by enumeration.

    Returns
    -------
    mean_v : ndarray, shape (n_visible,)
    mean_h : ndarray, shape (n_hidden,)
    mean_vh : ndarray, shape (n_visible, n_hidden)
    """
    _check_rbm(rbm)
    w_e, e_bias, o_bias, enum_hidden = _enumeration_view(rbm, max_units)
    log_z = _log_z(w_e, e_bias, o_bias)
    s, o, so = _moments_kernel(w_e, e_bias, o_bias, log_z, BLOCK_BITS)
    if enum_hidden:
        return o, s, np.ascontiguousarray(so.T)
    return s, o, so


def gradient(rbm: RBM, data, *, max_units: int = MAX_UNITS) -> GradientEstimate:
    """Exact gradient of the mean log-likelihood of ``data`` (enumerating the smaller layer).

    The reference against which CD/PCD estimates and connectivity rules are tested.
    Cost: ``2**n_e * n_e * n_other``; meant for tiny models.

    Parameters
    ----------
    rbm : RBM
    data : array_like, shape (n, n_visible)

    Returns
    -------
    GradientEstimate
        For every visible-hidden pair, masked pairs included.
    """
    _check_rbm(rbm)
    v = check_binary("data", data, rbm.n_visible, np.float64)
    mean_v, mean_h, mean_vh = model_moments(rbm, max_units=max_units)
    ph = 1.0 / (1.0 + np.exp(-(v @ rbm.weights.astype(np.float64) + rbm.hidden_bias)))
    n = v.shape[0]
    return GradientEstimate(
        weights=v.T @ ph / n - mean_vh,
        visible_bias=v.mean(axis=0) - mean_v,
        hidden_bias=ph.mean(axis=0) - mean_h,
    )


def _check_rbm(rbm) -> None:
    if not isinstance(rbm, RBM):
        raise TypeError(f"expected a dilution.RBM, got {type(rbm).__name__}")
