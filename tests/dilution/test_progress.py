from __future__ import annotations

import io

import pytest

from dilution.progress import LINES_PER_RUN, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_about_ten_plain_lines():
    log = io.StringIO()  # not a terminal, like a cluster job's log file
    with progress_bar(10_000, "training", file=log) as bar:
        for _ in range(10_000):
            bar.update(1)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    # one line per tenth of the work, the last at 100 %
    assert len(lines) == LINES_PER_RUN == 10
    assert [line.split(":")[0] for line in lines] == ["training"] * 10
    assert lines[0].startswith("training:  10% (1000/10000)") and lines[-1].startswith("training: 100% (10000/10000)")


def test_coarse_updates_never_repeat_a_line():
    log = io.StringIO()
    with progress_bar(7, "x", file=log) as bar:
        bar.update(0)
        for _ in range(7):
            bar.update(1)
    percents = [line.split("%")[0].split(":")[1].strip() for line in log.getvalue().splitlines()]
    assert percents == ["14", "28", "42", "57", "71", "85", "100"]


def test_a_terminal_gets_the_tqdm_bar():
    term = _Terminal()
    with progress_bar(100, "sweeps", file=term) as bar:
        bar.update(100)
    assert "\r" in term.getvalue() and "sweeps" in term.getvalue()


@pytest.mark.parametrize("kwargs", [{"enabled": False}, {"expected_seconds": 0.1}])
def test_disabled_or_short_runs_are_silent(kwargs):
    for stream in (io.StringIO(), _Terminal()):
        with progress_bar(100, "x", file=stream, **kwargs) as bar:
            bar.update(100)
        assert stream.getvalue() == ""


def test_a_resumed_run_reports_from_where_it_was_and_times_only_its_own_work(monkeypatch):
    clock = iter(range(0, 1000, 10))  # each reading of the clock is 10 s after the last
    monkeypatch.setattr("dilution.progress.time.perf_counter", lambda: next(clock))
    log = io.StringIO()
    with progress_bar(10_000, "AIS", file=log, initial=5_000) as bar:
        for _ in range(5):
            bar.update(1_000)
    lines = log.getvalue().splitlines()
    # only the marks still ahead (60 % .. 100 %), and the ETA at 60 % is 4,000 more units at the
    # 1,000 units per 10 s this process ran (40 s), not at the 6,000 per 10 s of counting the resumed work
    assert [line.split("%")[0].split(":")[1].strip() for line in lines] == ["60", "70", "80", "90", "100"]
    assert lines[0] == "AIS:  60% (6000/10000), 0:10 elapsed, 0:40 left"


def test_a_resumed_terminal_bar_starts_at_its_initial_count():
    term = _Terminal()
    with progress_bar(100, "AIS", file=term, initial=40) as bar:
        bar.update(10)
    assert "40/100" in term.getvalue()  # tqdm draws its first frame at the resumed count, not at 0/100
