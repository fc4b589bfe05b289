"""The package version, read from the installed distribution's metadata.

``pyproject.toml`` is the only place the version is written; installing the package (``pip
install -e .``) records it in the metadata read here. A source tree that is not installed
reports ``"unknown"``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("dilution")
except PackageNotFoundError:
    __version__ = "unknown"
