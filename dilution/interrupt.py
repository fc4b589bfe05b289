"""A Ctrl-C that waits for a safe point: between two compiled calls, never inside one.

Python raises ``KeyboardInterrupt`` wherever it next checks for signals. When that is inside
numba's dispatcher (while it boxes a kernel's result), the interrupt surfaces as ``SystemError:
... returned a result with an exception set`` or, measured on the AIS kernel of ``dilution
evaluate --ais``, as a segmentation fault that leaves no checkpoint behind; inside a weakref
callback or a ``__del__`` Python prints "Exception ignored" and carries on, so the run does not
stop at all (a CI failure of ``dilution train`` on 2026-12-01). A command that runs
long drivers therefore enters :func:`deferred`: the first Ctrl-C only sets a flag, and the
drivers' chunk loops (AIS, Gibbs sampling, tempering, training, the classifier's epochs) call
:func:`check` between two kernel calls, which raises ``KeyboardInterrupt`` there, after the
chunk's state is kept; a second Ctrl-C raises at once.

Outside :func:`deferred` (a library user, a thread other than the main one) :func:`check` does
nothing and Python's own handling applies.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["deferred", "check", "is_interrupt", "InterruptFlag"]


class InterruptFlag:
    """Whether a Ctrl-C arrived inside :func:`deferred`."""

    requested = False


_active: list[InterruptFlag] = []


@contextmanager
def deferred() -> Iterator[InterruptFlag]:
    """Within the block a first Ctrl-C sets the yielded flag (read by :func:`check`); a second raises.

    In a thread other than the main one the handler cannot be set: the flag stays unset and
    Python's handling applies.
    """
    flag = InterruptFlag()

    def handler(signum, frame):
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield flag
        return
    _active.append(flag)
    try:
        yield flag
    finally:
        _active.remove(flag)
        signal.signal(signal.SIGINT, previous)


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a Ctrl-C arrived inside the innermost :func:`deferred` block."""
    if _active and _active[-1].requested:
        raise KeyboardInterrupt


def is_interrupt(err: BaseException) -> bool:
    """A Ctrl-C, also when numba's dispatcher wrapped it in a ``SystemError`` ("returned a result with
    an exception set") because the signal arrived inside a compiled call or the compiler."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False
