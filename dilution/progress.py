"""Progress reports for long-running drivers (kernels never report progress themselves).

On a terminal a run shows a tqdm bar; when stderr is a file or a pipe (a cluster job's log) the
bar's carriage returns would leave one unreadable line, so the run prints a plain line each
time another tenth of the work is done instead.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import IO, Iterator, Protocol

__all__ = ["progress_bar", "Progress", "LineProgress", "WORK_PER_SECOND", "QUIET_BELOW_SECONDS", "LINES_PER_RUN"]

# Runs expected to finish faster than this stay silent when ``enabled`` is None.
QUIET_BELOW_SECONDS = 3.0

# The samplers' throughput for the expected run time that decides whether a bar is shown, in
# chain-sweep work: (n_visible + n_hidden) * n_hidden per chain and sweep (one AIS step or one
# tempering replica sweep counts as a sweep). Measured at 784 x 500 on the 2-core benchmark machine
# while other jobs ran: Gibbs 1.3e10-1.8e10 (float64) and 2.5e10-3.5e10 (float32) from 1 to 1000
# chains, AIS 0.7e10 (float64) and 1.1e10 (float32); on an idle machine Gibbs reaches 8e10 (README,
# "Speed"). The low end is taken, so a long run shows its bar rather than not.
WORK_PER_SECOND = 1e10

# Plain progress lines per run when stderr is not a terminal: one per tenth of the work.
LINES_PER_RUN = 10


class Progress(Protocol):
    """What a driver may call on the object :func:`progress_bar` yields."""

    def update(self, n: int = 1) -> object: ...


class LineProgress:
    """Progress as whole lines (no carriage returns), one each time another ``1 / lines`` of ``total`` is done.

    Parameters
    ----------
    total : int
        Units of work in the run.
    desc : str
        What is being done; starts every line.
    file : text stream
    lines : int
        Lines printed over the whole run (the last one at 100 %).
    """

    def __init__(self, total: int, desc: str, file: IO[str], lines: int = LINES_PER_RUN, initial: int = 0) -> None:
        self.total, self.desc, self.file, self.lines = max(int(total), 0), desc, file, lines
        self.n = self._initial = int(initial)
        # how many of the ``lines`` marks have been reported (none for the work done before a resume)
        self._printed = min(self.n * lines // self.total, lines) if self.total else 0
        self._start = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        if self.total == 0:
            return
        mark = min(self.n * self.lines // self.total, self.lines)
        if mark > self._printed:
            self._printed = mark
            elapsed = time.perf_counter() - self._start
            done = min(self.n, self.total)
            ran = done - self._initial  # the rate is that of this process, not of the resumed work
            eta = elapsed * (self.total - done) / ran if ran > 0 else float("nan")
            print(f"{self.desc}: {100 * done // self.total:3d}% ({done}/{self.total}), "
                  f"{_duration(elapsed)} elapsed, {_duration(eta)} left", file=self.file, flush=True)


def _duration(seconds: float) -> str:
    if seconds != seconds:  # NaN: nothing done yet
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _Silent:
    def update(self, n: int = 1) -> None:
        pass


@contextmanager
def progress_bar(
    total: int, desc: str, *, enabled: bool | None = None, expected_seconds: float | None = None,
    file: IO[str] | None = None, initial: int = 0,
) -> Iterator[Progress]:
    """A progress report on ``file`` (default stderr): a tqdm bar with ETA on a terminal, else plain lines.

    ``initial`` units of ``total`` were done before (a resumed run): the report starts there and
    its ETA counts only the work done since.

    ``enabled=None`` reports unless the run is expected to be short (``expected_seconds`` below
    ``QUIET_BELOW_SECONDS``); ``False`` is silent; ``True`` always reports. When ``file`` is not a
    terminal the report is :class:`LineProgress`: about ``LINES_PER_RUN`` lines, no carriage returns.
    """
    stream = sys.stderr if file is None else file
    if enabled is None:
        enabled = expected_seconds is None or expected_seconds >= QUIET_BELOW_SECONDS
    if not enabled:
        yield _Silent()
        return
    isatty = getattr(stream, "isatty", None)
    if isatty is None or not isatty():
        yield LineProgress(total, desc, stream, initial=initial)
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, file=stream, leave=False, dynamic_ncols=True, initial=initial) as bar:
        yield bar
