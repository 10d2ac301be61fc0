"""Supervisor mode: stay as the parent of the program instead of exec'ing it.

Used when ma-launch is PID 1 of a container (or when asked to). A process exec'd as PID 1 without a SIGTERM
handler ignores SIGTERM, never reaps the orphans that are re-parented to it, and the platform's stop then
ends in SIGKILL after a timeout. The supervisor instead:

* starts the program in its own process group (handing it the terminal when stdin is one);
* becomes a child subreaper when it is not PID 1, so orphaned descendants come back to it;
* forwards HUP, INT, QUIT, TERM, USR1, USR2, WINCH, ALRM and CONT to the program's process group, waiting
  for them synchronously (blocked signals + ``sigtimedwait``: no Python handlers, no races);
* on the first stop signal (TERM, INT, QUIT or HUP) starts a grace period, after which the program's group
  and every remaining descendant get SIGKILL;
* sends SIGCONT after a forwarded stop signal when a process of the program's group is stopped
  (SIGSTOP, Ctrl-Z): a stopped process runs no handler, so it could not clean up before the SIGKILL;
* reaps every child it gets;
* forwards SIGTERM as ``--stop-signal`` (SIGUSR1 or SIGINT for code that checkpoints on them), and says once
  when the stop request came;
* when the program ends, names the processes left that still hold accelerator devices, stops what is left
  of the tree (SIGTERM, grace, SIGKILL), prints one summary line that says why the job ended (written as
  JSON too with ``--summary``) and ends the way the program ended: same exit code, or the same fatal
  signal (128+N as PID 1).

A launch that will be supervised forks first, right after its options are read
(:mod:`launcher.run.fork`): the child plans and execs the program (so the planning costs no second
interpreter, and a stop request during the planning simply ends the child: the program is then never
started and the job ends as if killed by that signal, 143 for SIGTERM as PID 1); the parent supervises it
with the launcher's own environment, so the program's (with the env's libraries on ``LD_LIBRARY_PATH``)
can never keep the supervisor from running. ``python -m launcher.run.supervise -- COMMAND`` supervises a
command as it is.

Whether to supervise at all is decided on the launcher's side (:mod:`launcher.run.pid1`). Only the
standard library is used while the job runs: this module, :mod:`launcher.run.proctree` (the process tree
from ``/proc``), :mod:`launcher.run.outcome` (the summary and the ending), :mod:`launcher.run.handoff`
(the launch record: whether and what the child exec'd), :mod:`launcher.run.watch` (what is observed to
say why the job ended: the memory cgroup, the stop request, devices still held, the loader),
:mod:`launcher.run.verdict` (the reason and the notes) and :mod:`launcher.run.report` (the JSON summary).
This module is over 300 lines because the supervisor is one state machine whose steps share its state;
what does not share it lives in those.
"""

from __future__ import annotations

import os
import sys
import time

from launcher.errors import CommandNotExecutable, LaunchError, UsageError, exec_error
from launcher.run import handoff, outcome, proctree, report, verdict
from launcher.run.fork import become_the_child, block, flush, forwarded, terminal
from launcher.run.signals import STOPPING, signal_name, signal_number
from launcher.run.watch import Watch

# The supervisor stays resident for the whole job: typing and contextlib (and what they pull in) are not
# imported at run time; annotations are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Iterable, Mapping, Sequence
    from types import TracebackType
    from typing import NoReturn, Optional, Union

    from launcher.run.fork import Forked
else:
    import _signal as signal  # signal imports enum (see launcher.run.signals)

PREFIX = "ma-launch: "


class _suppress:
    """``contextlib.suppress`` without importing contextlib."""

    def __init__(self, *exceptions: type[BaseException]) -> None:
        self.exceptions = exceptions

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: Optional[type[BaseException]], value: Optional[BaseException], tb: Optional[TracebackType]
    ) -> bool:
        return kind is not None and issubclass(kind, self.exceptions)


DEFAULT_GRACE = 25.0

# How long to wait for SIGKILLed processes to be reaped before giving up on them (D state, NFS...).
_KILL_WAIT = 5.0


def run_supervised(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    grace: float = DEFAULT_GRACE,
    quiet: bool = False,
    stop_signal: int = signal.SIGTERM,
    summary: Optional[str] = None,
    stop_fails: bool = False,
) -> NoReturn:
    """Run ``argv`` (looked up on ``env["PATH"]``) as a supervised child and end the way it ended;
    SIGTERM reaches it as ``stop_signal``; ``summary`` names a file for the JSON summary.

    With ``stop_fails``, a program that exits 0 after a stop request (msrun does on SIGINT) ends as if
    the stop signal had killed it, so a stopped job never reports success. The working directory must
    already be set. Raises :class:`CommandNotFound` (127) or :class:`CommandNotExecutable` (126) when the
    program cannot be started; otherwise never returns.
    """
    if not argv:
        raise UsageError("no command to run")
    supervisor = _Supervisor(argv, env, grace, quiet, stop_signal, summary, stop_fails)
    supervisor.prepare()
    supervisor.start_program()
    supervisor.supervise_to_the_end()


def adopt_launch(
    forked: Forked,
    *,
    grace: float = DEFAULT_GRACE,
    quiet: bool = False,
    stop_signal: Union[int, str] = signal.SIGTERM,
    summary: Optional[str] = None,
    stop_fails: bool = False,
) -> NoReturn:
    """In the parent of :func:`launcher.run.fork.fork_launch`: supervise the launch child until the end
    (its signals already blocked, the terminal already handed to it), and end like it; the child writes
    the launch record before it execs the program."""
    if isinstance(stop_signal, str):
        stop_signal = signal_number(stop_signal)
    supervisor = _Supervisor([], None, grace, quiet, stop_signal, summary, stop_fails)
    supervisor.prepare(tty=forked.tty, old_mask=forked.old_mask)
    supervisor.adopt(forked.pid)
    supervisor.supervise_to_the_end(forked.record)


class _Supervisor:
    def __init__(
        self,
        argv: Sequence[str],
        env: Optional[Mapping[str, str]],
        grace: float,
        quiet: bool,
        stop_signal: int,
        summary: Optional[str],
        stop_fails: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.env = env
        self.grace = max(0.0, grace)
        self.quiet = quiet
        self.summary = summary
        self.stop_fails = stop_fails
        self.watch = Watch(self.grace, stop_signal, os.environ)
        self.me = os.getpid()
        self.pid = 0
        self.status: Optional[int] = None
        self.started = 0.0
        self.tty = -1
        self.stop_deadline: Optional[float] = None
        self.sent_kill = False
        self.leftovers = 0
        self.leftovers_killed = False
        self.cpu_before = 0.0
        self.forwarded = forwarded()
        self.waited: set[int] = {*self.forwarded, signal.SIGCHLD}
        self.old_mask: set[int] = set()

    # -- start ----------------------------------------------------------------------------------------------

    def prepare(self, *, tty: Optional[int] = None, old_mask: Optional[set[int]] = None) -> None:
        """Become a supervisor: the signals it waits for blocked (so none is lost from now on; already done
        when ``old_mask`` is given), SIGCHLD reported, a subreaper when not PID 1; the memory cgroup read;
        the terminal noted (or ``tty``)."""
        self.started = time.monotonic()
        self.cpu_before = outcome.children_usage()[0]
        self.old_mask = old_mask if old_mask is not None else block(self.forwarded)
        if self.me != 1:
            proctree.become_subreaper()
        self.watch.begin(self.started)
        self.tty = tty if tty is not None else terminal()
        flush()

    def supervise_to_the_end(self, record: Optional[int] = None) -> NoReturn:
        """Wait for the program (forwarding signals, reaping), stop what is left, and end like it. With a
        launch ``record``, a child that never exec'd the program ends the job as the child ended."""
        self._supervise()
        if record is not None:
            launched = handoff.read_record(record)
            if launched is None:
                self._not_started()
            else:
                self.argv, self.env = [launched.program], launched.environ
        self._drain()
        self._finish()

    def adopt(self, pid: int) -> None:
        """``pid`` is the program's process (or the launch child that becomes it): its own group."""
        self.pid = pid
        with _suppress(OSError):
            os.setpgid(pid, pid)  # also done in the child; whichever runs first wins

    def _not_started(self) -> NoReturn:
        """The child ended before the program started. Stopped by a forwarded signal: say so (even under
        ``--quiet``: the job ends without its program ever running) and end as killed by it; else the child
        has said why (a planning error), and the job ends with its status."""
        status = self.status if self.status is not None else 0
        self._take_tty_back()
        stop = self.watch.stop
        if os.WIFSIGNALED(status) and stop is not None:
            sig = os.WTERMSIG(status)
            line = outcome.not_started(sig)
            sys.stderr.write(PREFIX + line + "\n")
            _write_not_started(self.summary, line, 128 + sig)
            outcome.end_by_signal(sig)
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        _write_not_started(self.summary, f"the program was not started ({outcome.how(status)})", code)
        outcome.end_like(status)

    def start_program(self) -> None:
        """Start ``argv`` as the child and wait until it exec'd (the command mode); raises the exec's error
        when it could not."""
        ready, report = os.pipe()  # both ends close-on-exec
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(ready)
            os.close(report)
            raise CommandNotExecutable(
                f"{self.argv[0]}: cannot start a process: {exc.strerror}", hint="check the process limits"
            ) from exc
        if pid == 0:  # pragma: no cover - the child either execs or _exits
            self._child(ready, report)
        os.close(report)
        self.adopt(pid)
        chunks = []
        while True:
            chunk = os.read(ready, 64)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(ready)
        if chunks:
            os.waitpid(pid, 0)
            self._take_tty_back()
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old_mask)
            code = int(b"".join(chunks) or b"0")
            raise exec_error(self.argv[0], code)

    def _child(self, ready: int, report: int) -> NoReturn:
        code = 0
        try:
            os.close(ready)
            become_the_child(self.tty, self.forwarded)
            os.execvpe(self.argv[0], self.argv, dict(self.env or os.environ))  # noqa: S606
        except OSError as exc:
            code = exc.errno or 0
        except BaseException:  # noqa: S110 - anything else is reported as "cannot run"
            pass
        try:
            os.write(report, str(code).encode())
        finally:
            os._exit(127)

    # -- while the program runs -----------------------------------------------------------------------------

    def _supervise(self) -> None:
        while self.status is None:
            timeout = 30.0
            if self.stop_deadline is not None and not self.sent_kill:
                timeout = max(0.0, self.stop_deadline - time.monotonic())
            info = signal.sigtimedwait(self.waited, timeout)
            if info is not None and info.si_signo != signal.SIGCHLD:
                self._forward(info.si_signo)
            self._reap()
            if (
                self.status is None
                and self.stop_deadline is not None
                and not self.sent_kill
                and time.monotonic() >= self.stop_deadline
            ):
                self.sent_kill = True
                self._signal_tree(signal.SIGKILL, proctree.descendants(self.me))

    def _forward(self, sig: int) -> None:
        if sig == signal.SIGINT and self._child_has_tty():
            return  # the terminal already sent it to the program's group
        with _suppress(OSError):
            os.killpg(self.pid, self.watch.signal_for(sig))
        if sig not in STOPPING:
            return
        if proctree.stopped_in_group(self.pid, proctree.descendants(self.me)):
            with _suppress(OSError):
                os.killpg(self.pid, signal.SIGCONT)  # a stopped process runs its handler only once continued
        if self.stop_deadline is None:
            now = time.monotonic()
            self.stop_deadline = now + self.grace
            line = self.watch.stop_requested(sig, now)
            if line and not self.quiet:
                sys.stderr.write(PREFIX + line + "\n")

    def _child_has_tty(self) -> bool:
        if self.tty < 0:
            return False
        try:
            return os.tcgetpgrp(self.tty) == self.pid
        except OSError:
            return False

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.status = status
                self.watch.program_ended(time.monotonic())

    def _signal_tree(self, sig: int, pids: Iterable[int]) -> None:
        for target in (-self.pid, *pids):
            with _suppress(OSError):
                os.kill(target, sig)

    # -- after the program ended ----------------------------------------------------------------------------

    def _drain(self) -> None:
        """Stop every process left in the tree (or in the program's group): TERM, the grace, then KILL."""
        now = time.monotonic()
        self._take_tty_back()
        left, group = self._left()
        if not left and not group:
            return
        self.watch.leftovers(left)
        self.leftovers = len(left) or 1
        if self.sent_kill:
            deadline = now
        else:
            deadline = self.stop_deadline if self.stop_deadline is not None else now + self.grace
            self._signal_tree(signal.SIGTERM, left)
            self._signal_tree(signal.SIGCONT, left)
        killed = False
        while left or group:
            now = time.monotonic()
            if now >= deadline:
                if killed:
                    return
                killed = True
                self.leftovers_killed = True
                self._signal_tree(signal.SIGKILL, left)
                deadline = now + _KILL_WAIT
            signal.sigtimedwait({signal.SIGCHLD}, min(0.05, max(0.0, deadline - now)))
            self._reap()
            left, group = self._left()

    def _left(self) -> tuple[list[int], bool]:
        """Live descendants, and whether the program's process group still has members."""
        try:
            os.killpg(self.pid, 0)
        except OSError:
            group = False
        else:
            group = True
        return proctree.descendants(self.me), group

    def _take_tty_back(self) -> None:
        if self.tty >= 0:
            with _suppress(OSError):
                os.tcsetpgrp(self.tty, os.getpgrp())

    def _finish(self) -> NoReturn:
        """Say why the program ended (the summary line, the JSON summary) and end the same way."""
        status = self.status if self.status is not None else 0
        wall = time.monotonic() - self.started
        seen = self.watch.observed(
            status,
            sent_kill=self.sent_kill,
            leftovers=self.leftovers,
            leftovers_killed=self.leftovers_killed,
            program=self.argv[0],
            environ=self.env if self.env is not None else os.environ,
            explain=not self.quiet or self.summary is not None,
        )
        cpu, peak = outcome.children_usage()
        cpu -= self.cpu_before  # children waited for before we started (e.g. by a wrapper before exec)
        line = outcome.summary(status, wall=wall, cpu=cpu, peak=peak, notes=verdict.notes(seen))
        stop = self.watch.stop
        if self.stop_fails and stop is not None and status == 0:
            name = signal_name(stop[0])
            line += f"; it exited 0 after {name}: ending with {name}'s status, as a stopped job"
            status = stop[0]  # the wait status of a process killed by the signal that asked for the stop
        if not self.quiet:
            sys.stderr.write(PREFIX + line + "\n")
        if self.summary is not None:
            doc = report.document(seen, line=line, wall=wall, cpu=cpu, peak_rss=peak)
            report.write_summary(self.summary, doc)
        outcome.end_like(status)


def _write_not_started(path: Optional[str], line: str, status: int) -> None:
    if path is not None:
        report.write_not_started(path, line, status)


def _main(args: list[str]) -> NoReturn:
    """``python -m launcher.run.supervise [--grace S] [--quiet] [--stop-signal SIGUSR1] [--summary FILE]
    [--stop-fails] [--] COMMAND...``: supervise a command as it is, with this environment."""
    grace, quiet = DEFAULT_GRACE, False
    stop_signal: int = signal.SIGTERM
    summary, stop_fails = None, False
    try:
        while args and args[0].startswith("--"):
            option = args.pop(0)
            if option == "--":
                break
            if option == "--quiet":
                quiet = True
            elif option == "--stop-fails":
                stop_fails = True
            elif option == "--grace" and args:
                grace = float(args.pop(0))
            elif option == "--stop-signal" and args:
                stop_signal = signal_number(args.pop(0))
            elif option == "--summary" and args:
                summary = args.pop(0)
            else:
                sys.exit(f"{PREFIX}error: unknown option {option}")
        run_supervised(
            args,
            os.environ,
            grace=grace,
            quiet=quiet,
            stop_signal=stop_signal,
            summary=summary,
            stop_fails=stop_fails,
        )
    except LaunchError as error:
        sys.stderr.write(error.line() + "\n")
        _write_not_started(summary, error.line(), error.exit_code)
        sys.exit(error.exit_code)
    except (OSError, ValueError, KeyError) as error:
        sys.exit(f"{PREFIX}error: the supervisor cannot start: {error}")


if __name__ == "__main__":
    _main(sys.argv[1:])
