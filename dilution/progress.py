"""Progress bars for long-running drivers (kernels never report progress themselves)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from tqdm.auto import tqdm

__all__ = ["progress_bar", "WORK_PER_SECOND", "QUIET_BELOW_SECONDS"]

# Runs expected to finish faster than this stay silent when ``enabled`` is None.
QUIET_BELOW_SECONDS = 3.0

# The samplers' throughput for the expected run time that decides whether a bar is shown, in
# chain-sweep work: (n_visible + n_hidden) * n_hidden per chain and sweep (one AIS step or one
# tempering replica sweep counts as a sweep). Measured at 784 x 500 on the 2-core benchmark machine
# while other jobs ran: Gibbs 1.3e10-1.8e10 (float64) and 2.5e10-3.5e10 (float32) from 1 to 1000
# chains, AIS 0.7e10 (float64) and 1.1e10 (float32); on an idle machine Gibbs reaches 8e10 (README,
# "Speed"). The low end is taken, so a long run shows its bar rather than not.
WORK_PER_SECOND = 1e10


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
