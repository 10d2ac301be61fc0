"""The program's environment, handed from the launcher to the supervisor across the exec.

The supervisor runs with the launcher's own environment: given the program's (the env's
``LD_LIBRARY_PATH`` with its ``libz``, ``libexpat``, ``libffi``, ``libpython``…) the supervisor's
interpreter could fail to start, and kill the job as PID 1. The program's environment therefore travels
neither in the supervisor's environment nor on its command line (``/proc/PID/cmdline`` is readable by every
user, and the values hold secrets), but in an anonymous file (``memfd_create``; an unlinked temporary file
where there is none) that the supervisor reads and closes before it starts anything, so the program never
inherits it. Its content: ``NAME=VALUE`` entries, each ended by a NUL byte, as the bytes the kernel will
get (non-UTF-8 bytes travel as they are).

Part of the supervisor: standard library only.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional


def environment_fd(environ: Mapping[str, str]) -> Optional[int]:
    """A new file descriptor, inheritable across exec and positioned at the start, that holds ``environ``;
    ``None`` when no anonymous file can be made (then the caller supervises in-process)."""
    data = b"".join(os.fsencode(name) + b"=" + os.fsencode(value) + b"\0" for name, value in environ.items())
    fd = _anonymous_file()
    if fd is None:
        return None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
        os.set_inheritable(fd, True)
    except OSError:
        os.close(fd)
        return None
    return fd


def _anonymous_file() -> Optional[int]:
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        try:
            return int(memfd_create("ma-launch-environment", os.MFD_CLOEXEC))
        except OSError:
            pass
    try:
        import tempfile

        fd, path = tempfile.mkstemp(prefix=".ma-launch-environment-")  # mode 600, close-on-exec
    except OSError:
        return None
    os.unlink(path)
    return fd


def read_environment(fd: int) -> dict[str, str]:
    """The environment held by ``fd`` (from :func:`environment_fd`); ``fd`` is closed. Raises ``OSError``
    when it cannot be read."""
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    environ = {}
    for entry in b"".join(chunks).split(b"\0")[:-1]:
        name, _, value = entry.partition(b"=")
        environ[os.fsdecode(name)] = os.fsdecode(value)
    return environ
