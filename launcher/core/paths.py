"""``:``-separated path lists (PATH, LD_LIBRARY_PATH) and looking programs up on them: the one PATH walk.

An empty entry in such a list means the current directory to the shell and the loader; ma-launch never
creates one and never finds a program through one. Pure apart from reading the file system.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Callable, Optional

#: Where bash lives when PATH does not say (slim images and an emptied PATH).
BASH_LOCATIONS = ("/bin/bash", "/usr/bin/bash")
#: What exec searches when PATH is unset (Python's ``os.execvpe`` and the C library's ``execvp`` agree).
DEFAULT_PATH = os.defpath


def split_path(value: Optional[str]) -> list[str]:
    """The non-empty entries of a ``:``-separated list (an empty entry would mean the current directory)."""
    return [entry for entry in (value or "").split(os.pathsep) if entry]


def prepend_entries(value: Optional[str], front: Sequence[str], drop: Sequence[str] = ()) -> str:
    """``front`` followed by the old entries, without duplicates of ``front``, without ``drop`` and without
    empty entries."""
    skip = set(front) | set(drop)
    rest = [entry for entry in split_path(value) if entry not in skip]
    return os.pathsep.join([*front, *rest])


def is_executable_file(path: str) -> bool:
    """Whether ``path`` is a regular file this process may execute."""
    return os.path.isfile(path) and os.access(path, os.X_OK)


def candidates(name: str, path_value: Optional[str], cwd: str) -> Iterable[str]:
    """Where ``execvp`` looks for ``name`` on ``path_value``, in order (relative entries from ``cwd``;
    empty entries skipped)."""
    for entry in split_path(path_value):
        yield os.path.join(entry if os.path.isabs(entry) else os.path.join(cwd, entry), name)


def search_path(
    name: str,
    path_value: Optional[str],
    cwd: str = "/",
    accept: Callable[[str], bool] = is_executable_file,
) -> Optional[str]:
    """The first candidate for ``name`` on ``path_value`` that ``accept`` takes, or ``None``."""
    for candidate in candidates(name, path_value, cwd):
        if accept(candidate):
            return candidate
    return None


def find_bash(path_value: Optional[str]) -> Optional[str]:
    """bash at its usual places, else on ``path_value``; ``None`` when there is none."""
    for candidate in BASH_LOCATIONS:
        if os.access(candidate, os.X_OK):
            return candidate
    return search_path("bash", path_value)
