"""The working directory of a launch: ``--workdir``, else ``$MA_HOME``, else ``/home/ma-user`` (ModelArts
requires boot commands to run from there), and whether this user can run in it."""

from __future__ import annotations

import os

from launcher.errors import AccessError, NotFoundError, UsageError
from launcher.modelarts.facts import HOME

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional

    from launcher.errors import LaunchError


def resolve_workdir(requested: Optional[str], environ: Mapping[str, str], cwd: str) -> tuple[str, str]:
    """The working directory and, in words, where it came from. A relative ``--workdir`` is taken from
    ``cwd``; an empty one is a usage error."""
    if requested is not None:
        if not requested:
            raise UsageError("--workdir is empty", hint=f"give --workdir DIR, e.g. --workdir {HOME}")
        return os.path.normpath(os.path.join(cwd, requested)), "--workdir"
    home = environ.get("MA_HOME", "")
    if home and os.path.isabs(home):
        return os.path.normpath(home), "MA_HOME"
    if home:
        return HOME, f"the ModelArts default; MA_HOME={home!r} is not absolute and was ignored"
    return HOME, "the ModelArts default"


def check_workdir(workdir: str) -> Optional[LaunchError]:
    """Why the launch cannot run in ``workdir`` (66 missing or not a directory, 77 not accessible to this
    user), or ``None`` when it can."""
    import stat

    hint = "create it, or choose another with --workdir DIR"
    try:
        mode = os.stat(workdir).st_mode
    except PermissionError:
        return AccessError(
            f"working directory {workdir} cannot be reached by this user (uid {os.getuid()}): "
            "a directory above it is not accessible",
            hint="fix the permissions of its parents, or choose another with --workdir DIR",
        )
    except OSError:
        return NotFoundError(f"working directory {workdir} does not exist", hint=hint)
    if not stat.S_ISDIR(mode):
        return NotFoundError(f"working directory {workdir} is not a directory", hint=hint)
    if not os.access(workdir, os.X_OK):
        return AccessError(
            f"working directory {workdir} is not accessible to this user (uid {os.getuid()})",
            hint="fix its permissions, or choose another with --workdir DIR",
        )
    return None
