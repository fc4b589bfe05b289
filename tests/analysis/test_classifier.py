from __future__ import annotations

import numpy as np
import pytest

from analysis.classifier import (
    ClassifierConfig,
    DigitClassifier,
    classifier_score,
    load_or_train_classifier,
)
from dilution.gibbs import sample
from dilution.model import RBM


@pytest.fixture(scope="session")
def mnist(mnist_npz):
    with np.load(mnist_npz) as f:
        return {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}


@pytest.fixture(scope="session")
def classifier_path(tmp_path_factory, mnist):
    # Trained once per session (about 1-2 min on 2 busy cores); the other tests reload the cache.
    path = tmp_path_factory.mktemp("classifier") / "digits_seed0.nc"
    load_or_train_classifier(path, mnist["x_train"], mnist["y_train"], seed=0,
                             test_images=mnist["x_test"], test_labels=mnist["y_test"])
    return path


@pytest.fixture(scope="session")
def classifier(classifier_path, mnist):
    return load_or_train_classifier(classifier_path, mnist["x_train"], mnist["y_train"], seed=0)


def test_test_accuracy_at_least_97_percent(classifier, mnist):
    assert classifier.test_accuracy >= 0.97
    # The cached value is the accuracy recomputed from the reloaded weights.
    assert classifier.accuracy(mnist["x_test"], mnist["y_test"]) == classifier.test_accuracy


def test_cache_refuses_other_seed_or_config(classifier_path, mnist):
    with pytest.raises(ValueError, match="seed"):
        load_or_train_classifier(classifier_path, mnist["x_train"], mnist["y_train"], seed=1)
    with pytest.raises(ValueError, match="config"):
        load_or_train_classifier(classifier_path, mnist["x_train"], mnist["y_train"], seed=0,
                                 config=ClassifierConfig(n_hidden=128))


def test_a_cache_path_holding_another_file_is_refused_by_name(tmp_path, mnist):
    # a model file given as the classifier ended in KeyError: "No variable named 'w1'"
    import dilution

    path = tmp_path / "model.nc"
    dilution.save(RBM.random(784, 4, seed=0), path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"model\.nc is not a digit classifier file \(it has no w1, b1, w2, b2\)"):
        load_or_train_classifier(path, mnist["x_train"][:10], mnist["y_train"][:10], seed=0)
    assert path.read_bytes() == before


def test_scores_rank_digits_above_corrupted_digits_above_noise(classifier, mnist):
    rng = np.random.default_rng(0)
    real = (mnist["x_test"][:2000].reshape(2000, -1) > 127.5).astype(np.float32)
    scores = []
    for flip in (0.0, 0.1, 0.25, 0.5):  # flip = 0.5 is uniform noise
        corrupted = np.where(rng.random(real.shape) < flip, 1 - real, real) if flip < 0.5 else (rng.random(real.shape) < 0.5)
        scores.append(classifier_score(classifier, corrupted))
    for name in ("inception_score", "coverage_entropy"):
        values = [float(s[name]) for s in scores]
        assert values == sorted(values, reverse=True), (name, values)
    assert float(scores[0].inception_score) > 8.0
    # Coverage of real digits, exactly bounded: the predicted-class histogram is within total
    # variation e (the error rate on these digits) of the true-label histogram, so by the
    # Fannes-Audenaert inequality its entropy is at least H(labels) - e log 9 - h(e).
    labels = mnist["y_test"][:2000]
    e = float(np.mean(classifier.log_proba(real).argmax(axis=1) != labels))
    freq = np.bincount(labels, minlength=10) / labels.size
    h_labels = -np.sum(freq[freq > 0] * np.log(freq[freq > 0]))
    h_e = -e * np.log(e) - (1 - e) * np.log1p(-e) if 0 < e < 1 else 0.0
    assert float(scores[0].coverage_entropy) >= h_labels - e * np.log(9) - h_e - 1e-12
    assert float(scores[0].mean_max_probability) > 0.95
    # Samples of an untrained RBM (small random weights) look like noise: far below real digits.
    rbm = RBM.random(784, 100, seed=1)
    untrained = classifier_score(classifier, sample(rbm, 2000, 50, seed=2))
    for name in ("inception_score", "coverage_entropy"):
        assert float(untrained[name]) < float(scores[1][name]) < float(scores[0][name])
    # The max probability alone is fooled by noise (the network is confidently wrong on it), so it
    # only separates real digits from the rest.
    assert float(untrained.mean_max_probability) < float(scores[0].mean_max_probability)


def test_scores_closed_form_with_hand_made_classifier():
    # Pixel c on -> hidden unit c -> logit 60 for class c: p(y|x) is one-hot to double precision.
    w1 = np.zeros((784, 10), np.float32)
    w1[np.arange(10), np.arange(10)] = 1.0
    clf = DigitClassifier(w1, np.zeros(10, np.float32), 60 * np.eye(10, dtype=np.float32), np.zeros(10, np.float32),
                          config=ClassifierConfig(n_hidden=10), seed=0, test_accuracy=float("nan"), training_data_sha256="")
    x = np.zeros((30, 784))
    x[np.arange(30), np.arange(30) % 10] = 1  # every class three times
    ds = classifier_score(clf, x)
    assert float(ds.inception_score) == pytest.approx(10.0, rel=1e-12)
    assert float(ds.coverage_entropy) == pytest.approx(np.log(10), rel=1e-12)
    assert float(ds.mean_max_probability) == pytest.approx(1.0, rel=1e-12)
    one = classifier_score(clf, x[:1].repeat(5, axis=0))  # a single class: no diversity
    assert float(one.inception_score) == pytest.approx(1.0, rel=1e-12)
    assert float(one.coverage_entropy) == 0.0
    with pytest.raises(ValueError, match="binary"):
        classifier_score(clf, np.full((2, 784), 0.5))


def test_untrained_rbm_scores_far_below_real_digits(classifier, mnist):
    # An untrained RBM as training starts it (visible biases from the data marginals, tiny weights)
    # draws pixels independently with MNIST's marginals: blurred ink where digits have ink. Its
    # samples must score far below real digits on the Inception-style score. (Whether they score
    # above uniform noise is not a property of the metric: both are out of the classifier's
    # training distribution, and the sign of that gap changed with the classifier's seed.)
    from dilution.training import initialize

    n = 20000
    train_binary = (mnist["x_train"].reshape(-1, 784) >= 128).astype(np.float64)
    untrained = sample(initialize(784, 100, train_binary, seed=1), n, 50, seed=2)
    real = (mnist["x_test"].reshape(-1, 784) >= 128).astype(np.float64)

    def score(x):
        return float(classifier_score(classifier, x).inception_score)

    # Real digits: ten balanced classes recognised confidently give a score near 10; samples with
    # no digit shape concentrate on a few classes. 3x is far outside either score's bootstrap spread.
    assert score(real) > 3 * score(untrained)
