"""Builders of conda-shaped directory trees for tests (no conda needed)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from needs import need

__all__ = ["REAL_PYTHON", "make_env", "make_root", "need", "write_exe"]

#: The real interpreter (not a version manager's shim script): a symlink to it acts as an env's python.
REAL_PYTHON = os.path.realpath(sys.executable)


def make_env(
    prefix: Path,
    *,
    python: bool = True,
    state: Optional[Mapping[str, str]] = None,
    scripts: Optional[Mapping[str, str]] = None,
    env_vars_d: Optional[Mapping[str, Mapping[str, str]]] = None,
) -> Path:
    """A conda env at ``prefix``: conda-meta/history, bin/python → the real interpreter, and optionally
    conda-meta/state env_vars, activate.d scripts and env_vars.d files."""
    (prefix / "conda-meta").mkdir(parents=True, exist_ok=True)
    (prefix / "conda-meta" / "history").touch()
    (prefix / "bin").mkdir(exist_ok=True)
    (prefix / "lib").mkdir(exist_ok=True)
    if python and not (prefix / "bin" / "python").exists():
        (prefix / "bin" / "python").symlink_to(REAL_PYTHON)
    if state is not None:
        (prefix / "conda-meta" / "state").write_text(json.dumps({"env_vars": dict(state)}))
    if scripts:
        folder = prefix / "etc" / "conda" / "activate.d"
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in scripts.items():
            (folder / name).write_text(text)
    if env_vars_d:
        folder = prefix / "etc" / "conda" / "env_vars.d"
        folder.mkdir(parents=True, exist_ok=True)
        for name, mapping in env_vars_d.items():
            (folder / name).write_text(json.dumps(dict(mapping)))
    return prefix


def make_root(root: Path, envs: tuple[str, ...] = (), *, conda: bool = False) -> Path:
    """A conda root (base) with the named envs under envs/; ``conda`` adds a bin/conda script that
    records its arguments and runs the command after ``run --no-capture-output -n NAME``."""
    make_env(root)
    (root / "envs").mkdir(exist_ok=True)
    for name in envs:
        make_env(root / "envs" / name)
    if conda:
        script = root / "bin" / "conda"
        script.write_text(
            "#!/bin/sh\n"
            'echo "conda-argv: $*" >&2\n'
            '[ "$1" = run ] || exit 2\n'
            "shift; shift; shift; shift\n"
            'exec "$@"\n'
        )
        script.chmod(0o755)
    return root


def write_exe(path: Path, text: str) -> Path:
    """An executable file with ``text``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path
