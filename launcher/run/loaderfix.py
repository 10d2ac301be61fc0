"""Exit code 127 from a program that did start: ask the LD analysis which shared library the loader could
not find, and the fix.

The dynamic loader ends a program whose libraries it cannot load with "error while loading shared
libraries" and exit code 127 (a shell uses 127 for "command not found" too). The supervisor stays lean, so
the analysis runs in a fresh interpreter (:mod:`launcher.run.loadercheck`, isolated mode, without
site-packages, with the supervisor's own environment); the program's name and environment go to it on its
standard input, and its answer comes back as JSON on its standard output, within a deadline.

Part of the supervisor: standard library only (``json`` and ``subprocess`` are imported only when a
program ended with 127).
"""

from __future__ import annotations

import os
import sys

from launcher.run.verdict import Loader

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

#: Seconds the analysis may take (a cold analysis of a large env takes a few).
DEADLINE = 30.0

_BOOT = "import sys; sys.path.insert(0, sys.argv.pop(1)); from launcher.run.loadercheck import main; main()"


def explain_exit_127(program: str, environ: Mapping[str, str], *, deadline: float = DEADLINE) -> Loader:
    """What the LD analysis says about ``program`` (argv[0], looked up on ``environ["PATH"]``) run with
    ``environ``; a line saying it could not tell when the analysis fails or runs out of time."""
    import json
    import subprocess

    request = json.dumps({"program": program, "environ": dict(environ)}, ensure_ascii=True).encode()
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _BOOT, _package_parent()],
            input=request,
            capture_output=True,
            timeout=deadline,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return _unknown(f"the analysis did not run: {exc}")
    try:
        answer = json.loads(done.stdout)
        lines = [str(line) for line in answer["lines"]]
        return Loader(lines, bool(answer["missing"]), answer.get("data"))
    except (ValueError, KeyError, TypeError):
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return _unknown(f"the analysis failed: {last[0][:200]}")


def _unknown(why: str) -> Loader:
    return Loader(
        [
            f"exit code 127 from a program that started: a shared library it needs is missing or a command "
            f"it ran was not found; {why} (hint: ma-launch --ld-report -p ENV -- PROGRAM)"
        ],
        missing=False,
    )


def _package_parent() -> str:
    """The directory that holds the ``launcher`` package this supervisor runs from."""
    import launcher.errors

    return os.path.dirname(os.path.dirname(os.path.abspath(launcher.errors.__file__)))
