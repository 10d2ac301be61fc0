"""Carrying out a plan: change directory and replace this process with the program.

The only module that calls ``chdir`` and ``exec``. In supervise mode this process is the child the
supervisor forked before planning (:func:`launcher.run.fork.fork_launch`), and it records the
exec for the supervisor first. Nothing here captures, pipes or re-encodes output:
file descriptors 0, 1 and 2 pass to the program untouched.
"""

from __future__ import annotations

import os
import sys

from launcher.errors import exec_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from typing import NoReturn, Optional

    from launcher.core.plan import LaunchPlan
else:
    # The C module under ``signal``, with the same functions: ``signal`` itself imports ``enum`` (several
    # milliseconds, more than the rest of a launch's own work), and ``_signal`` is loaded at start-up.
    import _signal


def prepare_process() -> None:
    """Undo what CPython did to this process that the program must not inherit.

    Side effects: flushes our stdout/stderr (or what we wrote is lost at exec), resets SIGPIPE and SIGXFSZ
    to their defaults (CPython ignores them, and exec keeps "ignored"), and clears the signal mask.
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
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def exec_plan(plan: LaunchPlan, record: Optional[int] = None) -> NoReturn:
    """Run the plan by replacing this process with the file the planner resolved (``plan.exec_path``;
    argv[0] as given, no PATH search of our own); raises LaunchError when that cannot happen. With a
    launch ``record`` (supervise mode), the exec is recorded for the supervisor first."""
    if plan.problems:
        raise plan.problems[0]
    os.chdir(plan.workdir)
    prepare_process()
    if record is not None:
        from launcher.run import handoff

        handoff.executing(record, plan.argv[0], plan.exec_path, plan.environ)
    try:
        os.execve(plan.exec_path, list(plan.argv), dict(plan.environ))
    except OSError as exc:
        if record is not None:
            from launcher.run import handoff

            handoff.failed(record)
        raise exec_error(plan.argv[0], exc.errno or 0, exc.strerror or "") from exc
