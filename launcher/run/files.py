"""Writing files: the one atomic write of ma-launch (boot scripts, the converted rank table, the LD cache).

A file is written to a temporary file created exclusively (``O_EXCL``, a random name) in the target's own
directory, flushed and fsync'd, given its mode, then renamed over the target: a reader sees the old file
or the whole new one, never half of it, and a symlink planted in the directory is never written through.
On any failure the temporary file is removed and the error is raised.
"""

from __future__ import annotations

import os

from launcher.errors import AccessError, UsageError


def write_atomic(
    path: str, data: bytes, *, mode: int = 0o644, replace: bool = True, durable: bool = True
) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode``.

    With ``replace=False`` an existing ``path`` (a file, a directory, a dangling symlink) is left alone and
    ``FileExistsError`` is raised. ``durable=False`` skips the fsyncs (a cache, rebuilt if a crash loses
    it: an fsync costs milliseconds on the launch path). Raises ``OSError`` when the directory cannot be
    written. Side effects: creates and renames a file in ``path``'s directory; fsyncs the file and the
    directory.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = _create_temporary(directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if replace:
            os.replace(tmp, path)
        else:
            _place_new(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    if durable:
        _sync_directory(directory)


def _remove(path: str) -> None:
    """Remove ``path`` if possible (cleaning up after a failed write; the failure is what matters)."""
    try:  # noqa: SIM105 - contextlib costs milliseconds to import on the launch path
        os.unlink(path)
    except OSError:
        pass


def _create_temporary(directory: str) -> tuple[int, str]:
    """Create a new file with a random name in ``directory`` (as ``tempfile.mkstemp`` does, without its
    import cost on the launch path): exclusive, not through a symlink, mode 0600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = os.path.join(directory, f".ma-launch-{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")


def _place_new(tmp: str, path: str) -> None:
    """Give ``tmp`` the name ``path`` only if that name is free (even a dangling symlink takes it)."""
    import errno

    try:
        # link() fails when the name exists: no race with another writer.
        os.link(tmp, path)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
            raise
        if os.path.lexists(path):  # a file system without hard links
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _sync_directory(directory: str) -> None:
    """fsync the directory so the rename survives a crash; best effort (some file systems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_script(path: str, text: str, *, force: bool) -> None:
    """Write an executable script (mode 755) atomically at ``path``; an existing file is replaced only with
    ``force``. Bad targets are usage errors (2); a directory this user may not write is 77."""
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory", hint="give a file name with -o")
    if os.path.lexists(path) and not force:
        raise UsageError(f"{path} already exists", hint="add --force to replace it")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"the directory {folder} does not exist", hint="create it first")
    try:
        write_atomic(path, os.fsencode(text), mode=0o755, replace=force)
    except FileExistsError:
        raise UsageError(f"{path} already exists", hint="add --force to replace it") from None
    except PermissionError as exc:
        raise AccessError(
            f"cannot write {path}: {exc.strerror}", hint="choose a directory you may write with -o"
        ) from None
    except OSError as exc:
        raise AccessError(f"cannot write {path}: {exc.strerror}", hint="check the file system") from None
