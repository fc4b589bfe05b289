"""Exact netCDF round trip of state values: training states, estimator and rule states, configs.

A state is a tree of NamedTuples, frozen dataclasses, tuples, lists, dicts with string keys,
numpy arrays and plain scalars. :func:`to_dataset` stores every array as a data variable (dtype
and shape kept: float32, bool and uint64 survive the HDF5 engine exactly) and the rest of the tree
as JSON in the attribute ``tree`` (Python floats written by ``repr``, so they come back to the
last bit, NaN and infinities included). Classes are named by module and qualified name and
must live in the ``dilution`` package or be registered with :func:`register`: loading a file never
imports an arbitrary module.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["to_dataset", "from_dataset", "register", "KIND", "StateFileError"]

KIND = "dilution training state"
_FORMAT = 1
_REGISTERED: dict[str, type] = {}


class StateFileError(ValueError):
    """A state file that cannot be read back: corrupt, of another kind or format, or naming unknown classes."""


def register(cls: type) -> type:
    """Allow a class from outside the ``dilution`` package in state files (use as a decorator)."""
    _REGISTERED[_class_name(cls)] = cls
    return cls


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve(name: str) -> type:
    if name in _REGISTERED:
        return _REGISTERED[name]
    module, _, qualname = name.partition(":")
    if not (module == "dilution" or module.startswith("dilution.")):
        raise StateFileError(
            f"the state names class {name}, which is outside the dilution package; register it with "
            "dilution.statefile.register before loading"
        )
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise StateFileError(f"the state names class {name}, which this version of dilution does not have") from None
    return obj


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        key = f"array_{len(arrays)}"
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, np.generic):
        key = f"array_{len(arrays)}"
        arrays[key] = np.asarray(value)
        return {"__scalar__": key}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return {"__namedtuple__": _class_name(type(value)),
                "fields": {f: _encode(getattr(value, f), arrays) for f in value._fields}}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__dataclass__": _class_name(type(value)),
                "fields": {f.name: _encode(getattr(value, f.name), arrays) for f in dataclasses.fields(value)
                           if f.init}}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"state dicts must have string keys, got {list(value)[:3]}")
        return {"__dict__": {k: _encode(v, arrays) for k, v in value.items()}}
    if isinstance(value, float):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a state file: {value!r}")


def _decode(node: Any, ds: xr.Dataset) -> Any:
    if isinstance(node, list):
        return [_decode(v, ds) for v in node]
    if not isinstance(node, dict):
        return node
    if "__array__" in node:
        return np.array(ds[node["__array__"]].values)
    if "__scalar__" in node:
        return ds[node["__scalar__"]].values[()]
    if "__float__" in node:
        return float(node["__float__"])
    if "__tuple__" in node:
        return tuple(_decode(v, ds) for v in node["__tuple__"])
    if "__dict__" in node:
        return {k: _decode(v, ds) for k, v in node["__dict__"].items()}
    if "__namedtuple__" in node:
        cls = _resolve(node["__namedtuple__"])
        return cls(**{k: _decode(v, ds) for k, v in node["fields"].items()})
    if "__dataclass__" in node:
        cls = _resolve(node["__dataclass__"])
        return cls(**{k: _decode(v, ds) for k, v in node["fields"].items()})
    raise StateFileError(f"unrecognised node in the state tree: {sorted(node)[:3]}")


def to_dataset(value: Any, **attrs: Any) -> xr.Dataset:
    """A Dataset that :func:`from_dataset` turns back into ``value``, exactly."""
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(value, arrays)
    data_vars = {}
    for key, arr in arrays.items():
        dims = tuple(f"{key}_dim{i}" for i in range(arr.ndim))
        data_vars[key] = (dims, arr, {"long_name": f"state array {key}", "units": "1"})
    return xr.Dataset(data_vars, attrs={**attrs, "kind": KIND, "format": _FORMAT, "tree": json.dumps(tree)})


def from_dataset(ds: xr.Dataset) -> Any:
    """The value stored by :func:`to_dataset`."""
    if ds.attrs.get("kind") != KIND:
        raise StateFileError(f"not a dilution training state (kind={ds.attrs.get('kind')!r}, expected {KIND!r})")
    if ds.attrs.get("format") != _FORMAT:
        raise StateFileError(f"state file format {ds.attrs.get('format')!r}; this version reads format {_FORMAT}")
    try:
        tree = json.loads(ds.attrs["tree"])
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise StateFileError(f"the state's tree attribute is missing or corrupt: {e}") from None
    try:
        return _decode(tree, ds)
    except KeyError as e:
        raise StateFileError(f"the state refers to array {e} that the file does not hold") from None
    except TypeError as e:
        raise StateFileError(f"the state does not fit this version's classes: {e}") from None


