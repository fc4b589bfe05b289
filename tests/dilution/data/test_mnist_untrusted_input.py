"""What the MNIST loaders say about files that are not what their name claims (issue 14, item 4)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from dilution.data.mnist import load_mnist, load_npz


@pytest.mark.parametrize(
    "content",
    [b"x_train,y_train\n0,1\n", b"", pickle.dumps({"x_train": [1, 2]}), b"\x93NUMPY\x01\x00v\x00"],
    ids=["text", "empty", "pickle", "npy-header"],
)
def test_a_file_renamed_npz_is_named_and_never_unpickled(tmp_path, content):
    p = tmp_path / "digits.npz"
    p.write_bytes(content)
    for load in (lambda: load_npz(p, "train"), lambda: load_mnist(p, "test")):
        with pytest.raises(ValueError) as err:
            load()
        message = str(err.value)
        assert str(p) in message and "is not a .npz archive" in message and "Keras layout" in message
        assert "pickle" not in message.lower()


def test_object_arrays_are_refused_without_suggesting_pickle(tmp_path):
    p = tmp_path / "m.npz"
    np.savez(p, x_train=np.array([None, 1], dtype=object), y_train=np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match=r"m\.npz: x_train or y_train is not a plain numeric array") as err:
        load_npz(p, "train")
    assert "allow_pickle" not in str(err.value)
