"""Which shell the ``--dry-run`` line is for: ``--shell``, else the shell that started ma-launch, else
``$SHELL``, else what shellingham finds among the ancestors, else POSIX sh.

The parent and ``$SHELL`` are checked first because they cost one small read; shellingham walks the
process table and is only asked when neither names a supported shell.
"""

from __future__ import annotations

import os

from launcher.errors import UsageError
from launcher.render.shells import POSIX, SHELL_NAMES, dialect_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from launcher.render.shells import Dialect


def choose_shell(requested: Optional[str]) -> tuple[str, Dialect, str]:
    """``(shell name, its dialect, why it was chosen)``; UsageError for an unsupported ``--shell``."""
    if requested is not None:
        dialect = dialect_for(requested)
        if dialect is None:
            raise UsageError(
                f"--shell {requested!r} is not supported", hint=f"choose one of {', '.join(SHELL_NAMES)}"
            )
        return requested, dialect, "chosen with --shell"
    for name, why in (
        (_parent_name(), "the shell that started ma-launch"),
        (os.environ.get("SHELL"), "$SHELL"),
    ):
        if name:
            dialect = dialect_for(name)
            if dialect is not None:
                return _base(name), dialect, f"{why}; use --shell to choose another"
    name, why = _shellingham()
    return name, dialect_for(name) or POSIX, why


def _base(name: str) -> str:
    return name.rsplit("/", 1)[-1].lstrip("-")


def _parent_name() -> Optional[str]:
    """The command name of the parent process (``/proc/PPID/comm``), if it can be read."""
    try:
        with open(f"/proc/{os.getppid()}/comm", "rb") as handle:
            return handle.read().strip().decode("utf-8", "replace") or None
    except OSError:
        return None


def _shellingham() -> tuple[str, str]:
    """Ask shellingham (it reads /proc of the ancestors); ``("sh", why)`` when it cannot tell."""
    try:
        import shellingham

        name, _path = shellingham.detect_shell()
    except Exception:  # shellingham raises its own ShellDetectionFailure, or fails on odd /proc
        return "sh", "no shell could be detected; POSIX sh assumed (use --shell to choose)"
    if dialect_for(name) is None:
        return "sh", f"detected shell {name!r} is not supported; POSIX sh assumed (use --shell to choose)"
    return name, "detected with shellingham (use --shell to choose another)"
