"""The Dockerfile lines that install an env packed by ``ma-launch pack`` (printed after packing).

The archive is copied into the image, extracted at its prefix as root, given to the default user
(1000:100), and ANACONDA_DIR/DEFAULT_CONDA_ENV_NAME name it, so that ``ma-launch`` (and ``doctor``) find it.
Names reach these lines only without control characters (``pack`` refuses them), shell words are quoted,
and a COPY source that is not a plain word uses the JSON form.
"""

from __future__ import annotations

import json
import os
import shlex

from launcher.image.pack import FORMATS, PackResult
from launcher.modelarts import facts


def staging_path(result: PackResult) -> str:
    """Where the Dockerfile lines put the archive before extracting it."""
    return "/tmp/" + os.path.basename(result.output)  # noqa: S108 (a path inside the image being built)


def copy_line(source: str, target: str) -> str:
    """A COPY instruction; the JSON form when a path is not a plain word (spaces, quotes…)."""
    if shlex.quote(source) == source and shlex.quote(target) == target:
        return f"COPY {source} {target}"
    return f"COPY {json.dumps([source, target])}"


def extract_command(result: PackResult) -> str:
    """The shell command (run as root in the image) that installs the archive at its prefix, owned by
    the default user."""
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
        f" && chown -R {facts.UID}:{facts.GID} {dest} \\\n"
        f" && rm -f {archive}"
    )


def dockerfile_lines(result: PackResult) -> str:
    """Dockerfile lines that install the packed env."""
    q = shlex.quote
    archive = os.path.basename(result.output)
    lines = [
        f"# conda env {result.name}: {archive} (ma-launch pack), built for {result.dest_prefix}",
        "# (docker build from the directory that holds the archive)",
        "USER root",
        copy_line(archive, staging_path(result)),
    ]
    if result.format in ("tar.zst", "tzst"):
        lines.append("# the image needs zstd for this archive")
    if result.format == "zip":
        lines.append("# the image needs unzip for this archive")
    lines.append("RUN " + extract_command(result))
    lines.append(f"USER {facts.USER}")
    if result.anaconda_dir is not None:
        lines.append(f"ENV ANACONDA_DIR={q(result.anaconda_dir)} DEFAULT_CONDA_ENV_NAME={q(result.name)}")
    else:
        lines.append(
            f"# not under <conda root>/envs: boot with 'exec ma-launch -p {q(result.dest_prefix)} -- …'"
        )
    return "\n".join(lines) + "\n"
