"""Why a supervised job ended, decided from what the supervisor observed: the reason (a stable code) and
the notes of the summary line (its JSON form is :mod:`launcher.run.report`).

Pure: the observations are arguments (the supervisor reads the cgroup, ``/proc`` and the loader analysis:
:mod:`launcher.run.watch`). The reasons, first match wins:

=========================  ===================================================================
``oom``                    the cgroup's OOM-kill counter rose and the program failed
``killed-by-ma-launch``    the program outlived the stop grace and ma-launch sent SIGKILL
``killed-from-outside``    SIGKILL that is neither ma-launch's nor the OOM killer's (a counter
                           says so)
``oom-likely``             SIGKILL not sent by ma-launch and no OOM counter to tell (or only
                           the "limit reached" counter, and it rose)
``stopped``                a stop was requested (SIGTERM…) and the program ended in the grace
``crash``                  SIGSEGV, SIGBUS, SIGILL, SIGABRT or SIGFPE
``loader``                 exit code 127 from a program that started, and a library is missing
``signal``                 killed by another signal
``failure``                a non-zero exit code
``success``                exit code 0
=========================  ===================================================================

Part of the supervisor: standard library only.
"""

from __future__ import annotations

import os

from launcher.core.record import Record
from launcher.run.outcome import duration, size
from launcher.run.signals import signal_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Literal, Optional

    from launcher.run.devholders import Holder
    from launcher.run.memcg import Memory

    Reason = Literal[
        "oom",
        "killed-by-ma-launch",
        "killed-from-outside",
        "oom-likely",
        "stopped",
        "crash",
        "loader",
        "signal",
        "failure",
        "success",
    ]

#: What a crash signal means, one line each.
CRASH_ADVICE = {
    "SIGSEGV": "segmentation fault in native code (an extension module, CUDA/driver or library versions "
    "that do not match); PYTHONFAULTHANDLER=1 prints the Python stack of the crash",
    "SIGBUS": "bus error: usually shared memory ran out (/dev/shm, which DataLoader workers use; fewer "
    "num_workers or a larger /dev/shm) or a memory-mapped file shrank while in use",
    "SIGILL": "illegal instruction: a binary built for CPU features this node lacks (AVX-512 builds) or "
    "for another architecture; install a build for this machine",
    "SIGABRT": "aborted by a library (a failed assertion, an uncaught C++ exception, heap corruption); "
    "the lines just before this one in the log say which",
    "SIGFPE": "arithmetic exception in native code (an integer division by zero)",
}


class Stop(Record):
    """A stop request: the signal that asked for it (``received``), the one the program got (``sent``,
    ``--stop-signal``), when it came (seconds after the program started), and how long after it the program
    ended (``None``: it had not ended when the grace ran out)."""

    __slots__ = ("at", "ended_after", "received", "sent")

    def __init__(self, received: str, sent: str, at: float, ended_after: Optional[float]) -> None:
        self.received = received
        self.sent = sent
        self.at = at
        self.ended_after = ended_after


class Loader(Record):
    """What the loader analysis said about an exit code 127: its lines for people, whether it found a
    missing library, and its data."""

    __slots__ = ("data", "lines", "missing")

    def __init__(self, lines: Sequence[str], missing: bool, data: Optional[dict[str, object]] = None) -> None:
        self.lines = tuple(lines)
        self.missing = missing
        self.data = data


class Observed(Record):
    """Everything the supervisor saw: the program's wait ``status``, the grace, whether ma-launch sent
    SIGKILL, the stop request, the memory cgroup before and after, the leftover processes (how many and
    the signals that stopped them), who held accelerator devices after the end, and the loader analysis
    of an exit code 127."""

    __slots__ = (
        "grace",
        "holders",
        "leftovers",
        "leftovers_killed",
        "loader",
        "memory_after",
        "memory_before",
        "sent_kill",
        "status",
        "stop",
    )

    def __init__(
        self,
        status: int,
        *,
        grace: float,
        sent_kill: bool = False,
        stop: Optional[Stop] = None,
        memory_before: Optional[Memory] = None,
        memory_after: Optional[Memory] = None,
        leftovers: int = 0,
        leftovers_killed: bool = False,
        holders: Sequence[Holder] = (),
        loader: Optional[Loader] = None,
    ) -> None:
        self.status = status
        self.grace = grace
        self.sent_kill = sent_kill
        self.stop = stop
        self.memory_before = memory_before
        self.memory_after = memory_after
        self.leftovers = leftovers
        self.leftovers_killed = leftovers_killed
        self.holders = tuple(holders)
        self.loader = loader

    # -- what the status says ------------------------------------------------------------------------------

    @property
    def signal(self) -> Optional[str]:
        """The name of the signal the program died of, or ``None``."""
        return signal_name(os.WTERMSIG(self.status)) if os.WIFSIGNALED(self.status) else None

    @property
    def exit_code(self) -> Optional[int]:
        """The program's exit code, or ``None`` when a signal ended it."""
        return os.WEXITSTATUS(self.status) if os.WIFEXITED(self.status) else None

    @property
    def oom_kills(self) -> Optional[int]:
        """How many processes of the cgroup the OOM killer killed during the run (``None``: no counter)."""
        return _rise(self.memory_before, self.memory_after, "oom_kills")

    @property
    def limit_hits(self) -> Optional[int]:
        """How often the cgroup's usage reached its limit during the run (``None``: no counter)."""
        return _rise(self.memory_before, self.memory_after, "limit_hits")


def _rise(before: Optional[Memory], after: Optional[Memory], field: str) -> Optional[int]:
    if before is None or after is None or before.path != after.path:
        return None
    old: Optional[int] = getattr(before, field)
    new: Optional[int] = getattr(after, field)
    if old is None or new is None:
        return None
    return max(0, new - old)


def reason(seen: Observed) -> Reason:
    """Why the job ended (see the table in the module's documentation)."""
    failed = seen.exit_code != 0
    if seen.oom_kills and failed:
        return "oom"
    if seen.signal == "SIGKILL":
        if seen.sent_kill:
            return "killed-by-ma-launch"
        return "killed-from-outside" if _no_oom(seen) else "oom-likely"
    if seen.stop is not None:
        return "stopped"
    if seen.signal in CRASH_ADVICE:
        return "crash"
    if seen.signal is not None:
        return "signal"
    if seen.exit_code == 127 and seen.loader is not None and seen.loader.missing:
        return "loader"
    return "failure" if failed else "success"


def _no_oom(seen: Observed) -> bool:
    """Whether a counter shows that no OOM kill happened: the OOM-kill counter did not rise, or (a kernel
    before 4.13, cgroup v1) the usage never even reached the limit."""
    if seen.oom_kills is not None:
        return seen.oom_kills == 0
    return seen.limit_hits == 0


def notes(seen: Observed) -> list[str]:
    """The notes after the summary line's figures: the cause, the stop request, the processes that held
    accelerator devices, the leftovers and how they were stopped, what the loader analysis found."""
    found = [*_memory_notes(seen), *_kill_notes(seen), *_crash_notes(seen)]
    if seen.stop is not None:
        found.append(_stop_note(seen.stop, seen.grace))
    if seen.holders:
        found.append(_holders_note(seen.holders))
    if seen.leftovers:
        found.append(_leftovers_note(seen))
    if seen.loader is not None and seen.exit_code == 127:
        found.extend(seen.loader.lines)
    return found


def _memory_notes(seen: Observed) -> list[str]:
    """The OOM killer's part, measured: the counter rose (or only "the limit was reached" could rise)."""
    memory = seen.memory_after
    if memory is None:
        return []
    figures = f"container limit {_limit(memory.limit)}" + (
        f", peak {size(memory.peak)}" if memory.peak is not None else ""
    )
    kills = seen.oom_kills
    if kills is None and seen.limit_hits and seen.signal == "SIGKILL" and not seen.sent_kill:
        return [
            f"killed by SIGKILL after the container's memory reached its limit — likely the kernel OOM "
            f"killer: {figures}"
        ]
    if not kills:
        return []
    if seen.signal == "SIGKILL" and not seen.sent_kill:
        more = f" ({kills} processes of this container)" if kills > 1 else ""
        return [f"killed by the kernel OOM killer{more}: {figures}"]
    plural = "process" if kills == 1 else "processes"
    return [f"the kernel OOM killer killed {kills} {plural} of this container during the run: {figures}"]


def _kill_notes(seen: Observed) -> list[str]:
    """Who sent a SIGKILL that the memory note does not explain."""
    if seen.signal != "SIGKILL":
        return []
    if seen.sent_kill:
        return [f"ma-launch sent SIGKILL after the {seen.grace:g} s grace period"]
    if not _no_oom(seen):
        if seen.oom_kills or seen.limit_hits:
            return []  # the memory note says it
        return [
            "killed by SIGKILL not sent by ma-launch — likely out of memory (no cgroup OOM counter to check)"
        ]
    stop = seen.stop
    if stop is not None and stop.ended_after is not None:
        after = duration(stop.ended_after)
        return [
            f"killed from outside {after} after the stop request, before ma-launch's {seen.grace:g} s grace "
            "ran out: the platform's stop grace is probably shorter (hint: a smaller --grace)"
        ]
    return [
        "killed from outside: not by ma-launch and not by the OOM killer (the platform's stop grace may "
        "have run out)"
    ]


def _crash_notes(seen: Observed) -> list[str]:
    """One line of advice for a crash signal, also when a shell reports it as exit code 128+N."""
    name = seen.signal
    if name in CRASH_ADVICE:
        return [f"{name}: {CRASH_ADVICE[name]}"]
    code = seen.exit_code
    if code is not None and 128 < code < 128 + 65:
        shell_name = signal_name(code - 128)
        if shell_name in CRASH_ADVICE:
            return [
                f"exit code {code} is how a shell reports a process killed by {shell_name}: "
                f"{CRASH_ADVICE[shell_name]}"
            ]
    return []


def _stop_note(stop: Stop, grace: float) -> str:
    got = f"the program got {stop.sent}" + ("" if stop.sent == stop.received else " (--stop-signal)")
    head = f"stop requested by {stop.received} after {duration(stop.at)}: {got}"
    if stop.ended_after is None:
        return f"{head} and had not ended when the {grace:g} s grace ran out"
    used = f"{stop.ended_after / grace:.0%} of" if grace > 0 else "after"
    return f"{head} and ended {duration(stop.ended_after)} later ({used} the {grace:g} s grace)"


def _holders_note(holders: Sequence[Holder]) -> str:
    shown = [f"{h.pid} {h.name} ({', '.join(h.devices)})" for h in holders[:3]]
    more = f" and {len(holders) - 3} more" if len(holders) > 3 else ""
    return "still holding accelerator devices after the program ended: " + ", ".join(shown) + more


def _leftovers_note(seen: Observed) -> str:
    count = f"{seen.leftovers} leftover process" + ("es" if seen.leftovers > 1 else "")
    if seen.sent_kill:
        return f"{count} killed with SIGKILL"
    if seen.leftovers_killed:
        return f"{count} sent SIGTERM, then SIGKILL after the grace period"
    return f"{count} stopped with SIGTERM"


def _limit(limit: Optional[int]) -> str:
    return "none set" if limit is None else size(limit)
