"""Shared fixtures. Tests that need the real MNIST files find them through DILUTION_DATA
(``.ci/run`` sets it to ``../shared/data``); on a user's machine without it they skip, in CI
(``CI`` set) they fail instead."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = os.environ.get("DILUTION_DATA")
    if not root:
        if os.environ.get("CI"):
            pytest.fail("DILUTION_DATA is not set in CI: .ci/run must point it at ../shared/data")
        pytest.skip("DILUTION_DATA is not set (point it at the folder holding mnist/)")
    path = Path(root)
    if not (path / "mnist").is_dir():
        pytest.fail(f"DILUTION_DATA={root} has no mnist/ folder")
    return path


@pytest.fixture(scope="session")
def mnist_npz(data_dir: Path) -> Path:
    return data_dir / "mnist" / "mnist.npz"
