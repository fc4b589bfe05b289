"""Who runs in parallel: the BLAS thread pools around engine calls.

numba's OpenMP workers and OpenBLAS's pthread workers both spin for a while after their work
ends. On a machine with few cores, alternating the two pools makes each steal the other's CPU
time (measured: half the speed on 2 cores, /work/shared/perf/BASELINE.md section 1). The engine
therefore owns the parallelism in one place: one numba parallel region per call, in which each
thread calls *single-threaded* BLAS on its own fixed-size block of chains.

:func:`single_threaded_blas` sets every OpenBLAS library loaded in the process (numpy's and the
one scipy exposes to numba) to one thread for the duration of a block and restores the previous
counts afterwards. It talks to OpenBLAS through its C API (the library's own
``*_set_num_threads`` symbols), found via ``/proc/self/maps``; where that is not available (not
Linux, or a non-OpenBLAS BLAS), it does nothing. Users who call numpy BLAS between engine calls
can avoid the spinning of numpy's pool by setting ``OMP_WAIT_POLICY=PASSIVE`` and
``OPENBLAS_THREAD_TIMEOUT=4`` (or ``OPENBLAS_NUM_THREADS=1``) before starting Python.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
import types
from collections.abc import Callable
from contextlib import contextmanager

import numba
from numba import njit

__all__ = ["single_threaded_blas", "openblas_libraries", "sized_kernel", "SizedKernel", "PARALLEL_MIN_WORK"]

#: Work (multiply-adds or elements) from which a :class:`SizedKernel` call runs in parallel: about
#: 0.1 ms of single-threaded work, ten times what waking numba's thread pool costs.
PARALLEL_MIN_WORK = 1 << 18

_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)
_GETTERS = (
    "scipy_openblas_get_num_threads64_",
    "scipy_openblas_get_num_threads",
    "openblas_get_num_threads64_",
    "openblas_get_num_threads",
)

_lock = threading.Lock()
_libs: list[tuple[str, object, object]] | None = None


def openblas_paths() -> list[str]:
    """Paths of the OpenBLAS libraries loaded in this process (numpy's and scipy's), from
    ``/proc/self/maps``; empty where that file does not exist."""
    import numpy  # noqa: F401  (loads numpy's BLAS)
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS numba's np.dot calls)

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return []
    return sorted(p for p in paths if os.path.exists(p))


def _find_libraries() -> list[tuple[str, object, object]]:
    found = []
    for path in openblas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        get = next((getattr(lib, n) for n in _GETTERS if hasattr(lib, n)), None)
        put = next((getattr(lib, n) for n in _SETTERS if hasattr(lib, n)), None)
        if get is None or put is None:
            continue
        get.restype = ctypes.c_int
        get.argtypes = []
        put.restype = None
        put.argtypes = [ctypes.c_int]
        found.append((os.path.basename(path), get, put))
    return found


def openblas_libraries() -> list[tuple[str, int]]:
    """OpenBLAS libraries loaded in this process and their current thread counts."""
    global _libs
    with _lock:
        if _libs is None:
            _libs = _find_libraries()
        return [(name, int(get())) for name, get, _ in _libs]


@contextmanager
def single_threaded_blas():
    """Run the body with every loaded OpenBLAS set to one thread; restore the counts after.

    Not re-entrant across Python threads that change BLAS threads concurrently (neither is
    OpenBLAS's own setting, which is process-wide).
    """
    openblas_libraries()
    saved = [(get(), put) for _, get, put in _libs]
    for n, put in saved:
        if n != 1:
            put(1)
    try:
        yield
    finally:
        for n, put in saved:
            if n != 1:
                put(n)


class SizedKernel:
    """One numba kernel body compiled twice, serial and parallel; each call picks one by its work.

    A parallel kernel costs numba one to three seconds more to compile than the same body compiled
    serially (the parfor passes and a gufunc per parallel loop), and on a small call waking the
    thread pool costs more than the threads save. So a call whose ``work(*args)`` is below
    :data:`PARALLEL_MIN_WORK`, or any call in a single-threaded process (a study's workers), runs
    the serial compilation, and a cold start compiles only what it runs. The body's ``prange``
    loops must write disjoint outputs (no reduction across iterations) and the kernel must not
    allow floating-point reassociation: then both compilations return the same bits and the choice
    changes the time only (``tests/dilution/test_threads.py`` checks every kernel built this way).

    Attributes
    ----------
    serial, parallel : numba dispatchers
        The two compilations (``cache=True``; the serial one is cached under its own name).
    work : callable
        ``work(*args) -> int``, the size of a call.
    """

    def __init__(self, func: Callable, work: Callable[..., int], options: dict):
        self.work = work
        self.parallel = njit(parallel=True, cache=True, **options)(func)
        # a copy of the function with its own qualified name: numba's cache files are named by it,
        # and the two compilations of one function would otherwise load each other's machine code
        twin = types.FunctionType(func.__code__, func.__globals__, func.__name__, func.__defaults__, func.__closure__)
        twin.__qualname__ = f"{func.__qualname__}__serial"
        twin.__doc__ = func.__doc__
        self.serial = njit(cache=True, **options)(twin)
        functools.update_wrapper(self, func)

    def __call__(self, *args):
        if self.work(*args) >= PARALLEL_MIN_WORK and numba.get_num_threads() > 1:
            return self.parallel(*args)
        return self.serial(*args)


def sized_kernel(work: Callable[..., int], **options) -> Callable[[Callable], SizedKernel]:
    """Decorator: ``func`` as a :class:`SizedKernel` with ``work`` and numba ``options``."""

    def wrap(func: Callable) -> SizedKernel:
        return SizedKernel(func, work, options)

    return wrap
