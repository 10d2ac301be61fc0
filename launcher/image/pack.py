"""``ma-launch pack``: pack a conda env with conda-pack for a custom image.

The archive is made for its final place in the image (``--dest-prefix``, by default
``/home/ma-user/anaconda3/envs/<name>``), so it needs no ``conda-unpack`` step. Before conda-pack
runs, the env is checked for what makes conda-pack fail with an obscure message (no ``conda-meta``, a
missing ``conda-meta/history``, files that pip removed, editable installs); each becomes an error that
names the flag or command that gets past it (:mod:`launcher.image.pack_checks`). Afterwards
:func:`launcher.image.dockerfile.dockerfile_lines` gives the Dockerfile lines that install the archive.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Optional

from launcher.errors import AccessError, DataError, LaunchError, NotFoundError, UnavailableError, UsageError
from launcher.image.pack_checks import check_output, precheck
from launcher.modelarts import facts

#: format -> (file suffix, tar flags or None for zip)
FORMATS: dict[str, tuple[str, Optional[str]]] = {
    "tar.gz": (".tar.gz", "-xzf"),
    "tgz": (".tgz", "-xzf"),
    "tar.bz2": (".tar.bz2", "-xjf"),
    "tbz2": (".tbz2", "-xjf"),
    "tar.xz": (".tar.xz", "-xJf"),
    "txz": (".txz", "-xJf"),
    "tar": (".tar", "-xf"),
    "tar.zst": (".tar.zst", "--zstd -xf"),
    "tzst": (".tzst", "--zstd -xf"),
    "zip": (".zip", None),
}


@dataclass(frozen=True)
class PackRequest:
    name: Optional[str] = None
    prefix: Optional[str] = None
    output: Optional[str] = None
    dest_prefix: Optional[str] = None
    format: str = "auto"
    excludes: tuple[str, ...] = ()
    threads: int = 1
    ignore_missing_files: bool = False
    ignore_editable_packages: bool = False
    force: bool = False


@dataclass(frozen=True)
class PackResult:
    prefix: str  # the env that was packed
    name: str  # its name in the image (the last part of dest_prefix)
    output: str  # absolute path of the archive
    format: str
    dest_prefix: str
    anaconda_dir: Optional[str]  # parent of envs/ when dest_prefix is <root>/envs/<name>


def _check_prefix(prefix: str) -> None:
    """``-p PREFIX`` names a directory pack may read."""
    if not os.path.isdir(prefix):
        what = "is not a directory" if os.path.lexists(prefix) else "does not exist"
        raise NotFoundError(f"env prefix {prefix} {what}", hint="check -p/--prefix")
    if not os.access(prefix, os.R_OK | os.X_OK):
        raise AccessError(
            f"cannot read the env {prefix}: permission denied", hint="run pack as its owner or root"
        )


def _one_line(value: str, what: str) -> None:
    """Names that go into the printed Dockerfile lines may not hold a newline or another control character
    (it would end a line and start an instruction of its own)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise UsageError(f"{what} {value!r} contains a control character", hint="rename it")


def resolve_env(request: PackRequest) -> tuple[str, str]:
    """``(prefix, name)`` of the env to pack."""
    if (request.name is None) == (request.prefix is None):
        raise UsageError("give exactly one of -n NAME and -p PREFIX", hint="e.g. ma-launch pack -n py39")
    if request.prefix is not None:
        prefix = os.path.abspath(request.prefix)
        _check_prefix(prefix)
        name = os.path.basename(prefix.rstrip("/"))
    else:
        from launcher.core.conda import find_by_name

        env = find_by_name(request.name or "", os.environ)
        prefix, name = env.prefix, env.name
    if not os.path.isdir(os.path.join(prefix, "conda-meta")):
        raise NotFoundError(
            f"{prefix} is not a conda env (it has no conda-meta/)",
            hint="give the env's prefix, the directory that holds bin/ and conda-meta/",
        )
    return prefix, name


def choose_format(output: Optional[str], fmt: str, name: str) -> tuple[str, str]:
    """``(output path, format)`` from -o and --format (auto = from the file name)."""
    if fmt == "auto":
        if output is None:
            fmt = "tar.gz"
        else:
            fmt = next(
                (
                    f
                    for f, (suffix, _t) in sorted(FORMATS.items(), key=lambda i: -len(i[1][0]))
                    if output.endswith(suffix)
                ),
                "",
            )
            if not fmt:
                raise UsageError(
                    f"cannot tell the archive format from {output!r}",
                    hint="end the name in "
                    + ", ".join(s for s, _t in FORMATS.values())
                    + " or give --format",
                )
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", hint="choose one of auto, " + ", ".join(FORMATS))
    if output is None:
        output = name + FORMATS[fmt][0]
    _one_line(os.path.basename(output), "the archive name")
    if fmt in ("tar.zst", "tzst"):
        try:
            import zstandard  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
        except ImportError:
            raise UnavailableError(
                "the tar.zst format needs the zstandard module", hint="pip install zstandard, or use tar.gz"
            ) from None
    return os.path.abspath(output), fmt


def choose_dest(dest_prefix: Optional[str], name: str) -> tuple[str, Optional[str]]:
    """``(dest prefix, ANACONDA_DIR or None)``."""
    if dest_prefix is None:
        if name == "base":
            raise UsageError(
                "packing a conda root (base) needs --dest-prefix",
                hint=f"e.g. --dest-prefix {facts.DEFAULT_CONDA_ROOT}/envs/myenv",
            )
        dest_prefix = os.path.join(facts.DEFAULT_CONDA_ROOT, "envs", name)
    _one_line(dest_prefix, "--dest-prefix")
    if not dest_prefix.startswith("/"):
        raise UsageError(
            f"--dest-prefix {dest_prefix!r} is not absolute", hint="give the env's path in the image"
        )
    dest_prefix = os.path.normpath(dest_prefix)
    parent = os.path.dirname(dest_prefix)
    anaconda = os.path.dirname(parent) if os.path.basename(parent) == "envs" else None
    return dest_prefix, anaconda


# ---------------------------------------------------------------- packing


def _pack_failed(prefix: str, exc: OSError) -> LaunchError:
    """The error for a file-system failure while packing: 77 when permission was denied."""
    where = f" ({exc.filename})" if exc.filename else ""
    message = f"packing {prefix} failed: {exc.strerror or exc}{where}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return AccessError(message, hint="run pack as a user who can read the env and write the archive")
    return LaunchError(message, hint="check free space and permissions")


def _conda_pack(
    request: PackRequest, prefix: str, output: str, fmt: str, dest_prefix: str, progress: bool
) -> None:
    """Run conda-pack; its output goes to stderr, its warnings become notes there, its failures errors."""
    try:
        import conda_pack
    except ImportError:
        raise UnavailableError("conda-pack is not installed", hint="pip install conda-pack") from None
    filters = [("exclude", pattern) for pattern in request.excludes]
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("always")
        try:
            conda_pack.pack(
                prefix=prefix,
                output=output,
                format=fmt,
                dest_prefix=dest_prefix,
                filters=filters or None,
                n_threads=request.threads,
                ignore_missing_files=request.ignore_missing_files,
                ignore_editable_packages=request.ignore_editable_packages,
                force=request.force,
                verbose=progress,
            )
        except conda_pack.CondaPackException as exc:
            raise DataError(
                f"conda-pack failed: {' '.join(str(exc).split())}",
                hint="fix the env (conda list shows conflicts) or see the flags in ma-launch pack --help",
            ) from None
        except OSError as exc:
            raise _pack_failed(prefix, exc) from None
    for warning in caught:
        text = str(warning.message)
        if "package cache" in text.lower() or "Uncached" in text:
            text = (
                "some packages have no package-cache entry; their files are packed as they are, with the "
                "prefix rewritten"
            )
        sys.stderr.write(f"ma-launch: note: {' '.join(text.split())}\n")


def pack_env(request: PackRequest, progress: bool = False) -> PackResult:
    """Pack the env after the pre-checks; progress and notes go to stderr. Returns where the archive is
    and where it goes. Side effect: writes the archive (conda-pack does)."""
    prefix, env_name = resolve_env(request)
    dest_prefix, anaconda = choose_dest(request.dest_prefix, env_name)
    name = os.path.basename(dest_prefix)
    output, fmt = choose_format(request.output, request.format, name)
    check_output(output, request.force)
    notes = precheck(
        prefix,
        fmt,
        ignore_missing_files=request.ignore_missing_files,
        ignore_editable_packages=request.ignore_editable_packages,
    )
    for note in notes:
        sys.stderr.write(f"ma-launch: note: {note}\n")
    _conda_pack(request, prefix, output, fmt, dest_prefix, progress)
    return PackResult(prefix, name, output, fmt, dest_prefix, anaconda)
