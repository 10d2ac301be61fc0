"""How a supervised job ended: the summary line, and ending the supervisor the way the program ended.

The summary gives the CPU time of the whole tree (every reaped descendant) but the peak RSS of the largest
single process (``ru_maxrss`` of children is a maximum, not a sum), and says so. The supervisor ends with
the program's exit code, or dies of the program's signal (``128 + N`` as PID 1, which cannot die of a
signal it sends itself).

Part of the supervisor: standard library only.
"""

from __future__ import annotations

import os
import sys

from launcher.run.signals import signal_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Sequence
    from typing import NoReturn
else:
    import _signal as signal


def children_usage() -> tuple[float, int]:
    """CPU seconds (user + system) of all reaped descendants, and the largest peak RSS among them (bytes).

    The kernel keeps a process's peak RSS across exec, so the peak is at least that of this process at
    fork time (about 10 MiB), the same as when ma-launch execs the program in place.
    """
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def how(status: int) -> str:
    """A wait status in words: ``exit code 3`` or ``killed by SIGTERM (status 143)``."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"killed by {signal_name(sig)} (status {128 + sig})"
    return f"exit code {os.WEXITSTATUS(status)}"


def summary(status: int, *, wall: float, cpu: float, peak: int, notes: Sequence[str] = ()) -> str:
    """The one summary line (without the ``ma-launch:`` prefix) for a program that ended with ``status``."""
    parts = [
        f"program ended: {how(status)}",
        f"wall {duration(wall)}",
        f"CPU {duration(cpu)} (process tree)",
        f"peak RSS {size(peak)} (largest process)",
    ]
    return ", ".join(parts) + "".join("; " + note for note in notes)


def not_started(sig: int) -> str:
    """The line for a stop request that came before the program started (without the prefix)."""
    return f"{signal_name(sig)} received before the program started: it was not started (status {128 + sig})"


def end_like(status: int) -> NoReturn:
    """End this process the way a process with wait ``status`` ended: same exit code, or the same signal."""
    if os.WIFSIGNALED(status):
        end_by_signal(os.WTERMSIG(status))
    _flush()
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def end_by_signal(sig: int) -> NoReturn:
    """End this process by ``sig`` (``128 + sig`` as PID 1, or when dying of it did not work)."""
    _flush()
    if os.getpid() != 1:
        die_of(sig)
    os._exit(128 + sig)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib is not imported in the lean supervisor
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def die_of(sig: int) -> None:
    """End this process by ``sig`` so our parent sees the program's death; returns if that did not work."""
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))  # the core belongs to the program, not to us
    except (ImportError, OSError, ValueError):
        pass
    if sig not in (signal.SIGKILL, signal.SIGSTOP):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            return
    try:
        os.kill(os.getpid(), sig)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
    except (OSError, ValueError):
        return


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
