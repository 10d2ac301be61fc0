"""Running a short probe program and collecting its answer, optionally as another user (doctor's probes).

A probe gets no stdin, starts in ``/``, runs in its own session and has a deadline: when it runs out, or
when the probe has exited but something it started still holds its output open, the whole process group
is killed, so a probe can never hang the caller. Its output (stdout and stderr together) is returned, not
shown.

Running as another user goes through ``setpriv`` (util-linux) with no supplementary groups. It is never
used to become root: :func:`as_user` refuses UID 0, so an image's files run as root only if the caller
runs them directly, which doctor never does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from typing import NamedTuple, Optional

#: How long a probe may take (seconds); an interpreter's first start on a cold disk can be slow.
PROBE_TIMEOUT = 30.0
#: After a kill, how long to wait for the rest of the output.
_DRAIN_TIMEOUT = 2.0

#: The exit code reported for a probe that ran out of time (as ``timeout(1)`` does).
TIMED_OUT = 124
#: The exit code reported for a probe that could not be started (as the shell does).
NOT_STARTED = 127


class ProbeResult(NamedTuple):
    """A finished probe: its exit code (``TIMED_OUT``/``NOT_STARTED`` when it did not finish or start,
    ``128 + N`` when a signal ended it) and its combined output, stripped."""

    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def last_line(self) -> str:
        """The last line of output, else the exit code in words."""
        lines = self.output.splitlines()
        return lines[-1] if lines else f"exit {self.returncode}"


def setpriv_path() -> Optional[str]:
    """The ``setpriv`` program, or ``None`` when it is not installed."""
    return shutil.which("setpriv")


def can_switch_user() -> bool:
    """Whether this process can run a probe as another user: it is root and ``setpriv`` exists."""
    return os.geteuid() == 0 and setpriv_path() is not None


def as_user(uid: int, gid: int, argv: Sequence[str]) -> list[str]:
    """``argv`` prefixed so that it runs as ``uid:gid`` with no supplementary groups.

    setpriv still holds root's capabilities while it execs, so its own exec would find paths the user
    cannot; a shell started as the user does the final exec instead. Raises ``ValueError`` for UID 0 (a
    probe never becomes root) and when setpriv is missing (check :func:`can_switch_user` first)."""
    if uid <= 0 or gid < 0:
        raise ValueError(f"refusing to run a probe as {uid}:{gid}")
    setpriv = setpriv_path()
    if setpriv is None:
        raise ValueError("setpriv is not installed")
    return [
        setpriv,
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--",
        "/bin/sh",
        "-c",
        'exec "$@"',
        "sh",
        *argv,
    ]


def run_probe(argv: Sequence[str], timeout: float = PROBE_TIMEOUT) -> ProbeResult:
    """Run ``argv`` to completion within ``timeout`` seconds; never raises for the probe's own failures.

    Side effects: starts a process (in its own session) and kills its process group when it overruns."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd="/",
            start_new_session=True,
        )
    except OSError as exc:
        return ProbeResult(NOT_STARTED, exc.strerror or str(exc))
    try:
        out, _err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out = _kill_and_drain(proc)
        if proc.returncode is None or proc.returncode < 0:
            return ProbeResult(TIMED_OUT, f"no answer within {timeout:.0f} s")
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    return ProbeResult(code, out.decode("utf-8", "replace").strip())


def _kill_and_drain(proc: subprocess.Popen[bytes]) -> bytes:
    """Kill the probe's process group, reap the probe and return what output can still be read."""
    with contextlib.suppress(OSError):  # the group is gone already
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        out, _err = proc.communicate(timeout=_DRAIN_TIMEOUT)
    except subprocess.TimeoutExpired:
        # Something that left the group (a new session) still holds the pipe: stop reading.
        if proc.stdout is not None:
            proc.stdout.close()
        proc.wait()
        return b""
    return out or b""


def probe_writable(directory: str, uid: int, gid: int) -> ProbeResult:
    """Create and remove a file in ``directory`` as ``uid:gid`` for real (needs :func:`can_switch_user`).

    Side effects: creates and removes one empty file in ``directory``."""
    script = 'f=$(mktemp -p "$1" .ma-launch-doctor.XXXXXX) && rm -f "$f"'
    return run_probe(as_user(uid, gid, ["/bin/sh", "-c", script, "sh", directory]), timeout=20)
