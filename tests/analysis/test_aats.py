from __future__ import annotations

import numpy as np
import pytest

from analysis.aats import adversarial_accuracy, nearest_hamming, privacy_loss


def binary(shape, p, seed):
    return (np.random.default_rng(seed).random(shape) < p).astype(np.uint8)


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
    a, b = binary((1500, 60), 0.2, 4), binary((1500, 60), 0.2, 5)
    ds = adversarial_accuracy(a, b)
    # Two samples of one distribution: each indicator has mean ~0.5 (ties count 1/2), sd <= 0.5/sqrt(1500)
    # = 0.013 per AA if independent; nearest-neighbour indicators are weakly dependent, so allow 0.05 (~5 sd).
    assert abs(float(ds.aa_ts) - 0.5) < 0.05
    assert abs(float(ds.aa_truth) - 0.5) < 0.05 and abs(float(ds.aa_syn) - 0.5) < 0.05
    strict = adversarial_accuracy(a, b, ties="strict")
    tie_rate = np.mean(ds.d_ts.values == ds.d_tt.values)
    assert float(ds.aa_truth) - float(strict.aa_truth) == pytest.approx(0.5 * tie_rate, abs=1e-12)


def test_privacy_loss_of_copied_training_set():
    train, test = binary((400, 64), 0.4, 6), binary((400, 64), 0.4, 7)
    ds = privacy_loss(train, test, train.copy(), seed=0)
    # Samples that copy the training set: AA_ts(train) = 0, AA_ts(test) ~ 0.5 (as above, 0.05 tolerance).
    assert float(ds.aa_ts.sel(reference="train")) == 0.0
    assert abs(float(ds.privacy_loss) - 0.5) < 0.05
    fresh = privacy_loss(train, test, binary((400, 64), 0.4, 8), seed=0)
    # Fresh samples: both AA_ts ~ 0.5 with sd ~0.02 each; difference within 0.08.
    assert abs(float(fresh.privacy_loss)) < 0.08


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
