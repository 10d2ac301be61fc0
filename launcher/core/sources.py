"""Activation scripts beyond the env: ``--source FILE`` and CANN's ``set_env.sh`` (``--cann auto``).

They are sourced after the conda activation by the same bash that sources the env's ``activate.d`` scripts,
under the same rules and deadline (:mod:`launcher.core.sourcing`); each change they make is attributed to
its file. This module decides which files, says why, and tidies what they leave: an empty entry in ``PATH``,
``LD_LIBRARY_PATH`` or ``PYTHONPATH`` (CANN's script leaves one when the variable was unset) means the
working directory to the loader and to Python, so it is dropped. Reads the file system; runs nothing.
"""

from __future__ import annotations

import os

from launcher.core.paths import split_path
from launcher.core.plan import Change
from launcher.errors import AccessError, NotFoundError
from launcher.modelarts import facts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from launcher.core.sourcing import Script
    from launcher.modes import CannMode

#: List variables in which a sourced file may leave an empty entry (each would mean the working directory).
LIST_VARIABLES = ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH")


def user_file(path: str, cwd: str) -> str:
    """A ``--source`` file as an absolute path; NotFoundError (66) or AccessError (77) when it cannot be
    sourced."""
    full = os.path.join(cwd, path)
    if not os.path.exists(full):
        raise NotFoundError(
            f"--source {path}: no such file (looked from {cwd})", hint="give the script's path"
        )
    if not os.path.isfile(full):
        raise NotFoundError(f"--source {path} is not a file", hint="give the script's path")
    if not os.access(full, os.R_OK):
        raise AccessError(f"--source {path} cannot be read by this user", hint=f"chmod a+r {path}")
    return os.path.normpath(full)


def files_to_source(
    sources: Sequence[str], cann: CannMode, environ: Mapping[str, str], cwd: str
) -> tuple[list[Script], list[str]]:
    """The files to source after the env's activation, each attributed to the words that name it, and
    decision lines for the CANN scripts that are not sourced. CANN's scripts come first, so a ``--source``
    file can build on them."""
    found: list[tuple[str, str]] = []
    notes: list[str] = []
    if cann == "auto" and (environ.get(facts.CANN_HOME_VARIABLE) or os.path.isdir(facts.ASCEND_DIR)):
        from launcher.modelarts.cann import find_set_env

        for script in find_set_env(environ):
            if script.skip is not None:
                notes.append(f"{script.what}: {script.path} not sourced: {script.skip}")
            else:
                found.append((script.file, f"{script.path} ({script.what}, --cann auto)"))
    for path in sources:
        full = user_file(path, cwd)
        found.append((full, f"{full} (--source)"))
    if not found:
        return [], notes
    from launcher.core.sourcing import (
        Script,
    )  # the sourcing protocol is loaded only when something is sourced

    return [Script(path, source) for path, source in found], notes


def tidied(change: Change) -> Change:
    """``change`` with the empty entries of a :data:`LIST_VARIABLES` value dropped (and said so)."""
    if change.name in LIST_VARIABLES and change.value is not None:
        clean = os.pathsep.join(split_path(change.value))
        if clean != change.value:
            return Change(change.name, clean, change.source + " (empty entries dropped)", change.kind)
    return change


def summary(source: str, changes: Sequence[Change]) -> str:
    """The decision line for one sourced file: which variables it changed."""
    names = sorted({c.name for c in changes if c.source.startswith(source)})
    what = ", ".join(names) if names else "nothing"
    return f"sourced {source}: changed {what}"
