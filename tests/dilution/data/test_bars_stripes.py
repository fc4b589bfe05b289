from __future__ import annotations

import math

import numpy as np
import pytest

from dilution import exact
from dilution.data import bars_stripes as bs
from dilution.model import RBM


def _brute_force(n: int) -> set[tuple[int, ...]]:
    """Every n x n binary image whose rows are all constant or whose columns are all constant."""
    imgs = ((np.arange(2 ** (n * n))[:, None] >> np.arange(n * n)) & 1).reshape(-1, n, n)
    rows_constant = np.all(imgs == imgs[:, :, :1], axis=(1, 2))
    cols_constant = np.all(imgs == imgs[:, :1, :], axis=(1, 2))
    return {tuple(img.ravel()) for img in imgs[rows_constant | cols_constant]}


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_patterns_equal_brute_force_enumeration(n):
    pats = bs.patterns(n)
    assert pats.dtype == np.uint8
    assert {tuple(p) for p in pats} == _brute_force(n)
    assert len(pats) == bs.n_patterns(n) == 2 ** (n + 1) - 2  # empty and full counted once
    np.testing.assert_array_equal(bs.codes(n), (pats.astype(np.int64) << np.arange(n * n)).sum(axis=1))
    assert np.all(np.diff(bs.codes(n)) > 0)


@pytest.mark.parametrize("n", [3, 5])
def test_symmetries(n):
    pats = {tuple(p) for p in bs.patterns(n)}
    imgs = bs.patterns(n).reshape(-1, n, n)
    for transform in (lambda x: x.T, lambda x: 1 - x, lambda x: x[::-1], lambda x: x[:, ::-1]):
        assert {tuple(transform(x).ravel()) for x in imgs} == pats


def test_exact_distribution():
    n = 3
    ds = bs.distribution(n)
    p = ds["probability"].values
    assert p.sum() == pytest.approx(1.0) and np.all(p == p[0])
    lp = bs.log_prob_visible(n)
    assert np.exp(lp).sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(np.flatnonzero(np.isfinite(lp)), ds["code"].values)
    finite = lp[np.isfinite(lp)]
    assert bs.entropy(n) == pytest.approx(-(np.exp(finite) * finite).sum()) == pytest.approx(math.log(14))
    # KL to itself is 0; to the uniform model it is n*n log 2 - H
    assert bs.kl_divergence(n, lp) == pytest.approx(0.0, abs=1e-12)
    assert bs.kl_divergence(n, np.full(2**9, -9 * math.log(2))) == pytest.approx(9 * math.log(2) - math.log(14))
    rbm = RBM.random(9, 4, weight_scale=1.0, bias_scale=0.5, seed=0)
    lq = exact.log_prob_visible(rbm)
    ref = sum(-math.log(14) - lq[c] for c in ds["code"].values) / 14
    assert bs.kl_divergence(n, lq) == pytest.approx(ref, rel=1e-12)


def test_samples_uniform_over_patterns():
    n, n_samples = 3, 50_000
    v = bs.sample(n, n_samples, seed=2)
    codes = (v.astype(np.int64) << np.arange(9)).sum(axis=1)
    assert set(codes) <= set(bs.codes(n))
    counts = np.array([np.count_nonzero(codes == c) for c in bs.codes(n)])
    # each count is Binomial(N, 1/14): 5 sd per pattern (14 patterns, false alarm < 1e-5)
    p = 1 / 14
    assert np.all(np.abs(counts - n_samples * p) < 5 * math.sqrt(n_samples * p * (1 - p)))
    np.testing.assert_array_equal(v, bs.sample(n, n_samples, seed=2))
    ds = bs.dataset(n, 10, seed=2)
    np.testing.assert_array_equal(ds["images"].values.reshape(10, 9), v[:10])


def test_bad_inputs():
    for bad in (0, 8, 2.5, True):
        with pytest.raises(ValueError, match="size n"):
            bs.patterns(bad)
    with pytest.raises(ValueError, match="max n=4"):
        bs.log_prob_visible(5)
    with pytest.raises(ValueError, match=r"shape \(512,\)"):
        bs.kl_divergence(3, np.zeros(10))
    with pytest.raises(ValueError, match="NaN"):
        bs.kl_divergence(2, np.full(16, np.nan))
    with pytest.raises(ValueError, match="n_samples"):
        bs.sample(3, 0, seed=1)
