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
import weakref

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .model import RBM
from .blas import gemm, gemm_address
from .progress import progress_bar
from .rng import chain_keys, derive_seed, uniform64
from .threads import single_threaded_blas

__all__ = [
    "sample",
    "gibbs_kernel",
    "gibbs_path",
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


# ---------------------------------------------------------------------------------------------
# Fast paths. ``gibbs_kernel`` picks one of them (see ``gibbs_path``); every path draws the same
# float64 uniform for (chain, sweep, unit) and sets a unit to 1 iff that uniform is below the
# sigmoid of its field, so the paths differ only by the rounding of the fields (summation order)
# and by the vectorised exponential (relative error < 1.5e-7 in float32, < 1e-14 in float64): a
# unit differs from the reference only when its uniform falls within that error of p.

_FAST = {"fastmath": {"contract"}, "error_model": "numpy"}

# exp(-x) = 2**k * e**r with k = round(-x / ln 2) and r = -x - k ln 2 in [-ln2/2, ln2/2]
# (Cody & Waite 1980): ln 2 split so that k * _LN2_HI is exact, 2**k assembled from its bits.
_LOG2E = 1.4426950408889634
_LN2_HI = 0.693359375
_LN2_LO = -2.1219444005469057e-4
# Adding 1.5 * 2**(mantissa bits) rounds to an integer held in the low mantissa bits.
_MAGIC32 = np.float32(12582912.0)
_MAGIC32_BITS = np.int32(0x4B400000)
_MAGIC64 = np.float64(6755399441055744.0)
_MAGIC64_BITS = np.int64(0x4338000000000000)
_CLAMP32 = (np.float32(-87.0), np.float32(88.0))  # 2**k stays a normal float32
_CLAMP64 = (np.float64(-708.0), np.float64(709.0))
_C32 = tuple(np.float32(1.0 / math.factorial(n)) for n in range(7, -1, -1))
_C64 = tuple(np.float64(1.0 / math.factorial(n)) for n in range(12, -1, -1))
_L32 = (np.float32(_LOG2E), np.float32(_LN2_HI), np.float32(_LN2_LO))
_L64 = (np.float64(_LOG2E), np.float64(_LN2_HI), np.float64(_LN2_LO))


def _exp_neg(x, ef, eb):
    """``exp(-x[j]) == ef[j] * eb[j]`` with ``eb[j]`` a power of two (vectorisable; numba only)."""
    raise NotImplementedError("_exp_neg is only callable from numba kernels")


def _exp_neg32(x, ef, eb):
    n = x.shape[0]
    ei = eb.view(np.int32)
    for j in range(n):
        y = -x[j]
        y = _CLAMP32[0] if y < _CLAMP32[0] else y
        y = _CLAMP32[1] if y > _CLAMP32[1] else y
        t = y * _L32[0] + _MAGIC32
        eb[j] = t
        k = t - _MAGIC32
        r = (y - k * _L32[1]) - k * _L32[2]
        # Taylor polynomial of degree 7 on |r| <= 0.347: truncation < 1e-9, float32 rounding 1e-7.
        p = _C32[0]
        p = p * r + _C32[1]
        p = p * r + _C32[2]
        p = p * r + _C32[3]
        p = p * r + _C32[4]
        p = p * r + _C32[5]
        p = p * r + _C32[6]
        ef[j] = p * r + _C32[7]
    for j in range(n):
        ei[j] = (ei[j] - _MAGIC32_BITS + np.int32(127)) << np.int32(23)


def _exp_neg64(x, ef, eb):
    n = x.shape[0]
    ei = eb.view(np.int64)
    for j in range(n):
        y = -x[j]
        y = _CLAMP64[0] if y < _CLAMP64[0] else y
        y = _CLAMP64[1] if y > _CLAMP64[1] else y
        t = y * _L64[0] + _MAGIC64
        eb[j] = t
        k = t - _MAGIC64
        r = (y - k * _L64[1]) - k * _L64[2]
        # Taylor polynomial of degree 12 on |r| <= 0.347: truncation < 1e-15.
        p = _C64[0]
        p = p * r + _C64[1]
        p = p * r + _C64[2]
        p = p * r + _C64[3]
        p = p * r + _C64[4]
        p = p * r + _C64[5]
        p = p * r + _C64[6]
        p = p * r + _C64[7]
        p = p * r + _C64[8]
        p = p * r + _C64[9]
        p = p * r + _C64[10]
        p = p * r + _C64[11]
        ef[j] = p * r + _C64[12]
    for j in range(n):
        ei[j] = (ei[j] - _MAGIC64_BITS + np.int64(1023)) << np.int64(52)


@overload(_exp_neg, jit_options=_FAST)
def _ol_exp_neg(x, ef, eb):
    return _exp_neg32 if x.dtype == types.float32 else _exp_neg64


@njit(inline="always", cache=True, **_FAST)
def _sample_row(x, out, key, start, ef, eb):
    """``out[j] = 1`` iff draw ``start + j`` of stream ``key`` is below ``sigmoid(x[j])``."""
    _exp_neg(x, ef, eb)
    one = x.dtype.type(1.0)
    zero = x.dtype.type(0.0)
    for j in range(x.shape[0]):
        p = one / (one + ef[j] * eb[j])
        out[j] = one if uniform64(key, start + np.uint64(j)) < p else zero


@njit(inline="always", cache=True, **_FAST)
def _sample_block(x, out, keys, start, ef, eb):
    """``out[u, c] = 1`` iff draw ``start + u`` of stream ``keys[c]`` is below ``sigmoid(x[u, c])``;
    units in rows, chains in columns (one vectorised exp pass over the whole block)."""
    n_units, m = x.shape
    n = n_units * m
    _exp_neg(x.reshape(n), ef[:n], eb[:n])
    one = x.dtype.type(1.0)
    zero = x.dtype.type(0.0)
    for u in range(n_units):
        index = start + np.uint64(u)
        for c in range(m):
            p = one / (one + ef[u * m + c] * eb[u * m + c])
            out[u, c] = one if uniform64(keys[c], index) < p else zero


@njit(inline="always", cache=True, **_FAST)
def _active_units(sr, idx):
    """Indices of the nonzero entries of ``sr`` written to ``idx[:k]``; returns ``k`` (branch-free)."""
    k = 0
    zero = sr.dtype.type(0.0)
    for i in range(sr.shape[0]):
        idx[k] = i
        k += sr[i] != zero
    return k


@njit(inline="always", cache=True, **_FAST)
def _sum_rows(w, idx, k, o):
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


@njit(inline="always", cache=True, **_FAST)
def _half_sweep(s_in, w, s_out, bias, beta, hidden, keys, start, gather_below, gemm_at, f, g, idx, ef, eb):
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
            _sum_rows(w, idx, _active_units(s_in[r], idx), fr)
        bt = beta[r]
        if hidden:
            b0 = bias[0]
            for j in range(n_out):
                fr[j] = bt * (fr[j] + b0[j])
        else:
            br = bias[min(r, bias.shape[0] - 1)]
            for j in range(n_out):
                fr[j] = br[j] + bt * fr[j]
        _sample_row(fr, s_out[r], keys[r], start, ef[:n_out], eb[:n_out])


@njit(parallel=True, cache=True, **_FAST)
def _gibbs_blocked(v, weights, weights_t, visible_bias, hidden_bias, beta, base_bias, keys, counter, n_sweeps,
                   block, gather_below, gemm_at):
    """Dense path: chains in blocks of ``block`` (one per task of a single parallel region); each
    half-sweep is :func:`_half_sweep` (gathered rows or a single-threaded GEMM, then a fused pass of
    scale + bias, vectorised sigmoid, counter-based draws and compare)."""
    n_chains, n_visible = v.shape
    n_hidden = weights.shape[1]
    dt = weights.dtype
    v_out = np.empty_like(v)
    h_out = np.zeros((n_chains, n_hidden), dtype=dt)
    stride = np.uint64(n_visible + n_hidden)
    n_blocks = (n_chains + block - 1) // block
    one = dt.type(1.0)
    n_max = max(n_visible, n_hidden)
    hbias = hidden_bias.reshape((1, n_hidden))
    for blk in prange(n_blocks):
        c0 = blk * block
        c1 = min(c0 + block, n_chains)
        m = c1 - c0
        vb = np.empty((m, n_visible), dtype=dt)
        vb[:] = v[c0:c1]
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
        g = np.empty(n_max, dtype=dt)
        ef = np.empty(n_max, dtype=dt)
        eb = np.empty(n_max, dtype=dt)
        idx = np.empty(n_max, dtype=np.int64)
        for s in range(n_sweeps):
            start = counter + np.uint64(s) * stride
            _half_sweep(vb, weights, hb, hbias, bt, True, kb, start, gather_below, gemm_at, fh, g, idx, ef, eb)
            _half_sweep(hb, weights_t, vb, vbias, bt, False, kb, start + np.uint64(n_hidden), gather_below, gemm_at,
                        fv, g, idx, ef, eb)
        v_out[c0:c1] = vb
        h_out[c0:c1] = hb
    return v_out, h_out


@njit(parallel=True, cache=True, **_FAST)
def _gibbs_sparse(v, indptr, indices, data, indptr_t, indices_t, data_t, visible_bias, hidden_bias, beta,
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
            _sample_block(fh, ht, kb, start, ef, eb)
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
            _sample_block(fv, vt, kb, start, ef, eb)
        for r in range(m):
            for i in range(n_visible):
                v_out[c0 + r, i] = vt[i, r]
            for j in range(n_hidden):
                h_out[c0 + r, j] = ht[j, r]
    return v_out, h_out


# Path choice: constants measured on a 2-core Sapphire Rapids guest (benchmarks, README); none
# depends on the thread count, so neither do the results.
DENSE_BLOCK = 128  # most chains per dense block. GEMM wants many rows (numpy's single-threaded SGEMM
#   at 784 x 500: 64 rows 0.65x, 256 rows 0.8-0.95x the 2-thread full-batch GEMM); the gather wants
#   few, to keep the block's states beside W and W^T in L2 (64 rows 1.29x, 256 rows 1.03x the GEMM
#   bound at B = 1000 on CD25's chains). 128 was the best compromise on trained MNIST models.
DENSE_MIN_BLOCKS = 4  # batches of >= 4 * DENSE_MIN_BLOCK chains are split in at least 4 blocks, so up
DENSE_MIN_BLOCK = 4  # to 4 threads share them (B = 16: 4 blocks of 4, B = 100: 4 of 25, B = 1000: 8 of 125)
SPARSE_BLOCK = 64  # chains per sparse block: 4 (float32) or 8 (float64) 512-bit vectors per row update; measured 2x faster than 16
# Fraction of active units under which summing their weight rows beats a GEMM, by itemsize:
# measured at 784 x 500 per 64-chain block (float32: crossover 0.28-0.34; float64: 0.2-0.21,
# where W no longer fits in L2).
GATHER_BELOW = {4: 0.3, 8: 0.2}
# Blocks of fewer chains always gather: OpenBLAS packs all of W for every GEMM call, which a few
# rows cannot amortise (B = 1, float64, 784 x 500: 4.7k chain-sweeps/s with a one-row DGEMM for
# the 30 %-active hidden layer against 12.9k gathering its rows).
GEMM_MIN_ROWS = 32
SPARSE_BELOW = 0.15  # connectivity under which the CSR path beats the dense one: at B = 1000 on CD25, sparse/dense =
#   2.25 (c = 0.05), 1.33 (0.1), 0.69 (0.2) in float32 and 2.33, 1.54, 0.75 in float64
SPARSE_MIN_CHAINS = 32  # fewer chains leave the sparse block's SIMD lanes empty: 10k vs ~25k sweeps/s at B = 1

_csr_cache: dict[int, tuple] = {}


def dense_block(n_chains: int) -> int:
    """Chains per block of the dense path: equal blocks of at most ``DENSE_BLOCK`` chains, and at
    least ``DENSE_MIN_BLOCKS`` of them when that leaves ``DENSE_MIN_BLOCK`` chains or more each. A
    function of ``n_chains`` alone, so results do not depend on the thread count."""
    n_blocks = max(-(-n_chains // DENSE_BLOCK), min(DENSE_MIN_BLOCKS, n_chains // DENSE_MIN_BLOCK), 1)
    return max(-(-n_chains // n_blocks), 1)


def _csr(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(w)
    indptr = np.zeros(w.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=w.shape[0]), out=indptr[1:])
    return indptr, cols.astype(np.int64), np.ascontiguousarray(w[rows, cols])


def _structure(weights: np.ndarray, weights_t: np.ndarray) -> tuple[float, tuple | None]:
    """(density of nonzero weights, CSR of W and W^T when sparse), cached for read-only arrays."""
    cacheable = not weights.flags.writeable and not weights_t.flags.writeable
    key = id(weights)
    if cacheable and key in _csr_cache and _csr_cache[key][0] is weights_t:
        return _csr_cache[key][1:]
    density = np.count_nonzero(weights) / max(weights.size, 1)
    csr = _csr(weights) + _csr(weights_t) if density < SPARSE_BELOW else None
    if cacheable:
        _csr_cache[key] = (weights_t, density, csr)
        weakref.finalize(weights, _csr_cache.pop, key, None)
    return density, csr


def gibbs_path(weights: np.ndarray, n_chains: int) -> str:
    """Name of the path :func:`gibbs_kernel` runs: ``"sparse"`` (CSR, connectivity below
    ``SPARSE_BELOW`` and at least ``SPARSE_MIN_CHAINS`` chains) or ``"blocked"`` (dense blocks; per
    block and half-sweep, rows of active units are summed when fewer than ``GATHER_BELOW`` of them
    are active, else a single-threaded GEMM)."""
    density = np.count_nonzero(weights) / max(weights.size, 1)
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
    _, csr = _structure(weights, weights_t)
    if path == "sparse" and csr is None:  # forced below the automatic switch
        csr = _csr(weights) + _csr(weights_t)
    if csr is not None and (path == "sparse" or (path == "auto" and v.shape[0] >= SPARSE_MIN_CHAINS)):
        return _gibbs_sparse(v, *csr, visible_bias, hidden_bias, beta, base_bias, keys, counter, int(n_sweeps),
                             SPARSE_BLOCK)
    with single_threaded_blas():
        return _gibbs_blocked(v, weights, weights_t, visible_bias, hidden_bias, beta, base_bias, keys, counter,
                              int(n_sweeps), dense_block(v.shape[0]), GATHER_BELOW[dt.itemsize], gemm_address(dt))


@njit(parallel=True, cache=True)
def _gibbs_reference(v, weights, weights_t, visible_bias, hidden_bias, beta, base_bias, keys, counter, n_sweeps):
    """Reference kernel: one chain at a time, exact ``math.exp`` sigmoid, rows of active units summed.

    Slow and obvious; the fast paths are tested against it (``tests/dilution/test_gibbs_paths.py``).
    Same arguments and results as :func:`gibbs_kernel`.
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
