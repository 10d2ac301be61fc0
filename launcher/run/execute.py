"""Carrying out a plan: change directory and replace this process with the program (or the supervisor).

The only module that calls ``chdir`` and ``exec``. Nothing here captures, pipes or re-encodes output:
file descriptors 0, 1 and 2 pass to the program untouched.
"""

from __future__ import annotations

import os
import sys

from launcher.errors import exec_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Iterable
    from typing import NoReturn, Optional

    from launcher.core.plan import LaunchPlan
    from launcher.modes import InitMode
else:
    # The C module under ``signal``, with the same functions: ``signal`` itself imports ``enum`` (several
    # milliseconds, more than the rest of a launch's own work), and ``_signal`` is loaded at start-up.
    import _signal


def prepare_process(blocked: Iterable[int] = ()) -> None:
    """Undo what CPython did to this process that the program must not inherit.

    Side effects: flushes our stdout/stderr (or what we wrote is lost at exec), resets SIGPIPE and SIGXFSZ
    to their defaults (CPython ignores them, and exec keeps "ignored"), and sets the signal mask to
    ``blocked`` (empty for the program; the stop signals for the supervisor).
    """
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib is not imported on the exec path
            stream.flush()
        except (OSError, ValueError):
            pass
    for name in ("SIGPIPE", "SIGXFSZ"):
        sig = getattr(_signal, name, None)
        if sig is not None:
            _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, list(blocked))


def exec_plan(plan: LaunchPlan) -> NoReturn:
    """Run the plan by replacing this process with the file the planner resolved (``plan.exec_path``;
    argv[0] as given, no PATH search of our own); raises LaunchError when that cannot happen."""
    if plan.problems:
        raise plan.problems[0]
    os.chdir(plan.workdir)
    prepare_process()
    try:
        os.execve(plan.exec_path, list(plan.argv), dict(plan.environ))
    except OSError as exc:
        raise exec_error(plan.argv[0], exc.errno or 0, exc.strerror or "") from exc


#: Runs in a fresh ``python -I -S``: puts the package on sys.path and starts the supervisor alone.
_SUPERVISOR_BOOT = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from launcher.run.supervise import _main; _main(sys.argv[1:])"
)


def run_plan(
    plan: LaunchPlan,
    *,
    init: InitMode,
    grace: float,
    quiet: bool,
    stop_signal: str = "SIGTERM",
    summary: Optional[str] = None,
    stop_fails: bool = False,
) -> NoReturn:
    """Run the plan: exec it, or supervise it as a child when ``init`` says so (``auto``: as PID 1), with
    SIGTERM forwarded as ``stop_signal`` and the JSON summary written to ``summary``; ``stop_fails``: a
    program that exits 0 after a stop request ends with the stop signal's status (see
    :func:`launcher.run.supervise.run_supervised`).

    The supervisor stays resident for the whole job, so it does not run in this process, which holds
    everything the planning imported: this process execs (same PID) a fresh interpreter in isolated mode
    without site-packages that imports only the supervisor. That interpreter keeps the launcher's own
    environment (the program's, with the env's libraries on ``LD_LIBRARY_PATH``, could keep it from
    starting); the program's environment is handed over on a file descriptor
    (:mod:`launcher.run.handoff`), and a stop requested while planning as a pending signal
    (:mod:`launcher.run.stops`).
    """
    from launcher.run.pid1 import should_supervise

    if not should_supervise(init):
        exec_plan(plan)
    if plan.problems:
        raise plan.problems[0]
    from launcher.run import stops, supervise

    os.chdir(plan.workdir)
    blocked = stops.hand_over()
    options = ["--grace", repr(grace), *(["--quiet"] if quiet else [])]
    if stop_signal != "SIGTERM":
        options += ["--stop-signal", stop_signal]
    if summary is not None:
        options += ["--summary", summary]
    if stop_fails:
        options.append("--stop-fails")
    _exec_supervisor(plan, options, blocked=blocked)
    supervise.run_supervised(
        plan.argv,
        plan.environ,
        grace=grace,
        quiet=quiet,
        stop_signal=getattr(_signal, stop_signal),
        summary=summary,
        stop_fails=stop_fails,
    )


def _exec_supervisor(plan: LaunchPlan, options: list[str], *, blocked: Iterable[int]) -> None:
    """Replace this process with the lean supervisor interpreter given ``options``; returns when that
    cannot be done."""
    from launcher.run.handoff import environment_fd

    if not sys.executable or not os.access(sys.executable, os.X_OK):
        return
    fd = environment_fd(plan.environ)
    if fd is None:
        return
    import launcher

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(launcher.__file__)))
    args = [*options, "--environment-fd", str(fd), "--"]
    prepare_process(blocked)
    try:
        os.execve(
            sys.executable,
            [sys.executable, "-I", "-S", "-c", _SUPERVISOR_BOOT, package_parent, *args, *plan.argv],
            dict(os.environ),
        )
    except OSError:  # no exec possible: supervise from here instead
        os.close(fd)
