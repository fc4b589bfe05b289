"""Progress bars for long-running drivers (kernels never report progress themselves)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from tqdm.auto import tqdm

__all__ = ["progress_bar"]

# Runs expected to finish faster than this stay silent when ``enabled`` is None.
QUIET_BELOW_SECONDS = 3.0


@contextmanager
def progress_bar(
    total: int, desc: str, *, enabled: bool | None = None, expected_seconds: float | None = None
) -> Iterator[tqdm]:
    """A tqdm bar with ETA on stderr.

    ``enabled=None`` shows it when stderr is a terminal and the run is not expected to be short.
    """
    if enabled is None:
        enabled = sys.stderr.isatty() and (expected_seconds is None or expected_seconds >= QUIET_BELOW_SECONDS)
    with tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True) as bar:
        yield bar
