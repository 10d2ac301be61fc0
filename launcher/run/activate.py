"""Running the activation shell: one bash that sources the scripts and reports on a channel.

What bash runs and what its records mean live in :mod:`launcher.core.sourcing`; this module only starts
bash, reads the channel until the last record (or the deadline) and stops bash when the deadline passes.
"""

from __future__ import annotations

import os

from launcher.core import paths
from launcher.core.sourcing import CHANNEL_FD, END, ShellOutput
from launcher.errors import UnavailableError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from subprocess import Popen
    from typing import Optional

#: How often the reader looks whether bash is still there, when the channel is quiet (a background shell
#: a script started may hold the channel after bash itself is gone).
_CHECK_EVERY = 0.05


def run_bash_program(program: str, environ: Mapping[str, str], cwd: str, timeout: float) -> ShellOutput:
    """Run ``program`` in a new bash with the channel on fd 3 and return what it wrote there, stopping at
    the final record. With ``timeout`` > 0, bash and every process of its group are killed when the
    deadline passes (``timed_out`` is then set).

    Side effects: runs bash in its own session (so that its process group can be killed as a whole) with
    stdin /dev/null and stdout on our stderr (stdout belongs to the program); processes the scripts start
    in the background keep running after a normal end. ``--posix`` keeps bash from sourcing ``$BASH_ENV``
    before the program (the program leaves POSIX mode first).
    """
    import subprocess
    import time

    bash = _find_bash(environ)
    read_end, write_end = os.pipe()
    deadline = time.monotonic() + timeout if timeout > 0 else None
    try:
        move = f"exec {CHANNEL_FD}>&{write_end} {write_end}>&-\n" if write_end != CHANNEL_FD else ""
        proc = subprocess.Popen(
            [bash, "--posix", "--noprofile", "--norc", "-c", move + program, "ma-launch-activate"],
            env=dict(environ),
            cwd=cwd if os.path.isdir(cwd) else None,
            stdin=subprocess.DEVNULL,
            stdout=2,
            pass_fds=(write_end,),
            start_new_session=True,
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    finished = False
    try:
        data, timed_out, finished = _read_channel(read_end, proc, deadline)
    finally:
        os.close(read_end)
        if not finished and proc.poll() is None:  # the deadline, or we were interrupted
            _kill_group(proc)
        proc.wait()
    return ShellOutput(data, timed_out)


def _read_channel(fd: int, proc: Popen[bytes], deadline: Optional[float]) -> tuple[bytes, bool, bool]:
    """Read the channel until the final record (then ``finished``), its end, bash's exit, or the deadline
    (then ``timed_out``): ``(data, timed_out, finished)``."""
    import select
    import time

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks: list[bytes] = []
    tail = b""
    while True:
        wait = _CHECK_EVERY
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return b"".join(chunks), True, False
            wait = min(wait, left)
        if not poller.poll(wait * 1000):
            if proc.poll() is not None and not poller.poll(0):
                return b"".join(chunks), False, False  # bash is gone; a shell it left holds the channel
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks), False, False
        chunks.append(chunk)
        tail = (tail + chunk)[-(len(END) + 2) :]
        if tail == b"\0" + END + b"\0":
            return b"".join(chunks), False, True


def _kill_group(proc: Popen[bytes]) -> None:
    """SIGKILL to bash's process group: bash, the script it was sourcing and what that started."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()


def _find_bash(environ: Mapping[str, str]) -> str:
    bash = paths.find_bash(environ.get("PATH"))
    if bash is None:
        raise UnavailableError("activation scripts need bash, and there is no bash", hint="install bash")
    return bash
