"""``ma-launch pack``: pack a conda env with conda-pack for a custom image.

The archive is made for its final place in the image (``--dest-prefix``, by default
``/home/ma-user/anaconda3/envs/<name>``), so it needs no ``conda-unpack`` step. Before conda-pack
runs, the env is checked for what makes conda-pack fail with an obscure message (no ``conda-meta``, a
missing ``conda-meta/history``, files that pip removed, editable installs); each becomes an error that
names the flag or command that gets past it. Afterwards :func:`dockerfile_lines` gives the Dockerfile
lines that install the archive.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shlex
import sys
import warnings
from dataclasses import dataclass
from typing import Optional

from launcher.errors import DataError, LaunchError, NotFoundError, UnavailableError, UsageError

DEFAULT_ANACONDA_DIR = "/home/ma-user/anaconda3"
IMAGE_UID, IMAGE_GID = 1000, 100

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


def resolve_env(request: PackRequest) -> tuple[str, str]:
    """``(prefix, name)`` of the env to pack."""
    if (request.name is None) == (request.prefix is None):
        raise UsageError("give exactly one of -n NAME and -p PREFIX", hint="e.g. ma-launch pack -n py39")
    if request.prefix is not None:
        prefix = os.path.abspath(request.prefix)
        if not os.path.isdir(prefix):
            raise NotFoundError(f"env prefix {prefix} does not exist", hint="check -p/--prefix")
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
                hint="e.g. --dest-prefix /home/ma-user/anaconda3/envs/myenv",
            )
        dest_prefix = os.path.join(DEFAULT_ANACONDA_DIR, "envs", name)
    if not dest_prefix.startswith("/"):
        raise UsageError(
            f"--dest-prefix {dest_prefix!r} is not absolute", hint="give the env's path in the image"
        )
    dest_prefix = os.path.normpath(dest_prefix)
    parent = os.path.dirname(dest_prefix)
    anaconda = os.path.dirname(parent) if os.path.basename(parent) == "envs" else None
    return dest_prefix, anaconda


# ---------------------------------------------------------------- pre-checks


def _records(prefix: str) -> list[tuple[str, dict[str, object]]]:
    records = []
    for path in sorted(glob.glob(os.path.join(prefix, "conda-meta", "*.json"))):
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise DataError(
                f"cannot read the package record {path}: {exc}",
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
        records.append((path, data))
    return records


def missing_files(prefix: str) -> dict[str, list[str]]:
    """``package -> files`` that its conda record lists and that are gone (usually removed by pip)."""
    result: dict[str, list[str]] = {}
    for _path, record in _records(prefix):
        files = record.get("files")
        if not isinstance(files, list):
            continue
        gone = [
            f
            for f in files
            if isinstance(f, str) and f != ".nonadmin" and not os.path.lexists(os.path.join(prefix, f))
        ]
        if gone:
            result[f"{record.get('name')} {record.get('version')}"] = sorted(gone)
    return result


def editable_installs(prefix: str) -> list[str]:
    """Editable installs in the env's site-packages: ``*.egg-link``, ``__editable__*.pth``, dist-infos
    marked editable, and ``.pth`` lines that add a directory outside the env."""
    found: list[str] = []
    real_prefix = os.path.realpath(prefix)
    for site in sorted(glob.glob(os.path.join(prefix, "lib", "python*", "site-packages"))):
        for name in sorted(os.listdir(site)):
            path = os.path.join(site, name)
            rel = os.path.relpath(path, prefix)
            if name.endswith(".egg-link") or (name.startswith("__editable__") and name.endswith(".pth")):
                found.append(rel)
            elif name.endswith(".dist-info"):
                try:
                    with open(os.path.join(path, "direct_url.json"), encoding="utf-8") as fh:
                        info = json.load(fh)
                except (OSError, ValueError):
                    continue
                if (
                    isinstance(info, dict)
                    and isinstance(info.get("dir_info"), dict)
                    and info["dir_info"].get("editable")
                ):
                    found.append(rel)
            elif name.endswith(".pth"):
                try:
                    with open(path, encoding="utf-8", errors="replace") as fh:
                        lines = [line.strip() for line in fh]
                except OSError:
                    continue
                for line in lines:
                    if not line or line.startswith(("#", "import ", "import\t")):
                        continue
                    target = os.path.realpath(os.path.join(site, line))
                    if os.path.isdir(target) and os.path.commonpath([target, real_prefix]) != real_prefix:
                        found.append(f"{rel} -> {line}")
                        break
    return found


def precheck(prefix: str, request: PackRequest, fmt: str, output: str) -> list[str]:
    """Raise the error conda-pack would hit, explained; return notes for what the flags let through."""
    notes: list[str] = []
    if os.path.lexists(output) and not request.force:
        raise UsageError(f"{output} already exists", hint="remove it or pass --force")
    if fmt != "zip" and not os.path.isfile(os.path.join(prefix, "conda-meta", "history")):
        raise DataError(
            f"{prefix}/conda-meta/history is missing (conda-pack cannot write tar archives without it)",
            hint=f"create it: touch {shlex.quote(os.path.join(prefix, 'conda-meta', 'history'))}",
        )
    gone = missing_files(prefix)
    if gone:
        shown = "; ".join(
            f"{pkg}: {', '.join(files[:3])}" + (" …" if len(files) > 3 else "")
            for pkg, files in sorted(gone.items())[:5]
        )
        if not request.ignore_missing_files:
            raise DataError(
                f"files of {len(gone)} conda package(s) were removed or replaced (usually by pip): {shown}",
                hint="reinstall them with conda, or pass --ignore-missing-files to pack without them",
            )
        notes.append(f"packing without files removed from {len(gone)} package(s): {shown}")
    editable = editable_installs(prefix)
    if editable:
        if not request.ignore_editable_packages:
            raise DataError(
                f"editable installs found, whose code lives outside the env: {', '.join(editable[:5])}",
                hint="pip install them normally (not -e), or pass --ignore-editable-packages "
                "(their code is then missing in the image)",
            )
        notes.append(f"editable installs left as they are (their code is not packed): {', '.join(editable)}")
    return notes


# ---------------------------------------------------------------- packing


def pack_env(request: PackRequest, progress: bool = False) -> PackResult:
    """Pack the env; progress and notes go to stderr. Returns where the archive is and where it goes."""
    prefix, env_name = resolve_env(request)
    dest_prefix, anaconda = choose_dest(request.dest_prefix, env_name)
    name = os.path.basename(dest_prefix)
    output, fmt = choose_format(request.output, request.format, name)
    for note in precheck(prefix, request, fmt, output):
        sys.stderr.write(f"ma-launch: note: {note}\n")
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
            raise LaunchError(
                f"packing {prefix} failed: {exc}", hint="check free space and permissions"
            ) from None
    for warning in caught:
        text = str(warning.message)
        if "package cache" in text.lower() or "Uncached" in text:
            sys.stderr.write(
                "ma-launch: note: some packages have no package-cache entry; their files are packed as they "
                "are, with the prefix rewritten\n"
            )
        else:
            sys.stderr.write(f"ma-launch: note: {' '.join(text.split())}\n")
    return PackResult(prefix, name, output, fmt, dest_prefix, anaconda)


def staging_path(result: PackResult) -> str:
    """Where the Dockerfile lines put the archive before extracting it."""
    return "/tmp/" + os.path.basename(result.output)  # noqa: S108 (a path inside the image being built)


def extract_command(result: PackResult) -> str:
    """The shell command (run as root in the image) that installs the archive at its prefix, owned by
    the default user 1000:100."""
    q = shlex.quote
    archive, dest = q(staging_path(result)), q(result.dest_prefix)
    flags = FORMATS[result.format][1]
    unpack = (
        f"unzip -q {archive} -d {dest}"
        if flags is None
        else f"tar {flags} {archive} -C {dest} --no-same-owner"
    )
    return (
        f"mkdir -p {dest} \\\n"
        f" && {unpack} \\\n"
        f" && chown -R {IMAGE_UID}:{IMAGE_GID} {dest} \\\n"
        f" && rm -f {archive}"
    )


def dockerfile_lines(result: PackResult) -> str:
    """Dockerfile lines that install the packed env (printed after packing)."""
    q = shlex.quote
    lines = [
        f"# conda env {result.name}: {os.path.basename(result.output)} (ma-launch pack), built for "
        f"{result.dest_prefix}",
        "# (docker build from the directory that holds the archive)",
        "USER root",
        f"COPY {os.path.basename(result.output)} {staging_path(result)}",
    ]
    if result.format in ("tar.zst", "tzst"):
        lines.append("# the image needs zstd for this archive")
    if result.format == "zip":
        lines.append("# the image needs unzip for this archive")
    lines.append("RUN " + extract_command(result))
    lines.append("USER ma-user")
    if result.anaconda_dir is not None:
        lines.append(f"ENV ANACONDA_DIR={q(result.anaconda_dir)} DEFAULT_CONDA_ENV_NAME={q(result.name)}")
    else:
        lines.append(
            f"# not under <conda root>/envs: boot with 'exec ma-launch -p {result.dest_prefix} -- …'"
        )
    return "\n".join(lines) + "\n"
