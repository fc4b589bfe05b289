"""MNIST from files the user already has: IDX (gzipped or raw) and the Keras ``mnist.npz``.

The package never downloads. Loaders return grey-level images (0..255, uint8) as a Dataset
with variables ``images`` (sample, row, col) and ``labels`` (sample); coordinate ``sample``
is the index in the source file, so it survives shuffles and splits. attrs record the source
path, the split and the md5/sha256 of each file as stored on disk (for ``.gz`` files: of the
compressed bytes, which is what published MNIST checksums refer to).

In the Keras ``mnist.npz`` the training images are grouped by class: shuffle before taking
mini-batches or a validation set (:func:`dilution.data.split.train_validation_split` does).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zipfile
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr

__all__ = ["IMAGE_SHAPE", "IDX_FILES", "read_idx", "load_idx", "load_npz", "load_mnist"]

IMAGE_SHAPE = (28, 28)
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_NPZ_KEYS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
# IDX type codes (LeCun's format description): all multi-byte values are big-endian.
_ZIP_MAGIC = b"PK"  # every zip archive, hence every .npz, starts with these bytes
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

Split = Literal["train", "test"]


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        return path.read_bytes()
    except OSError as err:
        raise OSError(f"cannot read {path}: {err}") from None


def _checksums(raw: bytes) -> dict[str, str]:
    return {"md5": hashlib.md5(raw).hexdigest(), "sha256": hashlib.sha256(raw).hexdigest()}


def _decode_idx(path: Path, raw: bytes) -> np.ndarray:
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({err})") from None
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file: {len(raw)} bytes, shorter than the 4-byte magic number")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(
            f"{path}: not an IDX file: magic number {raw[:4].hex()} (expected 0000 followed by a type code in "
            f"{sorted(hex(t) for t in _IDX_TYPES)} and the number of dimensions)"
        )
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{path}: IDX header declares {ndim} dimensions but the file is too short to hold them")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX data {what}: dims {dims} of {dtype.str} need {expected} bytes, file holds {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw, detected from its first bytes).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the magic number, the dimensions or the length are not those of a valid IDX file,
        or the gzip stream is corrupt or truncated.

    Returns
    -------
    ndarray
        Shape and dtype as declared in the header (uint8 for MNIST), native byte order.
    """
    p = Path(path)
    return _decode_idx(p, _read_bytes(p))


def _image_dataset(images: np.ndarray, labels: np.ndarray, attrs: dict) -> xr.Dataset:
    n = images.shape[0]
    return xr.Dataset(
        {
            "images": (("sample", "row", "col"), images,
                       {"long_name": "grey level, 0 (background) to 255 (ink)", "units": "1"}),
            "labels": ("sample", labels, {"long_name": "digit class 0-9", "units": "1"}),
        },
        coords={"sample": ("sample", np.arange(n, dtype=np.int64),
                           {"long_name": "index in the source file", "units": "1"})},
        attrs=attrs,
    )


def _check_images_labels(where: str, images: np.ndarray, labels: np.ndarray) -> None:
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{where}: images must be uint8 of shape (n, rows, cols), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{where}: labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{where}: {images.shape[0]} images but {labels.shape[0]} labels")


def load_idx(images: str | os.PathLike, labels: str | os.PathLike, *, split: str = "unknown") -> xr.Dataset:
    """Images and labels from a pair of IDX files (idx3 images, idx1 labels).

    Parameters
    ----------
    images, labels : path-like
        The image and label files, each ``.gz`` or raw.
    split : str
        Recorded in attrs (``"train"`` or ``"test"`` for MNIST).

    Returns
    -------
    xarray.Dataset
        ``images`` (sample, row, col) uint8, ``labels`` (sample) uint8.
    """
    ip, lp = Path(images), Path(labels)
    iraw, lraw = _read_bytes(ip), _read_bytes(lp)
    x, y = _decode_idx(ip, iraw), _decode_idx(lp, lraw)
    _check_images_labels(f"IDX files {ip} and {lp}", x, y)
    attrs = {"source": str(ip.resolve()), "labels_source": str(lp.resolve()), "format": "idx", "split": split}
    attrs.update({f"images_{k}": v for k, v in _checksums(iraw).items()})
    attrs.update({f"labels_{k}": v for k, v in _checksums(lraw).items()})
    return _image_dataset(x, y, attrs)


def load_npz(path: str | os.PathLike, split: Split = "train") -> xr.Dataset:
    """One split of a Keras-layout ``mnist.npz`` (``x_train, y_train, x_test, y_test``).

    Returns
    -------
    xarray.Dataset
        ``images`` (sample, row, col) uint8, ``labels`` (sample) uint8. For ``split="train"``
        the samples keep the file's order, which in ``mnist.npz`` is grouped by class.
    """
    if split not in _NPZ_KEYS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    p = Path(path)
    raw = _read_bytes(p)
    xk, yk = _NPZ_KEYS[split]
    if raw[:2] != _ZIP_MAGIC:
        # np.load would try to unpickle anything that is neither .npz nor .npy and then suggest
        # allow_pickle=True: never load pickles from a data path.
        raise ValueError(f"{p} is not a .npz archive (a .npz file is a zip archive, starting with the bytes "
                         f"'PK'; this one starts with {raw[:8]!r}); expected MNIST in the Keras layout: "
                         "x_train, y_train, x_test, y_test")
    try:
        with np.load(p, allow_pickle=False) as npz:
            found = sorted(npz.files)
            missing = [k for k in (xk, yk) if k not in found]
            if not missing:
                x, y = npz[xk], npz[yk]
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as err:
        raise ValueError(f"{p}: not a readable .npz archive (corrupt or truncated?): {err}") from None
    except ValueError:
        # numpy's own message suggests allow_pickle=True, which must never be done with a data path
        raise ValueError(f"{p}: {xk} or {yk} is not a plain numeric array (Python objects, or a corrupt "
                         "member); expected uint8 images and integer labels in the Keras layout") from None
    if missing:
        raise ValueError(f"{p}: npz lacks array(s) {missing}; found {found}, "
                         "expected the Keras layout x_train, y_train, x_test, y_test")
    _check_images_labels(f"{p} ({xk}, {yk})", x, y)
    attrs = {"source": str(p.resolve()), "format": "npz", "split": split}
    attrs.update(_checksums(raw))
    return _image_dataset(np.ascontiguousarray(x), np.ascontiguousarray(y), attrs)


def load_mnist(path: str | os.PathLike, split: Split = "train") -> xr.Dataset:
    """MNIST from a folder or a file.

    Parameters
    ----------
    path : path-like
        A ``.npz`` file (Keras layout), or a folder holding the IDX files of ``split``
        (``train-images-idx3-ubyte[.gz]`` ..., ``t10k-...``); a folder without them is searched
        for ``mnist.npz``.
    split : {"train", "test"}

    Returns
    -------
    xarray.Dataset
        See :func:`load_idx` and :func:`load_npz`.
    """
    if split not in IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    p = Path(path)
    if p.is_file():
        if p.suffix != ".npz":
            raise ValueError(f"{p}: expected a .npz file or a folder of IDX files")
        return load_npz(p, split)
    if not p.is_dir():
        raise FileNotFoundError(f"no such file or folder: {p}")
    names = IDX_FILES[split]
    for suffix in (".gz", ""):
        files = [p / (name + suffix) for name in names]
        if all(f.is_file() for f in files):
            return load_idx(*files, split=split)
    if (p / "mnist.npz").is_file():
        return load_npz(p / "mnist.npz", split)
    raise FileNotFoundError(
        f"{p} holds neither the IDX files {names[0]}[.gz] and {names[1]}[.gz] nor mnist.npz"
    )
