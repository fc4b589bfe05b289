"""The Gibbs sampler against exact enumeration, and its reproducibility."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import logsumexp

import dilution
from dilution import RBM, exact
from dilution.conditionals import free_energy, hidden_probabilities, visible_probabilities


def state_codes(v: np.ndarray) -> np.ndarray:
    """Row k of exact.all_states has bit u of k in column u."""
    return (v.astype(np.int64) << np.arange(v.shape[1])).sum(axis=1)


def tv_bound(p: np.ndarray, n: int, delta: float = 1e-6) -> float:
    """Upper bound on the total variation between an n-sample empirical distribution and p that
    holds with probability >= 1 - delta: E[TV] <= 1/2 sum_x sqrt(p_x (1 - p_x) / n) (Jensen), plus a
    McDiarmid deviation sqrt(log(1/delta) / (2 n)) (one sample moves TV by at most 1/n)."""
    return 0.5 * np.sum(np.sqrt(p * (1 - p) / n)) + np.sqrt(np.log(1 / delta) / (2 * n))


MODELS = [
    # (n_visible, n_hidden, connectivity, weight_scale, bias_scale, dtype)
    (8, 4, 1.0, 1.0, 0.5, np.float64),
    (8, 5, 0.3, 3.0, 0.5, np.float64),  # strong and sparse
    (7, 6, 0.5, 3.0, 1.0, np.float64),  # strong
    (9, 3, 0.6, 2.0, 1.0, np.float32),
    (6, 8, 0.3, 1.5, 0.5, np.float32),
]


@pytest.mark.parametrize("model", MODELS)
def test_sampler_matches_exact_distribution(model):
    n_v, n_h, conn, ws, bs, dtype = model
    rbm = RBM.random(n_v, n_h, connectivity=conn, weight_scale=ws, bias_scale=bs, dtype=dtype, seed=n_v + 10 * n_h)
    p = np.exp(exact.log_prob_visible(rbm))
    n = 40_000
    v = dilution.sample(rbm, n, 300, seed=1)
    counts = np.bincount(state_codes(v), minlength=2**n_v)
    tv = 0.5 * np.abs(counts / n - p).sum()
    assert tv < tv_bound(p, n), f"TV {tv:.4f} above bound {tv_bound(p, n):.4f}"


def test_a_wrong_distribution_fails_the_same_bound():
    # The test above can fail: a model with one weight changed is caught by the same bound.
    rbm = RBM.random(8, 4, weight_scale=1.0, bias_scale=0.5, seed=84)
    other = rbm.replace(weights=rbm.weights + np.where(np.arange(4) == 0, 0.5, 0.0))
    p = np.exp(exact.log_prob_visible(rbm))
    n = 40_000
    v = dilution.sample(other, n, 300, seed=1)
    tv = 0.5 * np.abs(np.bincount(state_codes(v), minlength=256) / n - p).sum()
    assert tv > tv_bound(p, n)


def test_sweeps_in_pieces_equal_one_run():
    rbm = RBM.random(10, 6, connectivity=0.5, weight_scale=1.0, seed=0)
    keys = np.array([3, 4, 5], dtype=np.uint64)
    v0 = (np.random.default_rng(0).random((3, 10)) < 0.5).astype(float)
    args = (rbm.weights, np.ascontiguousarray(rbm.weights.T), rbm.visible_bias, rbm.hidden_bias,
            np.ones(3), np.zeros(10), keys)
    stride = 16
    v_all, h_all = dilution.gibbs.gibbs_kernel(v0, *args, np.uint64(0), 7)
    v_a, _ = dilution.gibbs.gibbs_kernel(v0, *args, np.uint64(0), 3)
    v_b, h_b = dilution.gibbs.gibbs_kernel(v_a, *args, np.uint64(3 * stride), 4)
    assert np.array_equal(v_all, v_b) and np.array_equal(h_all, h_b)


def test_same_seed_same_samples_and_different_seed_different():
    rbm = RBM.random(20, 10, connectivity=0.5, weight_scale=1.0, seed=0)
    a = dilution.sample(rbm, 50, 10, seed=3)
    assert np.array_equal(a, dilution.sample(rbm, 50, 10, seed=3))
    assert not np.array_equal(a, dilution.sample(rbm, 50, 10, seed=4))


_THREAD_SCRIPT = """
import sys, numpy as np, numba, dilution
assert numba.get_num_threads() == int(sys.argv[2])
out = []
for dtype in (np.float32, np.float64):
    rbm = dilution.RBM.random(50, 30, connectivity=0.3, weight_scale=1.0, dtype=dtype, seed=1)
    out.append(dilution.sample(rbm, 64, 20, seed=9).astype(np.float64))
np.save(sys.argv[1], np.concatenate(out))
"""


def test_bit_identical_with_one_and_two_threads(tmp_path):
    results = []
    for threads in (1, 2):
        path = tmp_path / f"t{threads}.npy"
        env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
        subprocess.run([sys.executable, "-c", _THREAD_SCRIPT, str(path), str(threads)], check=True, env=env)
        results.append(np.load(path))
    assert np.array_equal(results[0], results[1])


def test_beta_zero_gives_independent_fair_coins():
    rbm = RBM.random(12, 5, weight_scale=3.0, bias_scale=3.0, seed=2)
    v = dilution.sample(rbm, 20_000, 2, seed=0, beta=0.0)
    # each pixel mean has std 0.5 / sqrt(20000) = 0.0035; 6 sigma
    assert np.all(np.abs(v.mean(axis=0) - 0.5) < 6 * 0.5 / np.sqrt(20_000))


def test_tempered_sampler_matches_exact_at_beta():
    # p_beta(v) is the visible marginal of the RBM with parameters scaled by beta
    rbm = RBM.random(8, 4, connectivity=0.6, weight_scale=2.0, bias_scale=1.0, seed=12)
    beta = 0.4
    scaled = RBM(beta * rbm.weights, beta * rbm.visible_bias, beta * rbm.hidden_bias, rbm.mask)
    p = np.exp(exact.log_prob_visible(scaled))
    n = 40_000
    v = dilution.sample(rbm, n, 100, seed=5, beta=beta)
    tv = 0.5 * np.abs(np.bincount(state_codes(v), minlength=256) / n - p).sum()
    assert tv < tv_bound(p, n)


def test_conditionals_and_free_energy_match_brute_force():
    rbm = RBM.random(6, 4, connectivity=0.5, weight_scale=2.0, bias_scale=1.0, seed=4)
    v = exact.all_states(6)
    h = exact.all_states(4)
    w, a, b = rbm.weights, rbm.visible_bias, rbm.hidden_bias
    beta = 0.7
    base = np.linspace(-1, 1, 6)
    assert np.allclose(hidden_probabilities(v, w, b, beta), 1 / (1 + np.exp(-beta * (v @ w + b))), atol=1e-15)
    assert np.allclose(visible_probabilities(h, np.ascontiguousarray(w.T), a, beta),
                       1 / (1 + np.exp(-beta * (h @ w.T + a))), atol=1e-15)
    # F_beta(v) = -log sum_h exp(-beta E(v,h) + (1-beta) base.v)
    neg_e = (v @ a)[:, None] + (h @ b)[None, :] + v @ w @ h.T
    ref = -logsumexp(beta * neg_e, axis=1) - (1 - beta) * v @ base
    assert np.allclose(free_energy(v, w, a, b, beta, base), ref, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_chains=0), "n_chains must be an integer >= 1"),
        (dict(n_sweeps=-1), "n_sweeps must be an integer >= 0"),
        (dict(beta=float("nan")), "beta must be finite, got nan"),
        (dict(init=np.full((3, 5), 0.5)), "binary"),
        (dict(init=np.zeros((2, 5))), "3 rows"),
        (dict(init=np.zeros((3, 4))), r"shape \(n_samples, 5\)"),
        (dict(seed=-1), "seed must be a non-negative integer"),
    ],
)
def test_sample_bad_input(kwargs, match):
    rbm = RBM.random(5, 2, seed=0)
    args = dict(n_chains=3, n_sweeps=2, seed=0)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        dilution.sample(rbm, **args)
