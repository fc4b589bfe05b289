"""Matrix products inside numba kernels through numpy's own BLAS.

numba's ``np.dot`` calls the BLAS that scipy exposes (``scipy.linalg.cython_blas``). On the
machine of the benchmarks that is a different OpenBLAS build from numpy's, and on the 64 to 256
row blocks the Gibbs kernels multiply it ran 1.2 to 1.4 times slower than numpy's (measured with
both set to one thread, 784 x 500 float32 weights; ``benchmarks/``). :func:`gemm` therefore calls
numpy's ``cblas_?gemm`` directly, through its address, when numpy ships the 64-bit-integer
OpenBLAS of its wheels (``scipy_cblas_sgemm64_``); anywhere else it falls back to ``np.dot``.

The address is an ordinary kernel argument (:func:`gemm_address`), never a compiled-in constant,
so kernels stay cacheable (``cache=True``) across processes.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .threads import openblas_paths

__all__ = ["gemm", "gemm_address"]

_SYMBOLS = {np.dtype(np.float32): "scipy_cblas_sgemm64_", np.dtype(np.float64): "scipy_cblas_dgemm64_"}
_ROW_MAJOR = 101  # CBLAS_ORDER
_NO_TRANS = 111  # CBLAS_TRANSPOSE
_addresses: dict[np.dtype, int] | None = None


def gemm_address(dtype) -> int:
    """Address of numpy's ``cblas_?gemm`` (64-bit integers) for ``dtype``, or 0 when not found
    (then :func:`gemm` uses ``np.dot``). ``DILUTION_NUMBA_DOT=1`` forces 0."""
    global _addresses
    if _addresses is None:
        found = {}
        if os.environ.get("DILUTION_NUMBA_DOT", "") != "1":
            for path in openblas_paths():
                try:
                    lib = ctypes.CDLL(path)
                except OSError:
                    continue
                for dt, name in _SYMBOLS.items():
                    if dt not in found and hasattr(lib, name):
                        found[dt] = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value or 0
        _addresses = found
    return int(_addresses.get(np.dtype(dtype), 0))


@intrinsic
def _cblas_gemm(typingctx, address, m, n, k, a, b, c, one):
    """Row-major ``c = a @ b`` (a: m x k, b: k x n, c: m x n, all C-contiguous) through the
    ``cblas_?gemm`` at ``address`` with 64-bit integer arguments."""
    if not all(isinstance(t, types.Integer) for t in (address, m, n, k, a, b, c)) or one not in (
            types.float32, types.float64):
        return None
    sig = types.void(types.uintp, types.int64, types.int64, types.int64, types.uintp, types.uintp, types.uintp,
                     one)

    def codegen(context, builder, signature, args):
        address, m, n, k, a, b, c, one = args
        i32, i64, fl = ir.IntType(32), ir.IntType(64), one.type
        ptr = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, fl, ptr, i64, ptr, i64, fl, ptr, i64])
        fn = builder.inttoptr(address, fnty.as_pointer())
        builder.call(fn, [i32(_ROW_MAJOR), i32(_NO_TRANS), i32(_NO_TRANS), m, n, k, one,
                          builder.inttoptr(a, ptr), k, builder.inttoptr(b, ptr), n, fl(0.0),
                          builder.inttoptr(c, ptr), n])
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always", cache=True)
def _c_contiguous(x):
    return x.strides[1] == x.itemsize and x.strides[0] == x.shape[1] * x.itemsize


@njit(inline="always", cache=True)
def gemm(address, a, b, c):
    """``c[:] = a @ b`` for 2-d arrays of one float dtype, ``c`` C-contiguous; numpy's BLAS at
    ``address`` when it is nonzero and ``a`` and ``b`` are C-contiguous too, else ``np.dot``.
    Threads: whatever the BLAS is set to (kernels call it inside
    :func:`dilution.threads.single_threaded_blas`)."""
    m, k = a.shape
    n = b.shape[1]
    if address == 0 or not (_c_contiguous(a) and _c_contiguous(b)):
        np.dot(a, b, c)
    elif m > 0 and n > 0:
        if k == 0:
            c[:] = 0
        else:
            _cblas_gemm(np.uint64(address), np.int64(m), np.int64(n), np.int64(k), a.ctypes.data, b.ctypes.data,
                        c.ctypes.data, a.dtype.type(1.0))
