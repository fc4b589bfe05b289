"""A vectorisable ``exp(-x)`` for the fast Gibbs paths, and the jit options those paths share.

``math.exp`` inside a loop keeps LLVM from vectorising it; :func:`exp_neg` computes
``exp(-x) = 2**k * e**r`` with ``k = round(-x / ln 2)`` and ``r = -x - k ln 2`` in
``[-ln2/2, ln2/2]`` (Cody & Waite 1980) as two passes of plain arithmetic and bit operations
that LLVM turns into SIMD code: a Taylor polynomial for ``e**r`` and ``2**k`` assembled from
its exponent bits. The fast paths (:mod:`dilution.gibbs_blocked`, :mod:`dilution.gibbs_sparse`)
use it for the sigmoid of every field: relative error below 1.5e-7 in float32 and 1e-14 in
float64, so a unit's draw differs from the exact sigmoid's only when its uniform falls within
that error of p.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

__all__ = ["FAST_JIT", "exp_neg"]

# jit options of the fast paths: fused multiply-adds allowed ("contract", the only fastmath flag:
# no reassociation, so summation orders stay as written) and numpy's error model (no
# division-by-zero checks in the inner loops). The accuracy of exp_neg is stated under them.
FAST_JIT = {"fastmath": {"contract"}, "error_model": "numpy"}

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


def exp_neg(x, ef, eb):
    """``exp(-x[j]) == ef[j] * eb[j]`` for a 1-D float32 or float64 ``x``, with ``eb[j]`` a power
    of two; relative error below 1.5e-7 (float32) or 1e-14 (float64) for ``|x| <= 87``
    (beyond, 2**k is clamped to stay normal). Vectorisable; callable from numba code only.

    Parameters
    ----------
    x : ndarray, shape (n,)
    ef, eb : ndarray, shape (n,), dtype of ``x``
        Outputs: mantissa-like factor and power of two.
    """
    raise NotImplementedError("exp_neg is only callable from numba kernels")


# One implementation per format rather than one generic function: the polynomial degree (7 for
# float32, 12 for float64), the magic constants and the integer type and shift that assemble
# 2**k from its exponent bits all differ, and a generic version would loop over a coefficient
# tuple of format-dependent length inside the loop that LLVM must vectorise. Each is checked
# against math.exp (tests/dilution/test_gibbs_paths.py::test_vectorised_exp_relative_error).
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


@overload(exp_neg, jit_options=FAST_JIT)
def _ol_exp_neg(x, ef, eb):
    return _exp_neg32 if x.dtype == types.float32 else _exp_neg64
