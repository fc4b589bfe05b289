from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import t as student_t

from analysis.aats import adversarial_accuracy, nearest_hamming, privacy_loss

# Total false-alarm probability of each statistical check below.
ALPHA = 1e-3


def binary(shape, p, seed):
    return (np.random.default_rng(seed).random(shape) < p).astype(np.uint8)


def null_tolerance(statistic, sets, *, n_checks: int, n_perm: int = 30, seed: int = 0) -> np.ndarray:
    """Half-width of an interval that holds each of ``n_checks`` two-sided statistics of sets drawn
    from one distribution, with total false-alarm probability ALPHA.

    Nearest-neighbour indicators are dependent (one point is the nearest neighbour of several),
    so 0.5 / sqrt(n) understates the spread. Under the null the rows of ``sets`` are
    exchangeable: the statistics of ``n_perm`` random relabellings of the pooled rows into groups
    of the same sizes estimate the null standard deviation with the dependence included, and a
    Student t quantile with n_perm - 1 degrees of freedom accounts for that estimate's own error.
    """
    pooled = np.concatenate(sets)
    cuts = np.cumsum([len(s) for s in sets])[:-1]
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(*np.split(pooled[rng.permutation(len(pooled))], cuts)) for _ in range(n_perm)])
    return student_t.isf(ALPHA / (2 * n_checks), n_perm - 1) * draws.std(axis=0, ddof=1)


def test_nearest_hamming_matches_brute_force():
    x, y = binary((70, 40), 0.3, 0), binary((50, 40), 0.3, 1)
    d = (x[:, None, :] != y[None, :, :]).sum(axis=2)
    np.testing.assert_array_equal(nearest_hamming(x, y), d.min(axis=1))
    dxx = (x[:, None, :] != x[None, :, :]).sum(axis=2) + np.diag(np.full(70, 10**6))
    np.testing.assert_array_equal(nearest_hamming(x), dxx.min(axis=1))


def test_identical_disjoint_and_same_distribution():
    x = binary((300, 64), 0.5, 2)
    assert len(np.unique(x, axis=0)) == 300
    same = adversarial_accuracy(x, x)
    assert float(same.aa_truth) == float(same.aa_syn) == 0.0  # every point's nearest neighbour is its copy
    far = np.zeros((300, 128), np.uint8)
    far[:, :64] = x
    other = np.zeros((300, 128), np.uint8)
    other[:, 64:] = binary((300, 64), 0.5, 3)
    assert float(adversarial_accuracy(far, other).aa_ts) == 1.0
    a, b = binary((800, 60), 0.2, 4), binary((800, 60), 0.2, 5)
    ds = adversarial_accuracy(a, b)
    # Two samples of one distribution: each score has mean 0.5 up to O(1/n) (a data point has one
    # fewer data neighbour than sample neighbours; ties count 1/2).
    names = ("aa_ts", "aa_truth", "aa_syn")
    tol = null_tolerance(lambda x, y: [float(adversarial_accuracy(x, y)[k]) for k in names], (a, b), n_checks=3)
    for name, half_width in zip(names, tol):
        assert abs(float(ds[name]) - 0.5) < half_width + 1 / len(a), (name, float(ds[name]), half_width)
    strict = adversarial_accuracy(a, b, ties="strict")
    tie_rate = np.mean(ds.d_ts.values == ds.d_tt.values)
    assert float(ds.aa_truth) - float(strict.aa_truth) == pytest.approx(0.5 * tie_rate, abs=1e-12)


def test_privacy_loss_of_copied_training_set():
    train, test = binary((400, 64), 0.4, 6), binary((400, 64), 0.4, 7)
    ds = privacy_loss(train, test, train.copy(), seed=0)
    # Samples that copy the training set: AA_ts(train) = 0, so the loss is AA_ts(test), which is
    # 0.5 up to O(1/n) because test and train (the samples) come from one distribution.
    assert float(ds.aa_ts.sel(reference="train")) == 0.0
    (tol,) = null_tolerance(lambda x, y: [float(adversarial_accuracy(x, y).aa_ts)], (test, train), n_checks=1)
    assert abs(float(ds.privacy_loss) - 0.5) < tol + 1 / len(train)
    fresh = binary((400, 64), 0.4, 8)
    loss = privacy_loss(train, test, fresh, seed=0)
    # Fresh samples: train, test and samples are exchangeable, so the loss is 0 up to its null spread.
    (tol,) = null_tolerance(lambda x, y, z: [float(privacy_loss(x, y, z, seed=0).privacy_loss)], (train, test, fresh),
                            n_checks=1)
    assert abs(float(loss.privacy_loss)) < tol


def test_errors():
    with pytest.raises(ValueError, match="same number of rows"):
        adversarial_accuracy(np.zeros((3, 4)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="binary"):
        adversarial_accuracy(np.full((3, 4), 2), np.zeros((3, 4)))


@pytest.mark.slow
def test_mnist_sized_sets():
    # 10k x 10k x 784: the chunked float32 products must stay exact and finish in seconds.
    a, b = binary((10_000, 784), 0.13, 9), binary((10_000, 784), 0.13, 10)
    ds = adversarial_accuracy(a, b)
    assert abs(float(ds.aa_ts) - 0.5) < 0.02  # sd ~ 0.5 / sqrt(20000) ~ 0.004 if independent
    sub = slice(0, 300)
    brute = (a[sub, None, :] != b[None, :2000, :]).sum(axis=2).min(axis=1)
    np.testing.assert_array_equal(nearest_hamming(a[sub], b[:2000]), brute)
