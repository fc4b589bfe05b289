"""Kernels compiled twice (:class:`dilution.threads.SizedKernel`): both compilations give the same
bits, each call picks the one its work asks for, and the two are cached under different names."""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest

import dilution
from dilution import threads
from dilution.conditionals import free_energy, hidden_probabilities
from dilution.data.teacher import _unnormalised_log_p_hidden
from dilution.gibbs_sparse import csr_arrays, csr_hidden_probabilities
from dilution.optim import _masked_momentum_kernel
from dilution.statistics import _gradient_kernel, _present_gradient_kernel, csr_reconstruction_errors, reconstruction_errors


def _cases(dtype):
    rng = np.random.default_rng(7)
    n, n_v, n_h = 37, 23, 11  # odd sizes: uneven split of rows over threads
    v = (rng.random((n, n_v)) < 0.4).astype(dtype)
    w = rng.normal(0, 1, (n_v, n_h)).astype(dtype)
    a, b = rng.normal(0, 1, n_v).astype(dtype), rng.normal(0, 1, n_h).astype(dtype)
    h = rng.random((n, n_h)).astype(dtype)
    v2 = (rng.random((n + 5, n_v)) < 0.6).astype(dtype)
    h2 = rng.random((n + 5, n_h)).astype(dtype)
    keys = rng.integers(0, 2**63, n, dtype=np.uint64)
    mask = rng.random((n_v, n_h)) < 0.5
    indptr, indices, data, indptr_t, indices_t, data_t = csr_arrays(np.where(mask, w, 0))
    return {
        hidden_probabilities: (v, w, b, 0.7),
        free_energy: (v, w, a, b, 0.7, a[::-1].copy()),
        _gradient_kernel: (v, h, v2, h2),
        reconstruction_errors: (v, h, np.ascontiguousarray(w.T), a, keys, np.uint64(5)),
        _masked_momentum_kernel: (w, w[::-1].copy(), w * 0.5, mask, 0.1, 0.5, 1e-3, 1e-4),
        csr_hidden_probabilities: (v, indptr, indices, data, b, 0.7),
        csr_reconstruction_errors: (v, h, indptr_t, indices_t, data_t, a, keys, np.uint64(5)),
        _present_gradient_kernel: (v, h, v2, h2, mask),
        _unnormalised_log_p_hidden: (rng.normal(0, 1, (7, n_v)), rng.normal(0, 1, n_v), rng.normal(0, 1, 7)),
    }


def _sized_kernels():
    found = {}
    for info in pkgutil.walk_packages(dilution.__path__, "dilution."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, threads.SizedKernel):
                found[id(value)] = value
    return list(found.values())


def test_every_sized_kernel_is_checked_here():
    covered = {id(k) for k in _cases(np.float64)}
    missing = [k.__qualname__ for k in _sized_kernels() if id(k) not in covered]
    assert not missing, f"add these kernels to _cases: {missing}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_compilations_give_the_same_bits(dtype):
    for kernel, args in _cases(dtype).items():
        serial, parallel = kernel.serial(*args), kernel.parallel(*args)
        for s, p in zip(*(r if isinstance(r, tuple) else (r,) for r in (serial, parallel)), strict=True):
            assert s.dtype == p.dtype and np.array_equal(s, p), kernel.__qualname__


def test_a_call_runs_the_compilation_its_size_asks_for(monkeypatch):
    import numba

    calls = []
    kernel = hidden_probabilities
    args = _cases(np.float64)[kernel]
    size = kernel.size(*args)
    assert size == args[1].size  # the model's connections, whatever the number of rows
    for name in ("serial", "parallel"):
        compiled = getattr(kernel, name)
        monkeypatch.setattr(kernel, name, lambda *a, _c=compiled, _n=name: calls.append(_n) or _c(*a))
    monkeypatch.setattr(kernel, "parallel_from", size + 1)
    kernel(*args)
    monkeypatch.setattr(kernel, "parallel_from", size)
    kernel(*args)
    with_threads = ["serial", "parallel"] if numba.get_num_threads() > 1 else ["serial", "serial"]
    assert calls == with_threads
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    kernel(*args)  # a single-threaded process never runs the parallel compilation
    assert calls[-1] == "serial"


def test_the_default_teacher_and_mnist_sizes_pick_as_documented():
    assert not hidden_probabilities.size(None, np.empty((64, 16))) >= threads.PARALLEL_MIN_CONNECTIONS
    assert not hidden_probabilities.size(None, np.empty((784, 16))) >= threads.PARALLEL_MIN_CONNECTIONS
    assert hidden_probabilities.size(None, np.empty((784, 100))) >= threads.PARALLEL_MIN_CONNECTIONS


def test_the_two_compilations_are_cached_under_different_names():
    for kernel in _sized_kernels():
        names = {k._cache._cache_file._index_name for k in (kernel.serial, kernel.parallel)}
        assert len(names) == 2, kernel.__qualname__
        assert kernel.serial.__doc__ == kernel.parallel.__doc__ == kernel.__doc__
