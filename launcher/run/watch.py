"""What the supervisor watches besides its process tree, to say why the job ended: the memory cgroup before
and after the run, the stop request (when it came, which signal the program got, how long it took to end),
the processes that still hold accelerator devices when the program has ended, and for exit code 127 the
loader analysis. :meth:`Watch.observed` gathers it all for :mod:`launcher.run.verdict`.

Where the memory cgroup and the device nodes are read comes from the supervisor's own environment
(``MA_LAUNCH_CGROUP_ROOT``, ``MA_LAUNCH_DEVICE_ROOT``), so tests can point both elsewhere.

Part of the supervisor: standard library only.
"""

from __future__ import annotations

import os

from launcher.modelarts.facts import DEVICE_ROOT, DEVICE_ROOT_VARIABLE
from launcher.run.memcg import DEFAULT_ROOT, read_memory
from launcher.run.outcome import duration
from launcher.run.signals import SIGTERM, signal_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Optional

    from launcher.run.devholders import Holder
    from launcher.run.memcg import Memory
    from launcher.run.verdict import Observed, Stop

CGROUP_ROOT_VARIABLE = "MA_LAUNCH_CGROUP_ROOT"


class Watch:
    """The observations of one supervised run; ``stop_signal`` is what the program gets for SIGTERM."""

    def __init__(self, grace: float, stop_signal: int, environ: Mapping[str, str]) -> None:
        self.grace = grace
        self.stop_signal = stop_signal
        self.cgroup_root = environ.get(CGROUP_ROOT_VARIABLE) or DEFAULT_ROOT
        self.device_root = environ.get(DEVICE_ROOT_VARIABLE) or DEVICE_ROOT
        self.started = 0.0
        self.memory_before: Optional[Memory] = None
        self.stop: Optional[tuple[int, int, float]] = None  # received, sent, when
        self.ended = 0.0
        self.holders: list[Holder] = []

    def begin(self, now: float) -> None:
        """The program is about to start: read the memory cgroup."""
        self.started = now
        self.memory_before = read_memory(self.cgroup_root)

    def signal_for(self, received: int) -> int:
        """The signal the program gets for ``received``: the stop signal for SIGTERM, else the same."""
        return self.stop_signal if received == SIGTERM else received

    def stop_requested(self, received: int, now: float) -> Optional[str]:
        """Note the first stop request; the line that says so (once), else ``None``."""
        if self.stop is not None:
            return None
        sent = self.signal_for(received)
        self.stop = (received, sent, now)
        after, got = duration(now - self.started), signal_name(sent)
        return (
            f"stop requested by {signal_name(received)} after {after}: sent {got} to the program, which has "
            f"{self.grace:g} s (--grace) to end before the whole tree is killed"
        )

    def program_ended(self, now: float) -> None:
        self.ended = now

    def leftovers(self, pids: Iterable[int]) -> None:
        """The processes left when the program ended, before they are stopped: who holds a device."""
        from launcher.run.devholders import device_holders

        self.holders = device_holders(pids, self.device_root)

    def observed(
        self,
        status: int,
        *,
        sent_kill: bool,
        leftovers: int,
        leftovers_killed: bool,
        program: str,
        environ: Mapping[str, str],
        explain: bool = True,
    ) -> Observed:
        """Everything seen, for the verdict; reads the memory cgroup again, and for exit code 127 of a
        program that started runs the loader analysis (unless ``explain`` is false: nobody will read it)."""
        from launcher.run.verdict import Observed

        loader = None
        if explain and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 127:
            from launcher.run.loaderfix import explain_exit_127

            loader = explain_exit_127(program, environ)
        return Observed(
            status,
            grace=self.grace,
            sent_kill=sent_kill,
            stop=self._stop(sent_kill),
            memory_before=self.memory_before,
            memory_after=read_memory(self.cgroup_root),
            leftovers=leftovers,
            leftovers_killed=leftovers_killed,
            holders=self.holders,
            loader=loader,
        )

    def _stop(self, sent_kill: bool) -> Optional[Stop]:
        from launcher.run.verdict import Stop

        if self.stop is None:
            return None
        received, sent, when = self.stop
        ended_after = None if sent_kill or not self.ended else max(0.0, self.ended - when)
        return Stop(signal_name(received), signal_name(sent), at=when - self.started, ended_after=ended_after)
