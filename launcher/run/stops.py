"""Stop requests that arrive while a supervised launch is still planning.

Planning (activate.d scripts, a cold LD scan, the rank-table wait) takes time. As PID 1 a signal without a
handler is dropped by the kernel, so a SIGTERM sent then was lost and the program ran to the end anyway.
When the launch will be supervised, :func:`hold` therefore gives the stop signals (HUP, INT, QUIT, TERM) a
handler that only records the first one: no planning step is interrupted half-way, and child processes
(activate.d's bash and whatever it starts) get the default dispositions back when they exec. Waits that
could last (the rank table) use :func:`wait`, which ends planning at once with :class:`StopRequested`.
Before exec'ing into the supervisor, :func:`hand_over` blocks the stop signals and makes the recorded one
pending again: pending signals and the mask survive execve, and the supervisor acts on it before it starts
anything (see :mod:`launcher.run.supervise`).

A signal the launcher's parent set to "ignored" (``nohup``) stays ignored. ``signal`` (which imports
``enum``) and the supervisor are imported only by the functions that act on signals: the rank-table wait
of a launch that execs needs neither.
"""

from __future__ import annotations

import os
import time

_requested: list[int] = []


class StopRequested(BaseException):
    """A stop signal arrived while planning (a ``BaseException``, so no ``except Exception`` swallows it)."""

    def __init__(self, sig: int) -> None:
        super().__init__(sig)
        self.signal = sig


def hold() -> None:
    """For a launch that will be supervised: record stop signals from now on instead of dying of them or,
    as PID 1, losing them."""
    import signal

    from launcher.run.supervise import STOPPING

    for sig in STOPPING:
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, _record)


def _record(sig: int, _frame: object) -> None:
    if not _requested:
        _requested.append(sig)


def requested() -> int:
    """The first stop signal recorded, or 0."""
    return _requested[0] if _requested else 0


def wait(seconds: float) -> None:
    """Sleep ``seconds`` (a signal wakes it up); raise :class:`StopRequested` if a stop was requested."""
    if not _requested:
        time.sleep(seconds)
    if _requested:
        raise StopRequested(_requested[0])


def hand_over() -> frozenset[int]:
    """Block the stop signals and make a recorded stop pending again, for the supervisor to find after the
    exec; the signals to keep blocked across it."""
    import signal

    from launcher.run.supervise import STOPPING

    signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)  # runs the handler for one that just arrived
    if _requested:
        os.kill(os.getpid(), _requested[0])
    return frozenset(STOPPING)
