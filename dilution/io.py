"""Saving and loading models and results: netCDF4 files written atomically.

An RBM is stored as an ``xarray.Dataset`` with variables ``weights`` (visible, hidden),
``visible_bias`` (visible), ``hidden_bias`` (hidden) and ``mask`` (visible, hidden, bool), and
attrs ``kind="dilution.RBM"``, ``dtype`` and provenance (:mod:`dilution.provenance`). Files
use the netCDF4/HDF5 format through the netCDF-C library (``netCDF4``), which keeps float32,
float64 (bit for bit), int64 and bool exactly; files written earlier through ``h5netcdf`` are the
same format and read as before. A save writes a temporary file in the target's folder, fsyncs it and
renames it over the target, so an interrupted save never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .model import RBM
from .provenance import decode_attrs, encode_attrs, provenance
from .statefile import KIND as STATE_KIND
from .statefile import StateFileError
from .statefile import from_dataset as state_from_dataset

__all__ = [
    "RBM_KIND",
    "ENGINE",
    "to_dataset",
    "from_dataset",
    "save",
    "load",
    "load_dataset",
    "load_state",
    "state_dataset",
    "load_matlab_rbm",
    "atomic_write",
    "check_output_folder",
    "check_new_file",
]

RBM_KIND = "dilution.RBM"
# xarray engine of the reads; writes go through the same library's store (_write_netcdf)
ENGINE = "netcdf4"
_RBM_VARIABLES = {
    "weights": ("visible", "hidden"),
    "visible_bias": ("visible",),
    "hidden_bias": ("hidden",),
    "mask": ("visible", "hidden"),
}


def to_dataset(rbm: RBM, **attrs: Any) -> xr.Dataset:
    """The RBM as a labelled Dataset with provenance attrs.

    Parameters
    ----------
    rbm : RBM
    **attrs
        Extra attributes (e.g. ``seed=1``, ``config=TrainConfig(...)``); any JSON-able value
        is allowed, nested ones are encoded when saved.

    Returns
    -------
    xarray.Dataset
        Variables ``weights`` (visible, hidden), ``visible_bias`` (visible), ``hidden_bias``
        (hidden), ``mask`` (visible, hidden) of bool; attrs ``kind``, ``dtype``, provenance.
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"to_dataset expects a dilution.RBM, got {type(rbm).__name__}")
    reserved = {"kind", "dtype"} & set(attrs)
    if reserved:
        raise ValueError(f"attribute name(s) {sorted(reserved)} are reserved for the RBM file format")
    ds = xr.Dataset(
        {
            "weights": (("visible", "hidden"), np.array(rbm.weights),
                        {"long_name": "coupling W[i, j] of visible unit i and hidden unit j (0 where masked)",
                         "units": "1"}),
            "visible_bias": ("visible", np.array(rbm.visible_bias), {"long_name": "visible bias a", "units": "1"}),
            "hidden_bias": ("hidden", np.array(rbm.hidden_bias), {"long_name": "hidden bias b", "units": "1"}),
            "mask": (("visible", "hidden"), np.array(rbm.mask),
                     {"long_name": "True where a connection exists", "units": "1"}),
        },
        attrs=provenance(**attrs),
    )
    ds.attrs.update(kind=RBM_KIND, dtype=rbm.dtype.name)
    return ds


def from_dataset(ds: xr.Dataset) -> RBM:
    """The RBM stored in a Dataset made by :func:`to_dataset` (or loaded from its file).

    Raises
    ------
    ValueError
        If ``ds`` is not an RBM dataset or misses variables or has wrong dims or dtype.
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"from_dataset expects an xarray.Dataset, got {type(ds).__name__}")
    kind = ds.attrs.get("kind")
    if kind != RBM_KIND:
        raise ValueError(f"dataset is not a dilution RBM: attr kind is {kind!r}, expected {RBM_KIND!r}")
    missing = sorted(set(_RBM_VARIABLES) - set(ds.data_vars))
    if missing:
        raise ValueError(f"RBM dataset lacks variable(s) {missing}; expected {sorted(_RBM_VARIABLES)}")
    for name, dims in _RBM_VARIABLES.items():
        if ds[name].dims != dims:
            raise ValueError(f"RBM variable {name!r} has dims {ds[name].dims}, expected {dims}")
    dtype = ds.attrs.get("dtype")
    if dtype not in ("float32", "float64") or ds["weights"].dtype != np.dtype(dtype):
        raise ValueError(
            f"RBM dataset attr dtype={dtype!r} with weights of dtype {ds['weights'].dtype}; "
            "expected float32 or float64, matching"
        )
    if ds["mask"].dtype != bool:
        raise ValueError(f"RBM variable 'mask' must be bool, got {ds['mask'].dtype}")
    weights = ds["weights"].values
    mask = ds["mask"].values
    if np.any(weights[~mask] != 0):
        raise ValueError("RBM dataset has non-zero weights where mask is False; the file is inconsistent")
    return RBM(weights, ds["visible_bias"].values, ds["hidden_bias"].values, mask)


def check_output_folder(flag: str, folder: Path) -> None:
    """A folder a command will write into, checked before any work: an existing folder one can write
    to, or a path whose nearest existing part is one (the folder is made there). ``flag`` names the
    option in the messages.
    """
    target = Path(folder).absolute()
    existing = target
    while not os.path.lexists(existing):  # the nearest part of the path that exists
        existing = existing.parent
    named = f"{flag} {folder}" if existing == target else f"{flag} {folder}: {existing}"
    if not existing.is_dir():
        raise ValueError(f"{named} exists and is not a folder; expected a folder for the output (an existing one "
                         "or a new one to create)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{named} is not writable; expected a folder that you can write to")



def check_new_file(flag: str, path: Path, suffix: str | None = None, *, inputs: Sequence[Path] = (),
                   overwrite: bool = True) -> None:
    """A file a command is about to write, checked before any work: not one of the command's
    ``inputs`` (whatever ``overwrite`` says), not an existing file unless ``overwrite``, not a folder,
    in a folder that exists, with ``suffix`` when given. ``flag`` names the option in the messages.
    """
    for source in inputs:
        if path.exists() and source.exists() and path.resolve() == source.resolve():
            raise ValueError(f"{flag} {path} is the command's input {source}; give another output name")
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; expected a file name (e.g. {path / ('out' + (suffix or '.nc'))})")
    if path.exists() and not overwrite:
        raise ValueError(f"{flag} {path} exists; give --overwrite to replace it, or another output name")
    if not path.parent.is_dir():
        raise ValueError(f"{flag} {path}: folder {path.parent} does not exist")
    if suffix is not None and path.suffix.lower() != suffix:
        raise ValueError(f"{flag} must name a {suffix} file, got {path}")


def _path(name: str, value: Any) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {type(value).__name__}")
    return Path(value)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it to ``path``.

    On any exception the temporary file is removed and an existing ``path`` is untouched.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {target}: folder {folder} does not exist")
    if target.is_dir():
        raise IsADirectoryError(f"cannot write {target}: it is a folder")
    tmp = folder / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        # O_EXCL + mode 0o666 under the umask gives the permissions a plain open() would.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:  # named by the file asked for, not by the hidden temporary one
        raise type(err)(f"cannot write {target}: {err.strerror or err} (in folder {folder})") from None
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, hence best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _encode_dataset(ds: xr.Dataset) -> xr.Dataset:
    out = ds.copy(deep=False)
    out.attrs = encode_attrs(ds.attrs)
    for name, var in out.variables.items():
        var.attrs = encode_attrs(ds.variables[name].attrs)
        # A fixed-width string dtype in the encoding (kept from a file read earlier) would cut
        # longer strings added since to that width, silently: let the data set the width.
        dtype = var.encoding.get("dtype")
        if dtype is not None and np.dtype(dtype).kind in "US":
            var.encoding = {k: v for k, v in var.encoding.items() if k != "dtype"}
    return out


@functools.singledispatch
def state_dataset(obj: Any, **attrs: Any) -> xr.Dataset:
    """The Dataset :func:`save` writes for a state value (a training state, ...).

    The modules that define state types register them (``@state_dataset.register``;
    :mod:`dilution.training` registers ``TrainState``), so this module needs none of them.

    Raises
    ------
    TypeError
        For a type nobody registered.
    """
    raise TypeError(f"save expects a dilution.RBM, a TrainState or an xarray.Dataset, got {type(obj).__name__}")


def save(obj: RBM | xr.Dataset, path: str | os.PathLike, *, attrs: Mapping[str, Any] | None = None) -> Path:
    """Write an RBM, a Dataset or a registered state (:func:`state_dataset`) to a netCDF4 file, atomically.

    Parameters
    ----------
    obj : RBM, xarray.Dataset or TrainState
        An RBM is converted by :func:`to_dataset` (with provenance); a Dataset is written as is;
        a state by :func:`state_dataset`.
    path : path-like
        Target file (conventionally ``.nc``); replaced if it exists.
    attrs : mapping of str to values, optional
        Extra attributes (seed, config, ...) added to the file's global attributes; the keys
        must be valid netCDF names. Values that netCDF cannot hold (dicts, None, bools, lists,
        dataclasses) are JSON-encoded reversibly; values without a JSON form (complex numbers,
        objects, ...) are refused before anything is written.

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    TypeError
        If ``path`` is not a str or os.PathLike, ``attrs`` not a mapping with str keys, or an
        attribute value cannot be stored.
    ValueError
        If an attribute name is not a valid netCDF name.
    """
    target = _path("path", path)
    if attrs is None:
        attrs = {}
    if not isinstance(attrs, Mapping):
        raise TypeError(f"attrs must be a mapping of attribute names (str) to values, got {type(attrs).__name__}")
    names = [k for k in attrs if not isinstance(k, str)]
    if names:
        raise TypeError(f"attrs must be a mapping with str keys (netCDF attribute names), got key {names[0]!r}")
    extra = dict(attrs)
    if isinstance(obj, RBM):
        ds = to_dataset(obj, **extra)
    elif isinstance(obj, xr.Dataset):
        ds = obj.copy(deep=False)
        ds.attrs = {**obj.attrs, **extra}
    else:
        ds = state_dataset(obj, **extra)
    encoded = _encode_dataset(ds)
    with atomic_write(target) as tmp:
        _write_netcdf(encoded, tmp)
    return target


def _write_netcdf(ds: xr.Dataset, path: Path) -> None:
    # Not Dataset.to_netcdf: inside a dask.distributed worker it guards the write with a
    # distributed.Lock named after the file, a round trip to the scheduler for each of the ~100
    # times one file's write takes the lock (a study's workers spent 8-10 % of their compute
    # waiting on it). The file is a fresh temporary name that only this call writes: the
    # process-wide netCDF-C lock, which xarray's readers share, is all it needs.
    from xarray.backends import NetCDF4DataStore
    from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK

    store = NetCDF4DataStore.open(str(path), mode="w", format="NETCDF4", lock=NETCDF4_PYTHON_LOCK)
    try:
        ds.dump_to_store(store)
    finally:
        store.close()


def load_dataset(path: str | os.PathLike) -> xr.Dataset:
    """Read any file written by :func:`save` as a Dataset in memory, attrs decoded.

    For an RBM file this gives the stored variables together with its provenance attrs.

    Raises
    ------
    TypeError
        If ``path`` is not a str or os.PathLike.
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a netCDF4/HDF5 file.
    """
    p = _path("path", path)
    if p.is_dir():
        raise ValueError(f"{p} is a folder; expected a file written by dilution.io.save")
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    try:
        with open(p, "rb"):  # a file that cannot be read is not a file of the wrong format
            pass
    except OSError as err:
        raise ValueError(f"cannot read {p}: {err.strerror or err}") from None
    try:
        with xr.open_dataset(p, engine=ENGINE) as opened:
            ds = opened.load()
    except (OSError, ValueError) as err:
        raise ValueError(f"{p} is not a dilution file (expected netCDF4/HDF5 written by dilution.io.save): {err}") from None
    ds.attrs = decode_attrs(ds.attrs)
    for var in ds.variables.values():
        var.attrs = decode_attrs(var.attrs)
    return ds


def load(path: str | os.PathLike):
    """Read a file written by :func:`save`: an RBM for an RBM file, a TrainState for a state file, else the Dataset.

    Use :func:`load_dataset` to get an RBM file's attrs (seed, config, provenance) as well.

    Raises
    ------
    TypeError
        If ``path`` is not a str or os.PathLike.
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a netCDF4/HDF5 file, or claims to be an RBM but is malformed.
    """
    ds = load_dataset(path)
    if ds.attrs.get("kind") == STATE_KIND:
        try:
            return state_from_dataset(ds)
        except StateFileError as err:
            raise StateFileError(f"{path}: {err}") from None
    if ds.attrs.get("kind") == RBM_KIND:
        try:
            return from_dataset(ds)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: {err}") from None
    return ds


def load_state(path: str | os.PathLike) -> Any:
    """Read a training state written by :func:`save` (a folder means its ``state.nc``), with errors
    that name the file.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    dilution.statefile.StateFileError
        If the file is not a readable training state.
    """
    path = _path("path", path)
    if path.is_dir():
        path = path / "state.nc"
    if not path.exists():
        raise FileNotFoundError(f"no training state at {path}")
    try:
        ds = load_dataset(path)
    except (OSError, ValueError) as e:
        raise StateFileError(f"{path} is not a readable netCDF training state: {e}") from None
    try:
        return state_from_dataset(ds)
    except StateFileError as e:
        raise StateFileError(f"{path}: {e}") from None


def load_matlab_rbm(path: str | os.PathLike) -> RBM:
    """Read an RBM from a MATLAB file in the layout of Salakhutdinov & Murray's AIS code.

    Variables: ``vishid`` (n_visible, n_hidden), ``visbiases`` (1, n_visible), ``hidbiases``
    (1, n_hidden); ``vishid[i, j]`` couples visible unit i to hidden unit j, as in ``RBM.weights``.

    Returns
    -------
    RBM
        Fully connected, float64.
    """
    from scipy.io import loadmat

    p = _path("path", path)
    if p.is_dir():
        raise ValueError(f"{p} is a folder; expected a MATLAB (.mat) file")
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    try:
        mat = loadmat(p)
    except Exception as err:  # scipy raises several unrelated types for non-MATLAB input
        raise ValueError(f"{p} is not a readable MATLAB (.mat) file: {err}") from None
    needed = ("vishid", "visbiases", "hidbiases")
    missing = [k for k in needed if k not in mat]
    if missing:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{p} lacks RBM variable(s) {missing}; expected {list(needed)}, found {found}")
    w = np.asarray(mat["vishid"], dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"{p}: vishid must be 2-D (n_visible, n_hidden), got shape {w.shape}")
    a, b = np.asarray(mat["visbiases"], dtype=np.float64), np.asarray(mat["hidbiases"], dtype=np.float64)
    for name, arr, n in (("visbiases", a, w.shape[0]), ("hidbiases", b, w.shape[1])):
        if arr.size != n or (arr.ndim == 2 and 1 not in arr.shape) or arr.ndim > 2:
            raise ValueError(f"{p}: {name} must have shape (1, {n}) to match vishid {w.shape}, got {arr.shape}")
    return RBM(w, a.ravel(), b.ravel())
