"""Reading the files doctor and pack inspect: regular files only, and read failures as errors with exit codes.

An image or an env is untrusted input: a FIFO or a device where a text file belongs would hang a plain
``open().read()`` or never end, so only regular files are read (opened without blocking, checked with
``fstat``), and small text files are read up to a size limit.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Optional

from launcher.errors import AccessError, DataError, LaunchError, NotFoundError

#: Enough for any /etc/passwd, ld.so.conf or setuid list; a larger one is not what it claims to be.
TEXT_LIMIT = 16 * 1024 * 1024


class NotRegularFile(OSError):
    """The path names a FIFO, a device or a socket, which is never read."""


def read_regular(path: str, limit: Optional[int] = None) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed).

    Raises ``OSError``: ``IsADirectoryError`` for a directory, :class:`NotRegularFile` for anything else
    that is not a regular file, ``EFBIG`` when the file holds more than ``limit`` bytes."""
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", path)
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if limit is not None and size > limit:
                raise OSError(errno.EFBIG, f"larger than {limit} bytes", path)
            chunks.append(chunk)
    finally:
        os.close(fd)


def reason(exc: OSError) -> str:
    """Why a file operation failed, in lower case: ``permission denied``, ``not a regular file``…"""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def read_error(exc: OSError, what: str, hint: Optional[str] = None) -> LaunchError:
    """The error for a failed read of ``what`` (words naming the file, e.g. ``the baseline /x``).

    66 when it is missing or a directory, 77 when this user may not read it, 65 when it is a FIFO, a
    device or too large."""
    code = exc.errno
    if isinstance(exc, NotRegularFile):
        return DataError(f"{what} is not a regular file", hint)
    if code == errno.EFBIG:
        return DataError(f"{what} is {reason(exc)}", hint)
    if code in (errno.EACCES, errno.EPERM):
        return AccessError(f"cannot read {what}: permission denied", hint)
    if code == errno.ENOENT:
        return NotFoundError(f"{what} does not exist", hint)
    if code == errno.EISDIR:
        return NotFoundError(f"{what} is a directory, not a file", hint)
    return NotFoundError(f"cannot read {what}: {reason(exc)}", hint)


def decode_text(data: bytes, what: str, hint: Optional[str] = None) -> str:
    """``data`` as UTF-8 text; a :class:`DataError` when it is binary (NUL bytes, not UTF-8)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise DataError(f"{what} is not a text file (it is binary or not UTF-8)", hint)
    return text
