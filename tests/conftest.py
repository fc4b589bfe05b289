"""Shared fixtures. Tests that need the real MNIST files find them through DILUTION_DATA
(``.ci/run`` sets it to ``../shared/data``); on a user's machine without it they skip, in CI
(``CI`` set) they fail instead."""

from __future__ import annotations

import os
import signal
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


@pytest.fixture(scope="session")
def models_dir(data_dir: Path) -> Path:
    """``../shared/models`` beside the data (the Salakhutdinov RBMs): skipped without them on a
    user's machine, a failure in CI."""
    path = data_dir.parent / "models"
    if not (path / "mnistvh.mat").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{path} has no mnistvh.mat: shared/models must sit beside shared/data")
        pytest.skip(f"{path} has no mnistvh.mat")
    return path


@pytest.fixture()
def ctrl_c_inside(monkeypatch):
    """Replace ``module.name`` (a kernel, or a task) by a wrapper whose first call sends this process
    SIGINT while the kernel "runs", then runs it; returns the list of finished calls."""

    def install(module, name: str) -> list[int]:
        kernel, finished = getattr(module, name), []

        def interrupted_inside(*args, **kwargs):
            if not finished:
                os.kill(os.getpid(), signal.SIGINT)
            out = kernel(*args, **kwargs)
            finished.append(1)
            return out

        monkeypatch.setattr(module, name, interrupted_inside)
        return finished

    return install


@pytest.fixture()
def mode_bits_apply(monkeypatch):
    """``os.access`` answers by the owner's mode bits, so that a ``chmod 555`` folder is read-only to
    these tests also when they run as root (as in CI), who may write anywhere."""
    real = os.access

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and not os.stat(path).st_mode & 0o200:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)

