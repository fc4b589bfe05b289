"""The fast Gibbs paths against the slow reference kernel, and their thread-count independence."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit

from dilution import RBM, gibbs, gibbs_sparse, gibbs_tuning
from dilution.blas import gemm_address
from dilution.fastexp import exp_neg
from dilution.gibbs_blocked import active_units, dense_block, gibbs_blocked, sum_rows
from dilution.gibbs_reference import gibbs_reference
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
    v_ref, h_ref = gibbs_reference(*args, counter, 1)
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
    exp_neg(x, ef, eb)
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
    assert gibbs.gibbs_path(rbm.weights, gibbs_tuning.SPARSE_MIN_CHAINS) == "sparse"
    assert gibbs.gibbs_path(rbm.weights, gibbs_tuning.SPARSE_MIN_CHAINS - 1) == "blocked"
    args = kernel_args(rbm, 8, 0.3)
    v_ref, h_ref = gibbs_reference(*args, np.uint64(7), 1)
    v_fast, h_fast = gibbs.gibbs_kernel(*args, np.uint64(7), 1)
    # same tolerance argument as test_fast_path_matches_reference_sweep (1600 units here)
    assert np.count_nonzero(v_ref != v_fast) + np.count_nonzero(h_ref != h_fast) <= 3


@njit
def _sum_rows_of(w, s):
    idx = np.empty(s.shape[0], dtype=np.int64)
    out = np.full(w.shape[1], np.nan, dtype=w.dtype)
    sum_rows(w, idx, active_units(s, idx), out)
    return out


@pytest.mark.parametrize("n_active", [0, 1, 7, 8, 9, 16, 23, 40])
def test_gathered_rows_sum_to_the_product(n_active):
    # 8 rows per pass plus a remainder: every count modulo 8 must give s @ w
    rng = np.random.default_rng(n_active)
    w = rng.normal(size=(40, 13))
    s = np.zeros(40)
    s[rng.choice(40, n_active, replace=False)] = 1.0
    assert np.allclose(_sum_rows_of(w, s), s @ w, rtol=1e-13, atol=1e-13)


def test_forced_paths_match_the_reference_and_bad_path_is_refused():
    rbm = RBM.random(120, 80, connectivity=0.05, weight_scale=0.5, bias_scale=0.5, dtype=np.float32, seed=4)
    args = kernel_args(rbm, 150, 0.3)
    v_ref, h_ref = gibbs_reference(*args, np.uint64(5), 1)
    for path in ("blocked", "sparse"):
        v_fast, h_fast = gibbs.gibbs_kernel(*args, np.uint64(5), 1, path=path)
        # same tolerance argument as test_fast_path_matches_reference_sweep
        assert np.count_nonzero(v_ref != v_fast) + np.count_nonzero(h_ref != h_fast) <= 3, path
    with pytest.raises(ValueError, match="path must be"):
        gibbs.gibbs_kernel(*args, np.uint64(5), 1, path="gemm")


@pytest.mark.parametrize("activity", [0.05, 0.6])  # gathered rows / GEMM
def test_numpy_blas_and_numba_dot_give_the_same_chains(activity):
    rbm = RBM.random(120, 80, weight_scale=0.5, bias_scale=0.5, dtype=np.float32, seed=6)
    v, w, wt, a, b, beta, base, keys = kernel_args(rbm, 150, activity)
    outs = [gibbs_blocked(v, w, wt, a, b, beta, base, keys, np.uint64(3), 2, dense_block(150),
                          gibbs_tuning.GATHER_BELOW[4], address) for address in (gemm_address(np.float32), 0)]
    # the two BLAS may round the fields differently; see test_fast_path_matches_reference_sweep
    assert sum(np.count_nonzero(x != y) for x, y in zip(*outs)) <= 3


@pytest.mark.parametrize("n_chains", [1, 15, 16, 63, 64, 100, 1000, 1025, 5000])
def test_dense_blocks_cover_the_batch_within_the_limits(n_chains):
    block = dense_block(n_chains)
    n_blocks = -(-n_chains // block)
    assert 1 <= block <= gibbs_tuning.DENSE_BLOCK and (n_blocks - 1) * block < n_chains <= n_blocks * block
    if n_chains >= gibbs_tuning.DENSE_MIN_BLOCKS * gibbs_tuning.DENSE_MIN_BLOCK:
        assert n_blocks >= gibbs_tuning.DENSE_MIN_BLOCKS


def _reference_csr(w):
    """CSR of w and of w.T from scipy (its own construction, sorted indices)."""
    from scipy import sparse

    out = []
    for m in (w, np.ascontiguousarray(w.T)):
        c = sparse.csr_matrix(m)
        c.sort_indices()
        out += [c.indptr.astype(np.int64), c.indices.astype(np.int64), c.data]
    return out


def test_csr_arrays_reuse_the_structure_only_for_the_same_nonzero_pattern():
    rng = np.random.default_rng(0)
    w = np.where(rng.random((60, 40)) < 0.1, rng.normal(size=(60, 40)), 0.0)
    moved = w.copy()  # same number of nonzeros, one of them elsewhere: must not hit the cache
    i, j = np.argwhere(w != 0)[0]
    k, m = np.argwhere(w == 0)[0]
    moved[k, m], moved[i, j] = moved[i, j], 0.0
    for weights in (w, 1.5 * w, moved, w, np.zeros_like(w), -w):
        got = gibbs_sparse.csr_arrays(weights)
        want = _reference_csr(weights)
        assert all(np.array_equal(g, r) and g.dtype == r.dtype for g, r in zip(got, want))


def test_training_like_calls_hit_the_pattern_cache():
    # fresh writable arrays with the same mask at every call, as in the training loop
    rng = np.random.default_rng(1)
    w = np.where(rng.random((50, 30)) < 0.05, rng.normal(size=(50, 30)), 0.0)
    first = gibbs_sparse.csr_arrays(w.copy())
    second = gibbs_sparse.csr_arrays(w * 2.0)
    assert second[0] is first[0] and second[1] is first[1]  # the structure arrays are reused
    assert np.array_equal(second[2], 2.0 * first[2])
