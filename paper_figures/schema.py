"""What a figure expects of a netCDF file, checked when the file is read.

Each figure module declares a :class:`Schema` per input file: the variables it draws and the
dimensions each must have. :func:`load` reads the file with :func:`dilution.io.load_dataset`
and refuses one that lacks a variable or a dimension, naming the file, the variable and what
was expected, before anything is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from dilution.io import load_dataset

__all__ = ["Schema", "SchemaError", "MissingData", "load", "check"]


class SchemaError(ValueError):
    """A data file does not hold what a figure draws."""


class MissingData(SchemaError):
    """The file is well formed but lacks the grid points a figure needs (a study without a
    ``scratch`` protocol, no finite value anywhere): the figure is missing, not broken."""


@dataclass(frozen=True)
class Schema:
    """The variables a figure reads from one file.

    Parameters
    ----------
    variables : mapping of str to tuple of str
        Required variable -> the dimensions it must have (it may have more).
    optional : mapping of str to tuple of str
        Variables drawn when present, with the dimensions they must have then.
    description : str
        What the file is, for error messages.
    """

    variables: Mapping[str, tuple[str, ...]]
    optional: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""


def check(ds: xr.Dataset, schema: Schema, source: str | Path) -> xr.Dataset:
    """Return ``ds`` if it satisfies ``schema``, else raise :class:`SchemaError` naming ``source``."""
    what = f" ({schema.description})" if schema.description else ""
    for name, dims in schema.variables.items():
        if name not in ds.variables:
            raise SchemaError(
                f"{source}{what} lacks the variable {name!r} (expected dims {dims}); it has "
                f"{sorted(map(str, ds.variables))}"
            )
    for name, dims in {**schema.variables, **{k: v for k, v in schema.optional.items() if k in ds.variables}}.items():
        missing = [d for d in dims if d not in ds[name].dims]
        if missing:
            raise SchemaError(
                f"{source}{what}: variable {name!r} has dims {ds[name].dims}, expected it to have {dims} "
                f"(missing {missing})"
            )
    return ds


def load(path: str | Path, schema: Schema) -> xr.Dataset:
    """Read ``path`` (a file written by ``dilution.io.save``) and :func:`check` it against ``schema``."""
    return check(load_dataset(path), schema, path)
