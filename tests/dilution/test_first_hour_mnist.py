"""Issue 14, what it must show 2, for MNIST: the defaults of ``dilution train --data mnist.npz``
end better than independent pixels fitted to the same data, by the run's own AIS estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dilution
from dilution import cli
from dilution.conditionals import free_energy
from dilution.data import binarize, mnist
from dilution.data.split import as_matrix


def _subset(source, path, n_train: int, n_test: int):
    with np.load(source) as f:
        np.savez(path, x_train=f["x_train"][:n_train], y_train=f["y_train"][:n_train],
                 x_test=f["x_test"][:n_test], y_test=f["y_test"][:n_test])
    return path


def _binary(path, subset: str) -> np.ndarray:
    return as_matrix(binarize.binarize(mnist.load_mnist(path, subset), method="threshold")).astype(np.float64)


def test_shortened_mnist_defaults_beat_independent_pixels(mnist_npz, tmp_path, monkeypatch, capsys):
    # The defaults (100 hidden units, PCD-10, learning rate 0.01, momentum 0.5, batch 100) on the
    # first 3,000 training images for 2 epochs (60 of the full run's 6,000 updates); a 1,000-beta
    # final AIS instead of 5,000 keeps the test short (its standard error says how good it is).
    data = _subset(mnist_npz, tmp_path / "mnist-subset.npz", 3000, 2000)
    monkeypatch.setattr(cli, "FINAL_AIS_BETAS", 1000)
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(data), "--epochs", "2", "--checkpoint-log-likelihood", "none", "--quiet",
                     "--sample-sweeps", "2", "--grid-samples", "4", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test log-likelihood, AIS" in printed and "+-" in printed and "independent pixels" in printed
    attrs = dilution.io.load_dataset(out / "model.nc").attrs
    model = dilution.load(out / "model.nc")
    train, test = _binary(data, "train"), _binary(data, "test")
    p = np.clip(train.mean(axis=0), 1e-3, 1 - 1e-3)
    independent = test @ np.log(p) + (1 - test) @ np.log1p(-p)
    assert attrs["summary_independent_pixels_test_log_likelihood"] == pytest.approx(independent.mean(), rel=1e-12)
    neg_f = -free_energy(test, model.weights, model.visible_bias, model.hidden_bias, 1.0, np.zeros(model.n_visible))
    # The model's test log-likelihood as the run reports it, recomputed from its log Z.
    assert attrs["summary_test_log_likelihood"] == pytest.approx(neg_f.mean() - attrs["summary_log_partition"], abs=1e-9)
    # Both are scored on the same images, so their difference is judged per image (paired): its
    # error is that of the mean difference (std / sqrt(n)) and of the AIS log Z, independent. The
    # gain must exceed three of those standard errors (a one-sided 0.13 % chance of a false pass).
    gain = attrs["summary_test_log_likelihood"] - attrs["summary_independent_pixels_test_log_likelihood"]
    diff = neg_f - independent
    se = math.hypot(diff.std(ddof=1) / math.sqrt(diff.size), attrs["summary_log_partition_se"])
    assert gain > 3 * se, (gain, se)
