"""The fast Gibbs paths against the slow reference kernel, and their thread-count independence."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit

from dilution import RBM, gibbs
from dilution.rng import chain_keys


def kernel_args(rbm: RBM, n_chains: int, activity: float, seed: int = 0):
    dt = rbm.dtype
    rng = np.random.default_rng(seed)
    v = (rng.random((n_chains, rbm.n_visible)) < activity).astype(dt)
    beta = rng.uniform(0.3, 1.0, n_chains).astype(dt)  # per-chain beta and a base bias, as in AIS
    base = rng.normal(0, 1, rbm.n_visible).astype(dt)
    return (v, rbm.weights, np.ascontiguousarray(rbm.weights.T), rbm.visible_bias, rbm.hidden_bias, beta, base,
            chain_keys(seed + 1, n_chains))


CASES = [
    # (connectivity, dtype, activity of the initial states, expected path)
    (1.0, np.float32, 0.5, "blocked"),  # GEMM products
    (1.0, np.float64, 0.1, "blocked"),  # gather products
    (0.05, np.float32, 0.5, "sparse"),
    (0.05, np.float64, 0.2, "sparse"),
]


@pytest.mark.parametrize("conn, dtype, activity, path", CASES)
def test_fast_path_matches_reference_sweep(conn, dtype, activity, path):
    # One sweep from the same states with the same streams: the paths differ from the reference
    # only through the rounding of the fields and the vectorised exp (relative error < 2e-7), so a
    # unit may flip only when its uniform lies within ~1e-6 of p. Expected mismatches among
    # 150 x (120 + 80) = 30000 units: ~0.03; we allow 3 (a wrong draw index, bias or beta
    # would flip about half the units).
    rbm = RBM.random(120, 80, connectivity=conn, weight_scale=0.5, bias_scale=0.5, dtype=dtype, seed=3)
    assert gibbs.gibbs_path(rbm.weights, 150) == path
    args = kernel_args(rbm, 150, activity)
    counter = np.uint64(12345)
    v_ref, h_ref = gibbs._gibbs_reference(*args, counter, 1)
    v_fast, h_fast = gibbs.gibbs_kernel(*args, counter, 1)
    assert v_fast.dtype == dtype and h_fast.dtype == dtype
    assert np.count_nonzero(v_ref != v_fast) + np.count_nonzero(h_ref != h_fast) <= 3


@pytest.mark.parametrize("conn", [1.0, 0.05])
def test_fast_path_sweeps_in_pieces_equal_one_run(conn):
    rbm = RBM.random(50, 30, connectivity=conn, weight_scale=1.0, dtype=np.float32, seed=1)
    args = kernel_args(rbm, 70, 0.3)
    stride = gibbs.draws_per_sweep(50, 30)
    v_all, h_all = gibbs.gibbs_kernel(*args, np.uint64(0), 6)
    v_a, _ = gibbs.gibbs_kernel(*args, np.uint64(0), 2)
    v_b, h_b = gibbs.gibbs_kernel(v_a, *args[1:], np.uint64(2 * stride), 4)
    assert np.array_equal(v_all, v_b) and np.array_equal(h_all, h_b)


def test_zero_sweeps_return_the_input_and_zero_hidden():
    rbm = RBM.random(30, 20, dtype=np.float32, seed=2)
    args = kernel_args(rbm, 5, 0.5)
    v, h = gibbs.gibbs_kernel(*args, np.uint64(0), 0)
    assert np.array_equal(v, args[0]) and not h.any()


@njit
def _exp_neg_of(x):
    ef = np.empty_like(x)
    eb = np.empty_like(x)
    gibbs._exp_neg(x, ef, eb)
    return ef * eb


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-7), (np.float64, 1e-14)])
def test_vectorised_exp_relative_error(dtype, tol):
    x = np.linspace(-85.0, 85.0, 200_001).astype(dtype)
    exact = np.exp(-x.astype(np.float64))
    got = _exp_neg_of(x).astype(np.float64)
    assert np.max(np.abs(got / exact - 1)) < tol


_THREAD_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from dilution import RBM, gibbs
    from dilution.rng import chain_keys
    conn = float(sys.argv[1])
    rbm = RBM.random(100, 70, connectivity=conn, weight_scale=0.5, dtype=np.float32, seed=5)
    rng = np.random.default_rng(0)
    v = (rng.random((300, 100)) < 0.4).astype(np.float32)
    out = gibbs.gibbs_kernel(v, rbm.weights, np.ascontiguousarray(rbm.weights.T), rbm.visible_bias,
                             rbm.hidden_bias, np.ones(300, np.float32), np.zeros(100, np.float32),
                             chain_keys(9, 300), np.uint64(0), 5)
    sys.stdout.write(np.concatenate(out, axis=1).tobytes().hex())
    """
)


@pytest.mark.parametrize("conn", [1.0, 0.05])
def test_results_do_not_depend_on_thread_count(conn):
    outs = []
    for n in (1, 2):
        env = dict(os.environ, NUMBA_NUM_THREADS=str(n), OPENBLAS_NUM_THREADS=str(n))
        res = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT, str(conn)], env=env, capture_output=True,
                             text=True, check=True)
        outs.append(res.stdout)
    assert outs[0] == outs[1] and len(outs[0]) > 0


def test_few_chains_take_the_blocked_path_even_when_diluted():
    rbm = RBM.random(120, 80, connectivity=0.05, dtype=np.float32, seed=3)
    assert gibbs.gibbs_path(rbm.weights, gibbs.SPARSE_MIN_CHAINS) == "sparse"
    assert gibbs.gibbs_path(rbm.weights, gibbs.SPARSE_MIN_CHAINS - 1) == "blocked"
    args = kernel_args(rbm, 8, 0.3)
    v_ref, h_ref = gibbs._gibbs_reference(*args, np.uint64(7), 1)
    v_fast, h_fast = gibbs.gibbs_kernel(*args, np.uint64(7), 1)
    # same tolerance argument as test_fast_path_matches_reference_sweep (1600 units here)
    assert np.count_nonzero(v_ref != v_fast) + np.count_nonzero(h_ref != h_fast) <= 3
