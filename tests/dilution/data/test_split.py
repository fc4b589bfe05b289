from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from dilution.data.split import as_matrix, shuffle, train_validation_split


def _grouped(n: int = 100) -> xr.Dataset:
    """Images grouped by class, like the training part of mnist.npz."""
    labels = np.repeat(np.arange(10), n // 10).astype(np.uint8)
    images = np.arange(n * 6, dtype=np.int64).reshape(n, 2, 3)
    return xr.Dataset(
        {"images": (("sample", "row", "col"), images), "labels": ("sample", labels)},
        coords={"sample": np.arange(n)},
        attrs={"source": "test"},
    )


def test_fraction_split_partitions_and_shuffles():
    ds = _grouped()
    train, val = train_validation_split(ds, 0.2, seed=5)
    assert val.sizes["sample"] == 20 and train.sizes["sample"] == 80
    ids = np.concatenate([train["sample"].values, val["sample"].values])
    np.testing.assert_array_equal(np.sort(ids), ds["sample"].values)  # disjoint, complete
    # data moved with its sample index
    np.testing.assert_array_equal(val["images"].values, ds["images"].values[val["sample"].values])
    assert np.any(np.diff(train["labels"].values.astype(int)) < 0), "training set must not stay grouped by class"
    assert train.attrs["subset"] == "train" and val.attrs["subset"] == "validation"
    assert train.attrs["split_seed"] == 5 and val.attrs["split_n_validation"] == 20
    assert ds.attrs == {"source": "test"}  # input untouched


def test_split_reproducible_by_seed_and_count():
    ds = _grouped()
    a, b = train_validation_split(ds, 7, seed=1)
    a2, b2 = train_validation_split(ds, 7, seed=1)
    assert a.identical(a2) and b.identical(b2) and b.sizes["sample"] == 7
    _, c = train_validation_split(ds, 7, seed=2)
    assert not np.array_equal(b["sample"].values, c["sample"].values)


@pytest.mark.parametrize("bad", [0, 100, 0.0, 1.0, -0.1, 0.001])
def test_split_rejects_empty_sets(bad):
    with pytest.raises(ValueError, match="validation"):
        train_validation_split(_grouped(), bad, seed=0)


def test_split_rejects_bad_types():
    with pytest.raises(TypeError, match="fraction"):
        train_validation_split(_grouped(), "10%", seed=0)
    with pytest.raises(TypeError, match="xarray.Dataset"):
        train_validation_split(np.zeros((3, 4)), 1, seed=0)


def test_shuffle_is_a_seeded_permutation():
    ds = _grouped()
    s = shuffle(ds, seed=3)
    assert s.identical(shuffle(ds, seed=3))
    assert sorted(s["sample"].values) == list(ds["sample"].values)
    assert s.attrs["shuffle_seed"] == 3 and "shuffle_seed" not in ds.attrs


def test_as_matrix_is_row_major():
    ds = _grouped(10)
    m = as_matrix(ds, dtype=np.float32)
    assert m.shape == (10, 6) and m.dtype == np.float32 and m.flags.c_contiguous
    for k in range(10):
        for r in range(2):
            for c in range(3):
                assert m[k, r * 3 + c] == ds["images"].values[k, r, c]
    states = xr.Dataset({"states": (("sample", "visible"), np.eye(3))})
    np.testing.assert_array_equal(as_matrix(states), np.eye(3))
    with pytest.raises(ValueError, match="neither 'images' nor 'states'"):
        as_matrix(xr.Dataset({"x": ("sample", np.zeros(3))}))
    with pytest.raises(ValueError, match="no 'sample' dimension"):
        as_matrix(xr.Dataset({"images": ("n", np.zeros(3))}))
