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
* reaps every child it gets;
* when the program ends, stops what is left of the tree (SIGTERM, grace, SIGKILL), prints one summary line
  and ends the way the program ended: same exit code, or the same fatal signal (128+N as PID 1).

The summary gives the CPU time of the whole tree (every reaped descendant) but the peak RSS of the largest
single process (``ru_maxrss`` of children is a maximum, not a sum), and says so.

Only the standard library is used while the job runs; the process tree is read from ``/proc``.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from launcher.errors import CommandNotExecutable, LaunchError, UsageError, exec_error

# The supervisor runs in a lean interpreter for the whole job: typing and contextlib (and what they pull
# in) are not imported at run time; annotations are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from types import TracebackType
    from typing import NoReturn, Optional

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
MODES = ("auto", "always", "never")

FORWARDED: tuple[signal.Signals, ...] = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGALRM,
    signal.SIGCONT,
)
STOPPING = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM})
# Blocked for the whole life of the supervisor; TTIN/TTOU so that taking the terminal back from the
# background (tcsetpgrp) and writing the summary never stop us.
_TTY_SIGNALS = (signal.SIGTTIN, signal.SIGTTOU)
# How long to wait for SIGKILLed processes to be reaped before giving up on them (D state, NFS...).
_KILL_WAIT = 5.0
PR_SET_CHILD_SUBREAPER = 36


def should_supervise(mode: str) -> bool:
    """Whether to run the program under the supervisor: ``auto`` means "when this process is PID 1"."""
    if mode == "auto":
        return os.getpid() == 1
    if mode == "always":
        return True
    if mode == "never":
        return False
    raise UsageError(f"unknown supervise mode {mode!r}", hint="use one of: " + ", ".join(MODES))


def pid1_warnings(mode: str) -> list[str]:
    """Warnings about how this process sits in the container, without the ``ma-launch: warning:`` prefix."""
    warnings: list[str] = []
    pid = os.getpid()
    if pid == 1 and mode == "never":
        warnings.append(
            "running as PID 1 without the supervisor: SIGTERM will be ignored unless the program handles it, "
            "and orphaned processes are never reaped (hint: use --init auto)"
        )
    if pid != 1 and os.getppid() == 1 and _pid1_is_dash():
        warnings.append(
            "the parent is PID 1 /bin/sh (dash): it swallows SIGTERM and waits instead of exec'ing, so a "
            "stop ends in SIGKILL after the platform's timeout (hint: write `exec ma-launch …` in the boot "
            "command)"
        )
    return warnings


def _pid1_is_dash() -> bool:
    """Whether PID 1 runs dash; /proc/1/exe when we may read it, else argv[0] of PID 1 resolved on disk."""
    try:
        exe = os.readlink("/proc/1/exe")
    except OSError:
        exe = ""
    if exe:
        if exe.endswith(" (deleted)"):
            exe = exe[: -len(" (deleted)")]
        return os.path.basename(exe) == "dash"
    try:
        with open("/proc/1/cmdline", "rb") as handle:
            argv0 = handle.read().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return False
    name = os.path.basename(argv0.lstrip("-"))
    if name == "dash":
        return True
    if name != "sh":
        return False
    path = argv0.lstrip("-") if "/" in argv0 else "/bin/sh"
    return os.path.basename(os.path.realpath(path)) == "dash"


def run_supervised(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    grace: float = DEFAULT_GRACE,
    quiet: bool = False,
    stop_fails: bool = False,
) -> NoReturn:
    """Run ``argv`` (looked up on ``env["PATH"]``) as a supervised child and end the way it ended.

    With ``stop_fails``, a program that exits 0 after a stop request (msrun does on SIGINT) ends as if
    the stop signal had killed it, so a stopped job never reports success. The working directory must
    already be set. Raises :class:`CommandNotFound` (127) or :class:`CommandNotExecutable` (126) when the
    program cannot be started; otherwise never returns.
    """
    if not argv:
        raise UsageError("no command to run")
    _Supervisor(argv, env, grace, quiet, stop_fails).run()


class _Supervisor:
    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str], grace: float, quiet: bool, stop_fails: bool = False
    ) -> None:
        self.stop_fails = stop_fails
        self.stop_signal = 0
        self.argv = list(argv)
        self.env = env
        self.grace = max(0.0, grace)
        self.quiet = quiet
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
        # Signals our parent set to "ignored" (nohup) stay ignored and are not forwarded.
        self.forwarded = [s for s in FORWARDED if signal.getsignal(s) != signal.SIG_IGN]
        self.waited = {*self.forwarded, signal.SIGCHLD}
        self.old_mask: set[int] = set()

    # -- start ----------------------------------------------------------------------------------------------

    def run(self) -> NoReturn:
        self.started = time.monotonic()
        self.cpu_before = _children_usage()[0]
        # An inherited "ignore SIGCHLD" makes the kernel reap for us and hides every exit status.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [*self.waited, *_TTY_SIGNALS])
        if self.me != 1:
            _become_subreaper()
        try:
            self._start()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old_mask)
            raise
        self._supervise()
        self._drain()
        self._finish()

    def _start(self) -> None:
        try:
            if os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp():
                self.tty = 0
        except OSError:
            self.tty = -1
        for stream in (sys.stdout, sys.stderr):
            with _suppress(OSError, ValueError, AttributeError):
                stream.flush()
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
        self.pid = pid
        with _suppress(OSError):
            os.setpgid(pid, pid)  # also done in the child; whichever runs first wins
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
            code = int(b"".join(chunks) or b"0")
            raise exec_error(self.argv[0], code)

    def _child(self, ready: int, report: int) -> NoReturn:
        code = 0
        try:
            os.close(ready)
            os.setpgid(0, 0)
            if self.tty >= 0:
                with _suppress(OSError):
                    os.tcsetpgrp(self.tty, os.getpid())  # SIGTTOU is blocked here, so this works
            for sig in (*self.forwarded, signal.SIGPIPE, signal.SIGXFSZ, *_TTY_SIGNALS):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            os.execvpe(self.argv[0], self.argv, dict(self.env))  # noqa: S606
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
                self._forward(signal.Signals(info.si_signo))
            self._reap()
            if (
                self.status is None
                and self.stop_deadline is not None
                and not self.sent_kill
                and time.monotonic() >= self.stop_deadline
            ):
                self.sent_kill = True
                self._signal_tree(signal.SIGKILL, _descendants(self.me))

    def _forward(self, sig: signal.Signals) -> None:
        if sig == signal.SIGINT and self._child_has_tty():
            return  # the terminal already sent it to the program's group
        with _suppress(OSError):
            os.killpg(self.pid, sig)
        if sig in STOPPING and self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + self.grace
            self.stop_signal = sig

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
        return _descendants(self.me), group

    def _take_tty_back(self) -> None:
        if self.tty >= 0:
            with _suppress(OSError):
                os.tcsetpgrp(self.tty, os.getpgrp())

    def _finish(self) -> NoReturn:
        status = self.status if self.status is not None else 0
        summary = self._summary(status)
        if self.stop_fails and self.stop_signal and status == 0:
            status = self.stop_signal  # the wait status of a process killed by that signal
            name = _signal_name(self.stop_signal)
            summary += f"; it exited 0 after {name}: ending with {name}'s status, as a stopped job"
        if not self.quiet:
            sys.stderr.write(PREFIX + summary + "\n")
        for stream in (sys.stdout, sys.stderr):
            with _suppress(OSError, ValueError, AttributeError):
                stream.flush()
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if self.me != 1:
                _die_of(sig)
            os._exit(128 + sig)
        os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)

    def _summary(self, status: int) -> str:
        wall = time.monotonic() - self.started
        cpu, peak = _children_usage()
        cpu -= self.cpu_before  # children waited for before we started (e.g. by a wrapper before exec)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            how = f"killed by {_signal_name(sig)} (status {128 + sig})"
        else:
            how = f"exit code {os.WEXITSTATUS(status)}"
        parts = [
            f"program ended: {how}",
            f"wall {_duration(wall)}",
            f"CPU {_duration(cpu)} (process tree)",
            f"peak RSS {_size(peak)} (largest process)",
        ]
        notes = []
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            if self.sent_kill:
                notes.append(f"ma-launch sent SIGKILL after the {self.grace:g} s grace period")
            else:
                notes.append("killed by SIGKILL not sent by ma-launch — likely out of memory")
        if self.leftovers:
            count = f"{self.leftovers} leftover process" + ("es" if self.leftovers > 1 else "")
            if self.sent_kill:
                notes.append(f"{count} killed with SIGKILL")
            elif self.leftovers_killed:
                notes.append(f"{count} sent SIGTERM, then SIGKILL after the grace period")
            else:
                notes.append(f"{count} stopped with SIGTERM")
        return ", ".join(parts) + "".join("; " + note for note in notes)


def _children_usage() -> tuple[float, int]:
    """CPU seconds (user + system) of all reaped descendants, and the largest peak RSS among them (bytes).

    The kernel keeps a process's peak RSS across exec, so the peak is at least that of this process at
    fork time (about 10 MiB), the same as when ma-launch execs the program in place.
    """
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def _die_of(sig: int) -> None:
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


def _become_subreaper() -> None:
    """prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are re-parented to us (Linux >= 3.4)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (ImportError, OSError, AttributeError):
        pass


def _descendants(root: int) -> list[int]:
    """Live (non-zombie) descendants of ``root``, from /proc; psutil where there is no /proc."""
    if root == os.getpid() and hasattr(os, "waitid"):
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)  # reaps nothing
        except ChildProcessError:
            return []  # no child at all (not even a zombie): no descendant either
    if os.path.exists(f"/proc/{root}/task/{root}/children"):
        return _descendants_by_children(root)
    return _descendants_by_scan(root)


def _descendants_by_scan(root: int) -> list[int]:
    """Read the parent of every process in /proc (kernels without CONFIG_PROC_CHILDREN)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return _descendants_psutil(root)
    children: dict[int, list[int]] = {}
    for name in names:
        if name.isdigit():
            state, ppid = _state_and_ppid(name)
            if state not in ("Z", "X", ""):
                children.setdefault(ppid, []).append(int(name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def _descendants_by_children(root: int) -> list[int]:
    """Walk /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN): reads only the tree, not all of /proc."""
    found: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            for child in _read(f"/proc/{pid}/task/{tid}/children").split():
                if _state_and_ppid(child.decode())[0] not in ("Z", "X", ""):
                    found.append(int(child))
                    todo.append(int(child))
    return found


def _state_and_ppid(pid: str) -> tuple[str, int]:
    """State letter and parent pid from /proc/<pid>/stat; ("", 0) when the process is gone."""
    data = _read(f"/proc/{pid}/stat")
    fields = data[data.rfind(b")") + 2 :].split(None, 2)
    if len(fields) < 2:
        return "", 0
    return fields[0].decode(), int(fields[1])


def _read(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return b""
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _descendants_psutil(root: int) -> list[int]:
    try:
        import importlib

        psutil = importlib.import_module("psutil")
        return [p.pid for p in psutil.Process(root).children(recursive=True)]
    except Exception:  # best effort where there is no /proc
        return []


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _main(args: list[str]) -> NoReturn:
    """Entry of the lean supervisor process (``launcher.run.execute.run_plan`` execs into it); also
    ``python -m launcher.run.supervise [--grace S] [--quiet] [--stop-fails] [--] COMMAND...`` for
    debugging."""
    grace, quiet, stop_fails = DEFAULT_GRACE, False, False
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
        else:
            sys.exit(f"{PREFIX}error: unknown option {option}")
    try:
        run_supervised(args, os.environ, grace=grace, quiet=quiet, stop_fails=stop_fails)
    except LaunchError as error:
        sys.stderr.write(error.line() + "\n")
        sys.exit(error.exit_code)


if __name__ == "__main__":
    _main(sys.argv[1:])
