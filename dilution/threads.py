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

__all__ = ["single_threaded_blas", "openblas_libraries", "sized_kernel", "SizedKernel", "PARALLEL_MIN_CONNECTIONS"]

#: Connections (``n_visible * n_hidden``) from which the per-sample kernels built as
#: :class:`SizedKernel` (conditionals, gradient statistics, the optimiser's update) run in parallel.
#: The choice rests on the model, not on the call, so that one run compiles one of the two
#: variants: a 64 x 16 teacher (1,024) or a 784 x 16 MNIST model stays serial (their calls take
#: milliseconds, while compiling a parallel variant costs about a second), 784 x 100 goes parallel.
PARALLEL_MIN_CONNECTIONS = 1 << 14

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
    """One numba kernel body compiled twice, serial and parallel; each call picks one by its size.

    A parallel kernel costs numba one to three seconds more to compile than the same body compiled
    serially (the parfor passes and a gufunc per parallel loop), and on a small problem the
    threads save less than that over a whole run. So a call whose ``size(*args)`` is below
    ``parallel_from``, or any call in a single-threaded process (a study's workers), runs the
    serial compilation, and a cold start compiles only what it runs. The body's ``prange`` loops
    must write disjoint outputs (no reduction across iterations) and the kernel must not allow
    floating-point reassociation: then both compilations return the same bits and the choice
    changes the time only (``tests/dilution/test_threads.py`` checks every kernel built this way).

    Attributes
    ----------
    serial, parallel : numba dispatchers
        The two compilations (``cache=True``; the serial one is cached under its own name).
    size : callable
        ``size(*args) -> int``.
    parallel_from : int
        Smallest size that runs in parallel.
    """

    def __init__(self, func: Callable, size: Callable[..., int], parallel_from: int, options: dict):
        self.size = size
        self.parallel_from = parallel_from
        self.parallel = njit(parallel=True, cache=True, **options)(func)
        # a copy of the function with its own qualified name: numba's cache files are named by it,
        # and the two compilations of one function would otherwise load each other's machine code
        twin = types.FunctionType(func.__code__, func.__globals__, func.__name__, func.__defaults__, func.__closure__)
        twin.__qualname__ = f"{func.__qualname__}__serial"
        twin.__doc__ = func.__doc__
        self.serial = njit(cache=True, **options)(twin)
        functools.update_wrapper(self, func)

    def uses_parallel(self, *args) -> bool:
        """Whether a call with ``args`` runs the parallel compilation."""
        return self.size(*args) >= self.parallel_from and numba.get_num_threads() > 1

    def __call__(self, *args):
        if self.uses_parallel(*args):
            return self.parallel(*args)
        return self.serial(*args)


def _connections(_, weights, *__) -> int:
    """Size of a per-sample kernel whose second argument is the weights (or their transpose)."""
    return weights.size


def sized_kernel(size: Callable[..., int] = _connections, parallel_from: int = PARALLEL_MIN_CONNECTIONS,
                 **options) -> Callable[[Callable], SizedKernel]:
    """Decorator: ``func`` as a :class:`SizedKernel` with ``size``, ``parallel_from`` and numba ``options``."""

    def wrap(func: Callable) -> SizedKernel:
        return SizedKernel(func, size, parallel_from, options)

    return wrap
