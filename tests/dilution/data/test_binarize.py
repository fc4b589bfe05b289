from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from dilution.data.binarize import binarize, binarize_array


def _grey_dataset(x: np.ndarray) -> xr.Dataset:
    return xr.Dataset({"images": (("sample", "row", "col"), x)}, attrs={"source": "test"})


def test_threshold_rule_on_every_grey_level():
    levels = np.arange(256, dtype=np.uint8)[:, None]
    out = binarize_array(levels)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, 0], (levels[:, 0] >= 128).astype(np.uint8))  # documented: x > 127.5
    np.testing.assert_array_equal(binarize_array(levels, threshold=0.25)[:, 0], levels[:, 0] > 63.75)
    np.testing.assert_array_equal(binarize_array(levels / 255.0, max_value=1.0), out)


def test_threshold_dataset_attrs():
    x = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    ds = _grey_dataset(x)
    out = binarize(ds)
    np.testing.assert_array_equal(out["images"].values, x > 127.5)
    assert out.attrs["binarize_method"] == "threshold" and out.attrs["binarize_threshold"] == 0.5
    assert "binarize_seed" not in out.attrs and "binarize_method" not in ds.attrs
    np.testing.assert_array_equal(ds["images"].values, x)  # input untouched
    with pytest.raises(ValueError, match="already binarised"):
        binarize(out)


def test_stochastic_reproducible_by_seed():
    x = np.random.default_rng(0).integers(0, 256, size=(50, 784), dtype=np.uint8)
    a = binarize_array(x, "stochastic", seed=3)
    np.testing.assert_array_equal(a, binarize_array(x, "stochastic", seed=3))
    assert not np.array_equal(a, binarize_array(x, "stochastic", seed=4))
    ds = binarize(_grey_dataset(x.reshape(50, 28, 28)), "stochastic", seed=3)
    np.testing.assert_array_equal(ds["images"].values.reshape(50, 784), a)
    assert ds.attrs["binarize_seed"] == 3 and ds.attrs["binarize_method"] == "stochastic"


def test_stochastic_mean_matches_intensity():
    n = 4000
    levels = np.arange(256, dtype=np.uint8)
    x = np.tile(levels, (n, 1))  # each column: n copies of one grey level
    out = binarize_array(x, "stochastic", seed=11)
    p = levels / 255.0
    mean = out.mean(axis=0)
    assert mean[0] == 0.0 and mean[255] == 1.0
    # Each column mean is Binomial(n, p)/n with sd sqrt(p(1-p)/n) <= 0.0079; 5 sd bounds each of
    # the 256 columns with total false-alarm probability < 256 * 6e-7.
    sd = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(mean - p) <= 5 * sd + 1e-12)
    # Columns are independent draws: neighbouring rows of one column are uncorrelated.
    col = out[:, 128].astype(float)
    corr = np.corrcoef(col[:-1], col[1:])[0, 1]
    assert abs(corr) < 5 / np.sqrt(n)  # sd of a null sample correlation ~ 1/sqrt(n)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([[0.0, np.nan]]), "finite"),
        (np.array([[-1, 3]]), r"\[0, 255\]"),
        (np.array([[0, 256]]), r"\[0, 255\]"),
        (np.array([[True, False]]), "real numeric"),
        (np.array([["a", "b"]]), "real numeric"),
        (np.float64(3.0), "scalar"),
    ],
)
def test_bad_grey_levels(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        binarize_array(bad)


def test_bad_options():
    x = np.zeros((2, 3), np.uint8)
    with pytest.raises(ValueError, match="needs a seed"):
        binarize_array(x, "stochastic")
    with pytest.raises(ValueError, match="only used by method='stochastic'"):
        binarize_array(x, seed=1)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\)"):
        binarize_array(x, threshold=1.5)
    with pytest.raises(ValueError, match="method must be"):
        binarize_array(x, "otsu")
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        binarize_array(x, "stochastic", seed=-1)
    with pytest.raises(ValueError, match="no variable 'pixels'"):
        binarize(_grey_dataset(np.zeros((1, 2, 2), np.uint8)), variable="pixels")
    with pytest.raises(TypeError, match="binarize_array"):
        binarize(x)
