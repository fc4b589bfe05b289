from __future__ import annotations

import numpy as np
import pytest

from dilution import RBM


def test_mask_zeroes_weights_and_arrays_are_read_only():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 3))
    mask = rng.random((5, 3)) < 0.5
    rbm = RBM(w, np.zeros(5), np.zeros(3), mask)
    assert np.all(rbm.weights[~mask] == 0.0)
    assert np.array_equal(rbm.weights[mask], w[mask])
    with pytest.raises(ValueError):
        rbm.weights[0, 0] = 1.0
    # replace() re-applies the mask to new weights
    assert np.all(rbm.replace(weights=np.ones((5, 3))).weights[~mask] == 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_follows_weights(dtype):
    rbm = RBM(np.zeros((4, 2), dtype=dtype), np.zeros(4), np.zeros(2))
    assert rbm.dtype == dtype
    assert rbm.visible_bias.dtype == dtype and rbm.hidden_bias.dtype == dtype
    assert RBM.random(4, 2, dtype=dtype, seed=0).dtype == dtype


def test_random_connectivity_is_exact_and_seeded():
    a = RBM.random(30, 20, connectivity=0.3, seed=5)
    assert a.n_connections == round(0.3 * 600)
    assert a.connectivity == pytest.approx(0.3)
    assert a == RBM.random(30, 20, connectivity=0.3, seed=5)
    assert a != RBM.random(30, 20, connectivity=0.3, seed=6)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(weights=np.zeros(4)), ValueError, "2-D"),
        (dict(visible_bias=np.zeros(3)), ValueError, r"visible_bias must have shape \(4,\)"),
        (dict(hidden_bias=np.zeros(3)), ValueError, r"hidden_bias must have shape \(2,\)"),
        (dict(weights=np.array([[np.nan, 0], [0, 0], [0, 0], [0, 0]])), ValueError, "finite"),
        (dict(visible_bias=np.array([0, np.inf, 0, 0])), ValueError, "finite"),
        (dict(mask=np.ones((4, 2), dtype=int)), TypeError, "boolean"),
        (dict(mask=np.ones((2, 4), dtype=bool)), ValueError, r"mask must have shape \(4, 2\)"),
        (dict(weights=np.zeros((4, 2), dtype=np.float16)), TypeError, "float32 or float64"),
        (dict(weights=np.array([["a", "b"]] * 4)), TypeError, "real-valued"),
    ],
)
def test_bad_input_names_the_problem(kwargs, error, match):
    args = dict(weights=np.zeros((4, 2)), visible_bias=np.zeros(4), hidden_bias=np.zeros(2), mask=None)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        RBM(**args)


@pytest.mark.parametrize("connectivity", [-0.1, 1.5, float("nan")])
def test_connectivity_outside_unit_interval(connectivity):
    with pytest.raises(ValueError, match=r"connectivity must be in \[0, 1\]"):
        RBM.random(4, 3, connectivity=connectivity, seed=0)
