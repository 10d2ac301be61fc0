"""What ``ma-launch pack`` checks before conda-pack runs: the output can be written, and the env has none of
the things that make conda-pack fail with an obscure message (no ``conda-meta/history``, malformed
records, files that pip removed, editable installs). Each becomes an error naming the flag or the command
that gets past it. Only reads; regular files only (a FIFO in an env must not hang pack).
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import stat
from typing import Optional

from launcher.errors import AccessError, DataError, NotFoundError, UsageError
from launcher.image.reading import read_error, read_regular

_RUN_AS_OWNER = "run pack as the env's owner or as root"


def _list(directory: str) -> list[str]:
    """The sorted names in ``directory`` of the env; an error with its exit code when it cannot be read."""
    try:
        return sorted(os.listdir(directory))
    except OSError as exc:
        raise read_error(exc, f"the directory {directory}", _RUN_AS_OWNER) from None


def _json(path: str, limit: Optional[int] = None) -> object:
    """The JSON value in the file ``path``. Raises ``OSError`` and ``ValueError`` (also for nesting too
    deep to decode)."""
    data = read_regular(path, limit)
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _record(path: str) -> dict[str, object]:
    """One ``conda-meta/*.json`` package record, checked for the keys conda-pack reads."""
    try:
        data = _json(path)
    except OSError as exc:
        raise read_error(exc, f"the package record {path}", "reinstall that package with conda") from None
    except ValueError as exc:
        raise DataError(
            f"cannot read the package record {path}: {' '.join(str(exc).split())}",
            hint="reinstall that package with conda, or remove the broken record",
        ) from None
    if not isinstance(data, dict):
        raise DataError(f"package record {path} is not a JSON object", hint="reinstall that package")
    missing = [k for k in ("name", "version", "files", "link") if k not in data]
    if missing:
        raise DataError(
            f"package record {path} lacks {', '.join(missing)}, which conda-pack needs",
            hint="reinstall that package with conda",
        )
    return data


def records(prefix: str) -> list[dict[str, object]]:
    """The env's package records, in file-name order."""
    meta = os.path.join(prefix, "conda-meta")
    return [_record(os.path.join(meta, n)) for n in _list(meta) if n.endswith(".json")]


def _exists(path: str) -> bool:
    """Whether ``path`` exists (a dangling link counts); an :class:`AccessError` when a directory on the
    way may not be searched (then pack cannot tell, and conda-pack could not read it either)."""
    try:
        os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise AccessError(f"cannot check {path}: permission denied", hint=_RUN_AS_OWNER) from None
        return False
    return True


def missing_files(prefix: str) -> dict[str, list[str]]:
    """``package -> files`` that its conda record lists and that are gone (usually removed by pip)."""
    result: dict[str, list[str]] = {}
    for record in records(prefix):
        files = record.get("files")
        if not isinstance(files, list):
            continue
        gone = [
            f
            for f in files
            if isinstance(f, str) and f != ".nonadmin" and not _exists(os.path.join(prefix, f))
        ]
        if gone:
            result[f"{record.get('name')} {record.get('version')}"] = sorted(gone)
    return result


def _editable_dist_info(path: str) -> bool:
    try:
        info = _json(os.path.join(path, "direct_url.json"), limit=1 << 20)
    except (OSError, ValueError):
        return False
    dir_info = info.get("dir_info") if isinstance(info, dict) else None
    return isinstance(dir_info, dict) and bool(dir_info.get("editable"))


def _pth_outside(site: str, path: str, real_prefix: str) -> Optional[str]:
    """The first line of a ``.pth`` file that adds a directory outside the env, or ``None``."""
    try:
        text = read_regular(path, 1 << 20).decode("utf-8", "replace")
    except OSError:
        return None  # a .pth that is not a readable regular file adds nothing here
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or "\0" in line or line.startswith(("#", "import ", "import\t")):
            continue
        target = os.path.realpath(os.path.join(site, line))
        if os.path.isdir(target) and os.path.commonpath([target, real_prefix]) != real_prefix:
            return line
    return None


def editable_installs(prefix: str) -> list[str]:
    """Editable installs in the env's site-packages: ``*.egg-link``, ``__editable__*.pth``, dist-infos
    marked editable, and ``.pth`` lines that add a directory outside the env."""
    found: list[str] = []
    real_prefix = os.path.realpath(prefix)
    lib = os.path.join(prefix, "lib")
    names = _list(lib) if os.path.isdir(lib) else []
    sites = [os.path.join(lib, n, "site-packages") for n in names if n.startswith("python")]
    for site in (s for s in sites if os.path.isdir(s)):
        for name in _list(site):
            path = os.path.join(site, name)
            rel = os.path.relpath(path, prefix)
            marker = name.endswith(".egg-link") or (name.startswith("__editable__") and name.endswith(".pth"))
            if marker or (name.endswith(".dist-info") and _editable_dist_info(path)):
                found.append(rel)
            elif name.endswith(".pth"):
                line = _pth_outside(site, path, real_prefix)
                if line is not None:
                    found.append(f"{rel} -> {line}")
    return found


def special_files(prefix: str) -> list[str]:
    """FIFOs, sockets and device nodes in the env (paths relative to it): conda-pack reads every file it
    does not know, and would wait on a FIFO forever. Symlinks are not followed."""
    found: list[str] = []
    stack = [prefix]
    while stack:
        directory = stack.pop()
        for name in _list(directory):
            path = os.path.join(directory, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue  # gone meanwhile
            if stat.S_ISDIR(mode):
                stack.append(path)
            elif not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                found.append(os.path.relpath(path, prefix))
    return sorted(found)


def check_output(output: str, force: bool) -> None:
    """The archive can be written at ``output``: its directory exists and is writable, and ``output`` is
    not a directory, nor an existing file unless ``force``."""
    directory = os.path.dirname(output)
    if not os.path.isdir(directory):
        what = "does not exist" if not os.path.lexists(directory) else "is not a directory"
        raise NotFoundError(f"the output directory {directory} {what}", hint="create it, or give another -o")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise AccessError(
            f"cannot write into {directory}: permission denied", hint="give -o in a writable place"
        )
    if os.path.isdir(output):
        raise UsageError(f"{output} is a directory", hint="give -o the archive's file name")
    if os.path.lexists(output) and not force:
        raise UsageError(f"{output} already exists", hint="remove it or pass --force")


def _shown(gone: dict[str, list[str]]) -> str:
    return "; ".join(
        f"{pkg}: {', '.join(files[:3])}" + (" …" if len(files) > 3 else "")
        for pkg, files in sorted(gone.items())[:5]
    )


def precheck(
    prefix: str, fmt: str, *, ignore_missing_files: bool, ignore_editable_packages: bool
) -> list[str]:
    """Raise the error conda-pack would hit, explained; return notes for what the flags let through."""
    notes: list[str] = []
    history = os.path.join(prefix, "conda-meta", "history")
    if fmt != "zip" and not os.path.isfile(history):
        raise DataError(
            f"{prefix}/conda-meta/history is missing (conda-pack cannot write tar archives without it)",
            hint=f"create it: touch {shlex.quote(history)}",
        )
    special = special_files(prefix)
    if special:
        raise DataError(
            f"the env holds FIFOs, sockets or devices, which cannot be packed: {', '.join(special[:5])}",
            hint="remove them from the env",
        )
    gone = missing_files(prefix)
    if gone:
        if not ignore_missing_files:
            raise DataError(
                f"files of {len(gone)} conda package(s) were removed or replaced (usually by pip): "
                + _shown(gone),
                hint="reinstall them with conda, or pass --ignore-missing-files to pack without them",
            )
        notes.append(f"packing without files removed from {len(gone)} package(s): {_shown(gone)}")
    editable = editable_installs(prefix)
    if editable:
        if not ignore_editable_packages:
            raise DataError(
                f"editable installs found, whose code lives outside the env: {', '.join(editable[:5])}",
                hint="pip install them normally (not -e), or pass --ignore-editable-packages "
                "(their code is then missing in the image)",
            )
        notes.append(f"editable installs left as they are (their code is not packed): {', '.join(editable)}")
    return notes
