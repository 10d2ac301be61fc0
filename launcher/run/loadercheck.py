"""The other end of :mod:`launcher.run.loaderfix`: a short-lived process that runs the LD analysis for a
program that ended with exit code 127 and answers, as JSON, which shared library the loader could not find
and the fix.

Input (standard input): ``{"program": ARGV0, "environ": {...}}``, the program's name and environment.
Output (standard output): ``{"lines": [...], "missing": BOOL, "data": {...}}``: the summary's lines, whether
a missing library was found, and the facts (``program``, ``env``, ``provided``: soname, needer and the env
directory that has it; ``not_provided``: soname and needer). The env is the program's ``CONDA_PREFIX``;
without one, the program's own libraries are checked against the system's.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Optional

#: A prefix that can never exist (``/dev/null`` is not a directory): "no env".
_NO_ENV = "/dev/null/no-env"
_HEAD = "exit code 127 from a program that started"


def main() -> None:
    """Read the request, answer it; a request that cannot be read is an error on stderr (exit 2)."""
    import json

    try:
        request = json.loads(sys.stdin.buffer.read())
        program, environ = str(request["program"]), {str(k): str(v) for k, v in request["environ"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        sys.stderr.write(f"ma-launch: error: a malformed request: {exc}\n")
        sys.exit(2)
    sys.stdout.write(json.dumps(answer(program, environ), ensure_ascii=True) + "\n")


def answer(program: str, environ: Mapping[str, str]) -> dict[str, object]:
    """The answer for ``program`` (argv[0]) run with ``environ`` from the current directory."""
    from launcher.core.paths import search_path

    path = search_path(program, environ.get("PATH"), os.getcwd()) or program
    prefix = environ.get("CONDA_PREFIX") or None
    if prefix is not None and not os.path.isdir(prefix):
        prefix = None
    analysis = _analysis(prefix, path, environ)
    provided = [
        {"soname": str(soname), "needed_by": str(needer), "directory": str(added["directory"])}
        for added in analysis.get("added", [])
        for soname, needer in added["provides"]
    ]
    not_provided = [
        {"soname": str(u["soname"]), "needed_by": str(u["needers"][0])}
        for u in analysis.get("unresolved", [])
        if u.get("certain", True) and u["needers"]
    ]
    data = {"program": path, "env": prefix, "provided": provided, "not_provided": not_provided}
    lines = _lines(path, prefix, provided, not_provided)
    return {"lines": lines, "missing": bool(provided or not_provided), "data": data}


def _analysis(prefix: Optional[str], program: str, environ: Mapping[str, str]) -> Any:
    """The LD analysis (:func:`launcher.ld.analysis.analyze`) as its JSON-shaped data, with the launch's
    store; with no env, the program alone, and nothing kept."""
    from launcher.ld.analysis import analyze
    from launcher.ld.store import NullStore
    from launcher.run.ldstore import user_store

    if prefix is None:
        return analyze(_NO_ENV, program, environ, store=NullStore()).to_json()
    return analyze(prefix, program, environ, store=user_store(environ)).to_json()


def _lines(
    program: str,
    prefix: Optional[str],
    provided: list[dict[str, str]],
    not_provided: list[dict[str, str]],
) -> list[str]:
    """One line per kind of finding (the first library named, the others counted)."""
    lines = []
    if provided:
        first = provided[0]
        more = _more(len(provided))
        directories = ":".join(dict.fromkeys(p["directory"] for p in provided))
        lines.append(
            f"{_HEAD}: the loader could not find {first['soname']} (needed by {first['needed_by']}){more}; "
            f"the env has it in {first['directory']} (fix: --ld-library-path auto, or "
            f"LD_LIBRARY_PATH={directories}:$LD_LIBRARY_PATH)"
        )
    if not_provided:
        first = not_provided[0]
        lines.append(
            f"{_HEAD}: the loader could not find {first['soname']} (needed by {first['needed_by']})"
            f"{_more(len(not_provided))}; {_why_missing(first['soname'], prefix)}"
        )
    if not lines:
        lines.append(
            f"{_HEAD}, and no shared library of {program} is missing: a command it ran was probably not "
            "found (a shell's exit code 127)"
        )
    return lines


def _why_missing(soname: str, prefix: Optional[str]) -> str:
    """Why nothing provides ``soname``, and the fix."""
    from launcher.ld.sonames import hint_for, is_driver_soname

    if is_driver_soname(soname):
        return "it comes with the accelerator driver the platform mounts at run time (fix: a GPU/NPU flavor)"
    if hint_for(soname):
        return hint_for(soname)
    if prefix:
        report = f"ma-launch --ld-report -p {prefix} lists everything missing"
        return f"the env does not provide it (fix: install it in the env; {report})"
    return "no conda env is active (fix: install it, or put its directory on LD_LIBRARY_PATH)"


def _more(count: int) -> str:
    return f" and {count - 1} more" if count > 1 else ""
