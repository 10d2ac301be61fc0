"""Running ma-launch as a real unprivileged user (``setpriv``), for tests of what a user who is not root
meets: unreadable inputs, directories they may not write, files they may not search.

The test process is root; the command runs as ``nobody`` (65534) with no supplementary groups, with an
interpreter that user can start and this checkout and its dependencies on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Optional

from launchkit import REPO
from needs import missing, need

NOBODY = 65534


def as_nobody(argv: Sequence[str]) -> list[str]:
    """``argv`` run as nobody:nogroup with no supplementary groups."""
    return [need("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *argv]


def _dependency_dirs() -> list[str]:
    """The directories that hold ma-launch's dependencies for this interpreter (typer, conda-pack)."""
    import conda_pack
    import typer

    return sorted({str(Path(m.__file__ or "").resolve().parent.parent) for m in (typer, conda_pack)})


def _starts_as_nobody(python: str, pythonpath: str) -> bool:
    probe = "import launcher.cli.app, conda_pack"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath}
    done = subprocess.run(
        as_nobody([python, "-c", probe]), env=env, capture_output=True, check=False, cwd="/"
    )
    return done.returncode == 0


@cache
def nobody_python() -> tuple[str, str]:
    """``(interpreter, PYTHONPATH)`` with which nobody can import ma-launch; :func:`missing` if none."""
    pythonpath = os.pathsep.join([str(REPO), *_dependency_dirs()])
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = (sys.executable, os.path.realpath(sys.executable), f"/usr/bin/{version}", "/usr/bin/python3")
    found = next((p for p in candidates if os.path.exists(p) and _starts_as_nobody(p, pythonpath)), None)
    if found is None:
        missing("no Python interpreter that the unprivileged user can start with ma-launch's dependencies")
    return found, pythonpath


def run_as_nobody(
    args: Sequence[str], extra_env: Optional[Mapping[str, str]] = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``ma-launch ARGS`` as nobody, from ``/``: the finished process with its text output."""
    python, pythonpath = nobody_python()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath, "LC_ALL": "C.UTF-8", **(extra_env or {})}
    return subprocess.run(
        as_nobody([python, "-m", "launcher", *args]),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
        timeout=timeout,
    )


@contextmanager
def public_tmp() -> Iterator[Path]:
    """A temporary directory every user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="ma-launch-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
