"""The launch record: what the planning child tells the supervisor about the program it is about to exec.

In supervise mode the launcher forks first (see :func:`launcher.run.fork.fork_launch`): the
parent supervises, the child plans and then execs the program. The supervisor needs to know, when the
child ends, whether the program ever started (else the planning failed or was stopped, and the child has
already said why) and, for the summary of a program that could not load its libraries, which file ran
with which environment. The child writes that into an anonymous file both share (``memfd_create``; an
unlinked temporary file where there is none), which no program inherits (close-on-exec): ``E`` and the
argv[0], the executed file and the ``NAME=VALUE`` entries, each ended by a NUL byte, just before the exec;
``F`` after an exec that failed. The supervisor reads it when the child has ended. The program's values
travel on no command line (``/proc/PID/cmdline`` is readable by every user).

Part of the supervisor: standard library only.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional

EXECUTING = b"E"
FAILED = b"F"


class Launched:
    """What the record says of a program that was exec'd: argv[0], the file, the environment."""

    __slots__ = ("environ", "path", "program")

    def __init__(self, program: str, path: str, environ: dict[str, str]) -> None:
        self.program = program
        self.path = path
        self.environ = environ


def new_record() -> Optional[int]:
    """A new, empty, close-on-exec anonymous file for the record; ``None`` when none can be made."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        try:
            return int(memfd_create("ma-launch-record", os.MFD_CLOEXEC))
        except OSError:
            pass
    try:
        import tempfile

        fd, path = tempfile.mkstemp(prefix=".ma-launch-record-")  # mode 600, close-on-exec
    except OSError:
        return None
    os.unlink(path)
    return fd


def executing(fd: int, program: str, path: str, environ: Mapping[str, str]) -> None:
    """Record, just before the exec, the program about to run (best effort: the exec matters more)."""
    words = [os.fsencode(program), os.fsencode(path)]
    words += [os.fsencode(name) + b"=" + os.fsencode(value) for name, value in environ.items()]
    _append(fd, EXECUTING + b"".join(word + b"\0" for word in words))


def failed(fd: int) -> None:
    """Record that the exec failed (the program never started)."""
    _append(fd, FAILED)


def _append(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        pass


def read_record(fd: int) -> Optional[Launched]:
    """The program the record says was exec'd, or ``None`` when it never started; ``fd`` is closed."""
    chunks = []
    try:
        offset = 0
        while True:
            chunk = os.pread(fd, 1 << 20, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if not data.startswith(EXECUTING) or data.endswith(FAILED):
        return None
    words = data[1:].split(b"\0")[:-1]
    if len(words) < 2:
        return None
    environ = {}
    for entry in words[2:]:
        name, _, value = entry.partition(b"=")
        environ[os.fsdecode(name)] = os.fsdecode(value)
    return Launched(os.fsdecode(words[0]), os.fsdecode(words[1]), environ)
