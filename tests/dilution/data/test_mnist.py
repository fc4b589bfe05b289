from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from dilution.data.mnist import IMAGE_SHAPE, load_idx, load_mnist, load_npz, read_idx
from dilution.data.split import as_matrix


def _idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _readme_md5s(data_dir: Path) -> dict[str, str]:
    """md5 checksums listed in the data README, by file name (table row: names, then 'md5 `a` and `b`')."""
    found = {}
    for line in (data_dir / "README.md").read_text().splitlines():
        names = re.findall(r"`([\w.-]+-idx\d-ubyte\.gz)`", line)
        sums = re.findall(r"`([0-9a-f]{32})`", line)
        if names and len(names) == len(sums):
            found.update(zip(names, sums))
    return found


def test_idx_test_set_matches_npz_and_published_md5(data_dir, mnist_npz):
    idx = load_mnist(data_dir / "mnist", "test")
    npz = load_npz(mnist_npz, "test")
    assert idx.attrs["format"] == "idx" and npz.attrs["format"] == "npz"
    assert idx["images"].shape == (10_000, *IMAGE_SHAPE) and idx["images"].dtype == np.uint8
    np.testing.assert_array_equal(idx["images"].values, npz["images"].values)
    np.testing.assert_array_equal(idx["labels"].values, npz["labels"].values)
    assert set(np.unique(idx["labels"].values)) == set(range(10))
    md5 = _readme_md5s(data_dir)
    assert md5, "the data README lists no md5 checksums: parsing failed"
    assert idx.attrs["images_md5"] == md5["t10k-images-idx3-ubyte.gz"]
    assert idx.attrs["labels_md5"] == md5["t10k-labels-idx1-ubyte.gz"]
    # the attrs are checksums of the files as stored, computed independently here
    raw = (data_dir / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes()
    assert idx.attrs["images_md5"] == hashlib.md5(raw).hexdigest()
    flat = as_matrix(idx)
    assert flat.shape == (10_000, 784)
    np.testing.assert_array_equal(flat[123], idx["images"].values[123].ravel())


def test_raw_idx_equals_gzipped(data_dir, tmp_path):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(gzip.decompress((data_dir / "mnist" / f"{name}.gz").read_bytes()))
    raw = load_mnist(tmp_path, "test")
    gz = load_mnist(data_dir / "mnist", "test")
    np.testing.assert_array_equal(raw["images"].values, gz["images"].values)
    np.testing.assert_array_equal(raw["labels"].values, gz["labels"].values)


def test_npz_train_is_grouped_by_class(mnist_npz):
    train = load_npz(mnist_npz, "train")
    assert train.sizes["sample"] == 60_000
    labels = train["labels"].values
    assert np.all(np.diff(labels.astype(int)) >= 0), "README says x_train is grouped by class"
    assert load_mnist(mnist_npz, "train").attrs["md5"] == hashlib.md5(mnist_npz.read_bytes()).hexdigest()


def test_idx_round_trip_of_other_types(tmp_path):
    rng = np.random.default_rng(0)
    for code, dtype in ((0x08, np.uint8), (0x0C, np.int32), (0x0E, np.float64)):
        arr = (rng.standard_normal((3, 4, 2)) * 50).astype(dtype)
        p = tmp_path / f"a{code}.idx"
        p.write_bytes(_idx_bytes(arr, code))
        out = read_idx(p)
        assert out.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(out, arr)


@pytest.fixture
def fake_pair(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5, dtype=np.uint8)
    ip, lp = tmp_path / "img.idx", tmp_path / "lab.idx"
    ip.write_bytes(_idx_bytes(images))
    lp.write_bytes(_idx_bytes(labels))
    return images, labels, ip, lp


def test_small_fake_pair_loads(fake_pair):
    images, labels, ip, lp = fake_pair
    ds = load_idx(ip, lp, split="test")
    np.testing.assert_array_equal(ds["images"].values, images)
    np.testing.assert_array_equal(ds["labels"].values, labels)
    assert ds.attrs["images_md5"] == hashlib.md5(ip.read_bytes()).hexdigest()


def test_truncated_and_padded_idx(fake_pair):
    _, _, ip, lp = fake_pair
    raw = ip.read_bytes()
    ip.write_bytes(raw[:-1])
    with pytest.raises(ValueError, match=r"img\.idx.*truncated.*\(5, 4, 3\)"):
        load_idx(ip, lp)
    ip.write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="trailing bytes"):
        read_idx(ip)
    ip.write_bytes(raw[:10])  # cut inside the dimensions
    with pytest.raises(ValueError, match="too short"):
        read_idx(ip)


def test_bad_magic_and_not_idx(tmp_path):
    p = tmp_path / "x.idx"
    p.write_bytes(b"\x01\x02\x08\x03" + bytes(20))
    with pytest.raises(ValueError, match=r"x\.idx.*magic number 01020803"):
        read_idx(p)
    p.write_bytes(b"\x00\x00\x07\x01" + bytes(8))  # unknown type code
    with pytest.raises(ValueError, match="magic number"):
        read_idx(p)
    p.write_bytes(b"ab")
    with pytest.raises(ValueError, match="shorter than the 4-byte magic"):
        read_idx(p)


def test_truncated_gzip(fake_pair, tmp_path):
    _, _, ip, _ = fake_pair
    gz = gzip.compress(ip.read_bytes())
    p = tmp_path / "img.idx.gz"
    p.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(ValueError, match=r"img\.idx\.gz.*gzip"):
        read_idx(p)


def test_mismatched_counts(fake_pair, tmp_path):
    _, labels, ip, _ = fake_pair
    lp = tmp_path / "short.idx"
    lp.write_bytes(_idx_bytes(labels[:4]))
    with pytest.raises(ValueError, match="5 images but 4 labels"):
        load_idx(ip, lp)
    with pytest.raises(ValueError, match=r"images must be uint8 of shape \(n, rows, cols\)"):
        load_idx(lp, lp)


def test_missing_and_unreadable_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.gz"):
        read_idx(tmp_path / "nope.gz")
    with pytest.raises(FileNotFoundError, match="neither the IDX files"):
        load_mnist(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_mnist(tmp_path / "missing", "test")
    (tmp_path / "folder.gz").mkdir()
    with pytest.raises(OSError, match="folder.gz"):
        read_idx(tmp_path / "folder.gz")
    with pytest.raises(ValueError, match="split must be"):
        load_mnist(tmp_path, "validation")


def test_bad_npz(tmp_path):
    p = tmp_path / "m.npz"
    np.savez(p, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match=r"lacks array\(s\) \['x_test', 'y_test'\]"):
        load_npz(p, "test")
    ds = load_npz(p, "train")
    assert ds.sizes["sample"] == 2
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"m\.npz: not a readable \.npz"):
        load_npz(p, "train")
    np.savez(p, x_test=np.zeros((2, 28, 28), np.float32), y_test=np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="images must be uint8"):
        load_npz(p, "test")
