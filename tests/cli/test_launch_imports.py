"""The launch path imports only what it must: a launch is measured against a bare interpreter start, and
every module costs (``dataclasses``, ``typing``, ``re``, ``enum``, ``signal``, ``inspect`` cost more than
the rest of the launch). A fresh interpreter runs ma-launch with exec stubbed out and reports the modules
the launch added; anything outside the allow-list fails the test, so the budget cannot erode silently."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from condakit import REAL_PYTHON, make_env
from launchkit import clean_env

#: Runs ma-launch in this interpreter with exec replaced by a report of the modules imported since start.
HARNESS = r"""
import os, sys
before = set(sys.modules)
def report(*_args):
    sys.stderr.write("\nMODULES " + " ".join(sorted(set(sys.modules) - before)) + "\n")
    sys.stderr.flush()
    os._exit(0)
os.execve = os.execv = os.execvpe = report
from launcher.cli.main import run
code = run(sys.argv[1:])
report()
"""

#: Standard-library modules a plain launch may import (C modules and tiny ones: no enum, re, typing...).
EXEC_STDLIB = frozenset({"__future__", "errno", "zlib", "_struct", "struct"})
#: What ``--dry-run --json`` adds: the json package (whose decoder imports re) and what it needs.
JSON_STDLIB = frozenset(
    {
        "json", "json.decoder", "json.encoder", "json.scanner", "_json", "re", "re._casefix", "re._compiler",
        "re._constants", "re._parser", "_sre", "enum", "functools", "_functools", "collections",
        "_collections", "collections.abc", "operator", "_operator", "keyword", "reprlib", "itertools",
        "types", "copyreg", "warnings",
    }
)  # fmt: skip
#: Parts of ma-launch a plain launch never needs (subcommands, the dry-run line, the JSON plan, the
#: supervisor, the fresh LD analysis of a changed env).
NEVER_ON_EXEC = ("launcher.image", "launcher.cli.app", "launcher.run.supervise", "launcher.render.planjson")


def imported(tmp_path: Path, *args: str) -> set[str]:
    env_dir = make_env(tmp_path / "env")
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    command = [REAL_PYTHON, "-c", HARNESS, "-p", str(env_dir), "--workdir", str(work), *args]
    command += ["--", str(env_dir / "bin" / "python"), "-c", "pass"]
    environ = clean_env(tmp_path)
    for _ in range(2):  # the second launch finds the LD analysis in the cache, as a repeated boot does
        result = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=60, check=False)
    assert "MODULES " in result.stderr, result.stderr
    return set(result.stderr.rsplit("MODULES ", 1)[1].split())


def outside(modules: set[str], allowed: frozenset[str]) -> list[str]:
    return sorted(m for m in modules if not m.startswith("launcher") and m not in allowed)


@pytest.mark.parametrize("options", [(), ("-q",)])
def test_a_plain_launch_imports_nothing_heavy(tmp_path: Path, options: tuple[str, ...]) -> None:
    modules = imported(tmp_path, *options)
    assert "launcher.core.build" in modules  # the harness saw a real launch
    assert outside(modules, EXEC_STDLIB) == []
    assert sorted(m for m in modules if m.startswith(NEVER_ON_EXEC)) == []


def test_dry_run_json_imports_only_json_besides(tmp_path: Path) -> None:
    modules = imported(tmp_path, "--dry-run", "--json", "--shell", "sh")
    assert "launcher.render.planjson" in modules
    assert outside(modules, EXEC_STDLIB | JSON_STDLIB) == []
    assert not any(
        m.startswith(("launcher.image", "launcher.cli.app", "launcher.run.supervise")) for m in modules
    )


def test_the_harness_would_see_a_heavy_import(tmp_path: Path) -> None:
    """The check can fail: a module imported during the launch is reported."""
    heavy = HARNESS.replace(
        "from launcher.cli.main import run", "import dataclasses\nfrom launcher.cli.main import run"
    )
    probe = subprocess.run(
        [REAL_PYTHON, "-c", heavy, "--version"],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "dataclasses" in probe.stderr.rsplit("MODULES ", 1)[1].split()


#: The supervisor stays resident for the whole job and starts while the program is being planned: what it
#: imports costs memory for hours and delays the start (``signal`` alone pulls in ``enum``).
SUPERVISOR_MODULES = (
    "launcher.run.supervise",
    "launcher.run.watch",
    "launcher.run.verdict",
    "launcher.run.report",
    "launcher.run.devholders",
    "launcher.run.loaderfix",
)
SUPERVISOR_STDLIB = frozenset({"__future__", "errno", "resource"})


def test_the_supervisor_imports_nothing_heavy(tmp_path: Path) -> None:
    code = (
        "import sys\nbefore = set(sys.modules)\n"
        + "".join(f"import {module}\n" for module in SUPERVISOR_MODULES)
        + "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    probe = subprocess.run(
        [REAL_PYTHON, "-c", code],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules = set(probe.stdout.split())
    assert "launcher.run.supervise" in modules
    assert outside(modules, SUPERVISOR_STDLIB) == []
