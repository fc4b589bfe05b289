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
import os
import threading
from contextlib import contextmanager

__all__ = ["single_threaded_blas", "openblas_libraries"]

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
