from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from analysis.reconstruction import reconstruction_error
from dilution.model import RBM


def test_zero_weights_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=6)
    rbm = RBM(np.zeros((6, 3)), a, rng.normal(size=3))
    v = (rng.random((20, 6)) < 0.5).astype(float)
    ds = reconstruction_error(rbm, v)
    p = expit(a)
    np.testing.assert_allclose(ds.squared_error.values, np.mean((v - p) ** 2, axis=1), atol=1e-15)
    np.testing.assert_allclose(ds.cross_entropy.values, -np.sum(v * np.log(p) + (1 - v) * np.log(1 - p), axis=1), atol=1e-12)
    assert ds.attrs["is_proxy"] == 1


def test_matches_loop_reference_and_sampled_limit():
    rbm = RBM.random(5, 4, weight_scale=1.0, bias_scale=0.5, seed=1)
    v = (np.random.default_rng(2).random((10, 5)) < 0.5).astype(float)
    w, a, b = rbm.weights, rbm.visible_bias, rbm.hidden_bias
    ref = []
    for row in v:
        h = [expit(b[j] + sum(row[i] * w[i, j] for i in range(5))) for j in range(4)]
        rec = [expit(a[i] + sum(h[j] * w[i, j] for j in range(4))) for i in range(5)]
        ref.append(np.mean((row - np.array(rec)) ** 2))
    np.testing.assert_allclose(reconstruction_error(rbm, v).squared_error.values, ref, atol=1e-14)
    # With hidden biases of +-60, p(h|v) is 0 or 1 to double precision: sampling changes nothing.
    sure = rbm.replace(hidden_bias=np.array([60.0, -60.0, 60.0, -60.0]))
    mf = reconstruction_error(sure, v)
    sa = reconstruction_error(sure, v, mode="sampled", seed=3)
    np.testing.assert_allclose(sa.squared_error.values, mf.squared_error.values, atol=1e-15)
    with pytest.raises(ValueError, match="seed"):
        reconstruction_error(rbm, v, mode="sampled")
