"""The blocked (dense) Gibbs path: chains in blocks, each half-sweep a gather of weight rows or a GEMM.

Chains are split into equal blocks (:func:`dense_block`, a function of the number of chains
only), one task of a single numba parallel region per block. Per block and half-sweep the field
is either, chain by chain, the sum of the weight rows of the active input units (binary states
make the product sparse: about 7 % of visible and 30 % of hidden units are on in a trained MNIST
model), or one single-threaded GEMM through numpy's BLAS (:mod:`dilution.blas`) when the block
is large and active enough (:data:`~dilution.gibbs_tuning.GATHER_BELOW`,
:data:`~dilution.gibbs_tuning.GEMM_MIN_ROWS`). Either way the field is then scaled, biased and
sampled in one fused pass with the vectorised exp of :mod:`dilution.fastexp`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .blas import gemm
from .fastexp import FAST_JIT, exp_neg
from .gibbs_tuning import DENSE_BLOCK, DENSE_MIN_BLOCK, DENSE_MIN_BLOCKS, GEMM_MIN_ROWS
from .rng import uniform64

__all__ = ["gibbs_blocked", "dense_block", "half_sweep", "sum_rows", "active_units", "sample_row"]


def dense_block(n_chains: int) -> int:
    """Chains per block of the dense path: equal blocks of at most ``DENSE_BLOCK`` chains, and at
    least ``DENSE_MIN_BLOCKS`` of them when that leaves ``DENSE_MIN_BLOCK`` chains or more each. A
    function of ``n_chains`` alone, so results do not depend on the thread count."""
    n_blocks = max(-(-n_chains // DENSE_BLOCK), min(DENSE_MIN_BLOCKS, n_chains // DENSE_MIN_BLOCK), 1)
    return max(-(-n_chains // n_blocks), 1)


@njit(inline="always", cache=True, **FAST_JIT)
def sample_row(x, out, key, start, ef, eb):
    """``out[j] = 1`` iff draw ``start + j`` of stream ``key`` is below ``sigmoid(x[j])``."""
    exp_neg(x, ef, eb)
    one = x.dtype.type(1.0)
    zero = x.dtype.type(0.0)
    for j in range(x.shape[0]):
        p = one / (one + ef[j] * eb[j])
        out[j] = one if uniform64(key, start + np.uint64(j)) < p else zero


@njit(inline="always", cache=True, **FAST_JIT)
def active_units(sr, idx):
    """Indices of the nonzero entries of ``sr`` written to ``idx[:k]``; returns ``k`` (branch-free)."""
    k = 0
    zero = sr.dtype.type(0.0)
    for i in range(sr.shape[0]):
        idx[k] = i
        k += sr[i] != zero
    return k


@njit(inline="always", cache=True, **FAST_JIT)
def sum_rows(w, idx, k, o):
    """``o = sum(w[idx[:k]])``, eight rows per pass over ``o`` (one load and store of the
    accumulator per eight rows; the fixed pairing makes the rounding a function of ``idx`` only)."""
    n_out = w.shape[1]
    o[:] = o.dtype.type(0.0)
    q = 0
    while q + 8 <= k:
        w0, w1, w2, w3 = w[idx[q]], w[idx[q + 1]], w[idx[q + 2]], w[idx[q + 3]]
        w4, w5, w6, w7 = w[idx[q + 4]], w[idx[q + 5]], w[idx[q + 6]], w[idx[q + 7]]
        for j in range(n_out):
            o[j] += ((w0[j] + w1[j]) + (w2[j] + w3[j])) + ((w4[j] + w5[j]) + (w6[j] + w7[j]))
        q += 8
    while q < k:
        w0 = w[idx[q]]
        for j in range(n_out):
            o[j] += w0[j]
        q += 1


@njit(cache=True, **FAST_JIT)
def half_sweep(s_in, w, s_out, bias, beta, hidden, keys, start, gather_below, gemm_at, f, g, idx, ef, eb):
    """Sample ``s_out`` (m, n_out) given ``s_in`` (m, n_in) for the chains of one block.

    Field of row ``r``: ``beta[r] * (s_in[r] @ w + bias[0])`` when ``hidden``, else
    ``bias[r] + beta[r] * (s_in[r] @ w)`` (``bias[0]`` for every row when ``bias`` has one row).
    The product is one single-threaded GEMM through the BLAS at ``gemm_at`` (into ``f``,
    m x n_out) when the block has at least ``GEMM_MIN_ROWS`` chains and at least ``gather_below``
    of its input units are active; otherwise,
    chain by chain, the weight rows of the active units are summed into the one-row scratch ``g``
    and sampled at once, so the field never leaves L1. ``idx``, ``ef`` and
    ``eb`` are scratch of at least ``n_in``, ``n_out`` and ``n_out`` entries.
    """
    m, n_in = s_in.shape
    n_out = w.shape[1]
    zero = s_in.dtype.type(0.0)
    dense = False
    if m >= GEMM_MIN_ROWS:  # smaller blocks always gather: no need to count
        n_active = 0
        for r in range(m):
            for i in range(n_in):
                n_active += s_in[r, i] != zero
        dense = n_active >= gather_below * m * n_in
    if dense:
        gemm(gemm_at, s_in, w, f)
    for r in range(m):
        if dense:
            fr = f[r]
        else:
            fr = g[:n_out]
            sum_rows(w, idx, active_units(s_in[r], idx), fr)
        bt = beta[r]
        if hidden:
            b0 = bias[0]
            for j in range(n_out):
                fr[j] = bt * (fr[j] + b0[j])
        else:
            br = bias[min(r, bias.shape[0] - 1)]
            for j in range(n_out):
                fr[j] = br[j] + bt * fr[j]
        sample_row(fr, s_out[r], keys[r], start, ef[:n_out], eb[:n_out])


@njit(cache=True, **FAST_JIT)
def _run_block(v, weights, weights_t, visible_bias, hidden_bias, beta, base_bias, keys, counter, n_sweeps, c0, c1,
               gather_below, gemm_at, v_out, h_out):
    """``n_sweeps`` sweeps of chains ``c0:c1`` (one block), written to ``v_out[c0:c1]`` and ``h_out[c0:c1]``."""
    n_visible = v.shape[1]
    n_hidden = weights.shape[1]
    dt = weights.dtype
    stride = np.uint64(n_visible + n_hidden)
    one = dt.type(1.0)
    n_max = max(n_visible, n_hidden)
    m = c1 - c0
    # element loops, not slice assignment: the latter compiles numba's shape-mismatch message
    # formatting (seconds of string code) into every kernel that uses it
    vb = np.empty((m, n_visible), dtype=dt)
    for r in range(m):
        for i in range(n_visible):
            vb[r, i] = v[c0 + r, i]
    hb = np.zeros((m, n_hidden), dtype=dt)
    fh = np.empty((m, n_hidden), dtype=dt)
    fv = np.empty((m, n_visible), dtype=dt)
    bt = beta[c0:c1]
    kb = keys[c0:c1]
    n_rows = 1  # one bias row when the block shares one beta (keeps the gather's working set small)
    for r in range(m):
        if bt[r] != bt[0]:
            n_rows = m
    vbias = np.empty((n_rows, n_visible), dtype=dt)
    for r in range(n_rows):
        for i in range(n_visible):
            vbias[r, i] = bt[r] * visible_bias[i] + (one - bt[r]) * base_bias[i]
    # local (writeable) like vbias, so that both half-sweeps have one signature
    hbias = np.empty((1, n_hidden), dtype=dt)
    for j in range(n_hidden):
        hbias[0, j] = hidden_bias[j]
    g = np.empty(n_max, dtype=dt)
    ef = np.empty(n_max, dtype=dt)
    eb = np.empty(n_max, dtype=dt)
    idx = np.empty(n_max, dtype=np.int64)
    # a run-time flag (a block is never empty), not the literals True and False: numba would
    # compile half_sweep once for each (seconds on a cold cache)
    to_hidden = m > 0
    for s in range(n_sweeps):
        start = counter + np.uint64(s) * stride
        half_sweep(vb, weights, hb, hbias, bt, to_hidden, kb, start, gather_below, gemm_at, fh, g, idx, ef, eb)
        half_sweep(hb, weights_t, vb, vbias, bt, not to_hidden, kb, start + np.uint64(n_hidden), gather_below,
                   gemm_at, fv, g, idx, ef, eb)
    for r in range(m):
        for i in range(n_visible):
            v_out[c0 + r, i] = vb[r, i]
        for j in range(n_hidden):
            h_out[c0 + r, j] = hb[r, j]


@njit(parallel=True, cache=True, **FAST_JIT)
def gibbs_blocked(v, weights, weights_t, visible_bias, hidden_bias, beta, base_bias, keys, counter, n_sweeps,
                   block, gather_below, gemm_at):
    """Dense path: chains in blocks of ``block`` (one per task of a single parallel region); each
    half-sweep is :func:`half_sweep` (gathered rows or a single-threaded GEMM, then a fused pass of
    scale + bias, vectorised sigmoid, counter-based draws and compare)."""
    n_chains = v.shape[0]
    n_hidden = weights.shape[1]
    v_out = np.empty_like(v)
    h_out = np.empty((n_chains, n_hidden), dtype=weights.dtype)  # every row is written by its block
    n_blocks = (n_chains + block - 1) // block
    # The parallel region only calls the block function: numba's parfor passes are slow on a
    # large loop body (about 6 s of compilation when the block's work was written inline here).
    for blk in prange(n_blocks):
        c0 = blk * block
        _run_block(v, weights, weights_t, visible_bias, hidden_bias, beta, base_bias, keys, counter, n_sweeps, c0,
                   min(c0 + block, n_chains), gather_below, gemm_at, v_out, h_out)
    return v_out, h_out
