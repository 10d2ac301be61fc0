"""Forking a supervised launch before it plans, and the signal state on both sides of the fork.

The launcher forks as soon as its options are read: the child goes on to plan and exec the program, the
parent becomes its supervisor (:mod:`launcher.run.supervise`, which the caller imports in the parent). So
that no signal is lost, the signals the supervisor waits for are blocked before the fork; the child then
gets the signal state a program must get (default dispositions, except those the launcher's parent
ignored; nothing blocked), its own process group and the terminal. The parent waits until the child has
exec'd the program before it goes on, so that the supervisor's start never competes with the planning for
a CPU; this module uses the C module ``_signal``, not ``signal`` (which imports ``enum``; see
:mod:`launcher.run.signals`).

Part of the supervisor: standard library only.
"""

from __future__ import annotations

import os
import sys

from launcher.core.record import Record
from launcher.run.signals import FORWARDED, TTY_SIGNALS

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Sequence
else:
    import _signal


class Forked(Record):
    """One side of a supervised launch's fork: ``pid`` is the child's in the parent and 0 in the child;
    ``record`` the descriptor of the launch record; ``tty`` the terminal handed to the child (-1 for
    none) and ``old_mask`` the signal mask before the fork (the parent restores it for what it runs)."""

    __slots__ = ("old_mask", "pid", "record", "tty")

    def __init__(self, pid: int, record: int, tty: int, old_mask: set[int]) -> None:
        self.pid = pid
        self.record = record
        self.tty = tty
        self.old_mask = old_mask


def forwarded() -> list[int]:
    """The signals to forward: all but those the launcher's parent set to "ignored" (``nohup``), which
    stay ignored."""
    return [sig for sig in FORWARDED if _signal.getsignal(sig) != _signal.SIG_IGN]


def block(signals: Sequence[int]) -> set[int]:
    """Block what the supervisor waits for (``signals`` and SIGCHLD, reported: an inherited "ignore
    SIGCHLD" would have the kernel reap for us and hide every exit status); the mask before."""
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    return set(_signal.pthread_sigmask(_signal.SIG_BLOCK, [*signals, _signal.SIGCHLD, *TTY_SIGNALS]))


def terminal() -> int:
    """0 when stdin is a terminal whose foreground process group is ours (the program gets it), else -1."""
    try:
        return 0 if os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp() else -1
    except OSError:
        return -1


def flush() -> None:
    """Flush our streams (what is buffered would be written twice after a fork, or lost at an exec)."""
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib is not imported here
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def become_the_child(tty: int, signals: Sequence[int]) -> None:
    """In the child: its own process group, the terminal, default dispositions for the forwarded
    ``signals`` (and SIGPIPE, SIGXFSZ, the terminal's), nothing blocked: the state a program must get."""
    os.setpgid(0, 0)
    if tty >= 0:
        try:  # noqa: SIM105 - contextlib is not imported here
            os.tcsetpgrp(tty, os.getpid())  # SIGTTOU is blocked here, so this works
        except OSError:
            pass
    for sig in (*signals, _signal.SIGPIPE, _signal.SIGXFSZ, *TTY_SIGNALS):
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def fork_launch() -> Forked:
    """Fork a supervised launch: returns on both sides. The child (``pid`` 0) goes on to plan and exec the
    program and writes the launch record (:mod:`launcher.run.handoff`) just before the exec; the parent
    returns once that exec happened (or the child ended, or a signal is pending), to supervise the child.
    Raises :class:`~launcher.errors.CommandNotExecutable` when no process or record can be made."""
    from launcher.run import handoff

    signals = forwarded()
    old_mask = block(signals)
    tty = terminal()
    flush()
    record = handoff.new_record()
    pipe: tuple[int, ...] = ()
    try:
        if record is None:
            raise OSError("no anonymous file can be made for the launch record")
        pipe = os.pipe()  # close-on-exec: the child's end closes when it execs the program
        pid = os.fork()
    except OSError as exc:
        for fd in (*pipe, *([] if record is None else [record])):
            os.close(fd)
        _signal.pthread_sigmask(_signal.SIG_SETMASK, old_mask)
        from launcher.errors import CommandNotExecutable

        raise CommandNotExecutable(
            f"cannot start a supervised process: {exc}", hint="check the process limits, or use --init never"
        ) from None
    started, child_end = pipe
    if pid != 0:
        os.close(child_end)
        await_exec(started, signals)
        return Forked(pid, record, tty, old_mask)
    os.close(started)
    become_the_child(tty, signals)
    return Forked(0, record, tty, old_mask)


def await_exec(started: int, signals: Sequence[int]) -> None:
    """In the parent: wait until the child has exec'd the program or ended (its end of the ``started``
    pipe is then closed), or until one of ``signals`` is pending, for the supervisor to handle; closes
    ``started``. So the supervisor's own start (imports, its first readings) never competes with the
    planning for a CPU: it happens while the program starts."""
    import select

    waited = {*signals, _signal.SIGCHLD}
    try:
        while not select.select([started], [], [], 0.05)[0]:
            if waited & _signal.sigpending():
                break
    finally:
        os.close(started)
