"""Provenance attributes for saved results, and their reversible netCDF encoding.

netCDF attributes hold only strings, numbers and 1-D numeric arrays. Everything else a user
may want to record (``None``, booleans, dicts such as a config, lists, dataclasses) is stored
as a string ``"json:" + json.dumps(value)`` and decoded on load; a plain string that happens
to start with ``"json:"`` is itself JSON-encoded, so decoding is unambiguous.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .version import __version__

__all__ = ["JSON_PREFIX", "provenance", "git_commit", "encode_attrs", "decode_attrs"]

JSON_PREFIX = "json:"


def git_commit(directory: str | Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the tree holding ``directory`` (default: this package), or None.

    Any failure (no git, not a repository, timeout) gives None: provenance must never stop a save.
    """
    cwd = Path(directory) if directory is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit or None


def _git_dirty(directory: Path) -> bool | None:
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=directory, capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip())


@functools.lru_cache(maxsize=1)
def _package_git_state() -> tuple[str | None, bool | None]:
    # Read once per process (two git subprocesses cost 10-50 ms, and a study saves a file per
    # task): the commit and dirty flag of the tree the running code was loaded from; an edit
    # made later does not change the code this process runs.
    here = Path(__file__).resolve().parent
    commit = git_commit(here)
    return commit, (_git_dirty(here) if commit is not None else None)


def provenance(**user_attrs: Any) -> dict[str, Any]:
    """Attributes describing how and when a result was made, plus ``user_attrs``.

    Keys: ``dilution_version``, ``git_commit`` and ``git_dirty`` (1 or 0; only when the package
    sits in a git work tree), ``python_version``, ``numpy_version``, ``numba_version``,
    ``xarray_version``, ``created`` (UTC, ISO 8601); the git keys are read once per process.
    ``user_attrs`` (e.g. ``seed=3``, ``config=cfg``) are added as given and override the automatic
    keys; pass them through :func:`encode_attrs` before writing to netCDF (``dilution.io.save`` does).

    Returns
    -------
    dict
    """
    import numba
    import xarray

    attrs: dict[str, Any] = {"dilution_version": __version__}
    commit, dirty = _package_git_state()
    if commit is not None:
        attrs["git_commit"] = commit
        if dirty is not None:
            # netCDF has no boolean attribute (encode_attrs would store the string "json:false"):
            # 1 when the work tree has uncommitted changes, 0 when clean
            attrs["git_dirty"] = int(dirty)
    attrs.update(
        python_version=platform.python_version(),
        numpy_version=np.__version__,
        numba_version=numba.__version__,
        xarray_version=xarray.__version__,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    attrs.update(user_attrs)
    return attrs


def _jsonable(value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value), where)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"attribute {where}: dict keys must be strings to be stored, got {k!r}")
            out[k] = _jsonable(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), where)
    # A numpy scalar as its Python value; one without a JSON form (complex, datetime64, bytes_)
    # is named by its numpy type.
    plain = value.item() if isinstance(value, np.generic) else value
    if plain is None or isinstance(plain, (bool, int, float, str)):
        return plain
    raise TypeError(
        f"attribute {where}: cannot store a {type(value).__name__}; "
        "expected str, real number, bool, None, numeric array, or a list/dict/dataclass of those"
    )


def _encode_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        return JSON_PREFIX + json.dumps(value) if value.startswith(JSON_PREFIX) else value
    if isinstance(value, (bool, np.bool_)) or value is None:
        return JSON_PREFIX + json.dumps(_jsonable(value, key))
    if _netcdf_number(value):
        return value
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.size > 0 and _netcdf_dtype(value.dtype):
        return value
    # The rest as JSON: a float16 or an int beyond 64 bits round-trips as a Python number,
    # a complex or Fraction is refused by _jsonable.
    return JSON_PREFIX + json.dumps(_jsonable(value, key), allow_nan=True)


def _netcdf_dtype(dtype: np.dtype) -> bool:
    """Whether netCDF stores numbers of ``dtype`` as they are (8 to 64-bit integers, float32, float64)."""
    return dtype.kind in "iu" or (dtype.kind == "f" and dtype.itemsize in (4, 8))


def _netcdf_number(value: Any) -> bool:
    if isinstance(value, np.number):
        return _netcdf_dtype(value.dtype)
    if isinstance(value, int):  # bools are caught before
        return -(2**63) <= value < 2**64  # int64, or uint64 above it
    return isinstance(value, float)


# Names of netCDF-4's hidden attributes (netCDF-C refuses to write them).
_NETCDF_RESERVED = frozenset({"_NCProperties", "_IsNetcdf4", "_SuperblockVersion", "_Netcdf4Dimid",
                              "_Netcdf4Coordinates", "_nc3_strict", "_Format", "_Codecs"})


def _check_name(name: str) -> None:
    """The netCDF rules for a name (netCDF-C's NC_check_name), so that a bad one is refused before writing."""
    problem = None
    if not name:
        problem = "it is empty"
    elif len(name.encode("utf-8")) > 256:
        problem = "it is longer than 256 bytes (UTF-8)"
    elif name[0].isascii() and not (name[0].isalnum() or name[0] == "_"):
        problem = "it must start with a letter, a digit, '_' or a non-ASCII character"
    elif "/" in name or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        problem = "'/' and control characters are not allowed"
    elif name[-1] == " ":
        problem = "it ends in a space"
    elif name in _NETCDF_RESERVED:
        problem = "netCDF-4 reserves it"
    if problem is not None:
        raise ValueError(f"attribute name {name!r} cannot be stored in netCDF: {problem}")


def encode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """netCDF-safe attributes: strings, numbers and 1-D numeric arrays pass unchanged, the rest
    becomes a ``"json:..."`` string (reversed by :func:`decode_attrs`).

    Dataclasses are stored as their ``asdict`` and come back as dicts; tuples come back as lists.

    Raises
    ------
    TypeError
        If a key is not a string or a value (or a nested value) has no JSON form.
    ValueError
        If a key is not a valid netCDF name.
    """
    out = {}
    for key, value in attrs.items():
        if not isinstance(key, str):
            raise TypeError(f"attribute names must be strings, got {key!r}")
        _check_name(key)
        out[key] = _encode_value(key, value)
    return out


def decode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode_attrs`."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, str) and value.startswith(JSON_PREFIX):
            try:
                value = json.loads(value[len(JSON_PREFIX):])
            except json.JSONDecodeError as err:
                raise ValueError(f"attribute {key!r} starts with {JSON_PREFIX!r} but is not valid JSON: {err}") from None
        out[key] = value
    return out
