"""The ``#!`` line of a script: the one reader for the plan, the LD analysis and doctor (small and free of
imports: the launch path reads it)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional


def read_shebang(path: str) -> Optional[list[str]]:
    """The words of a script's ``#!`` line (interpreter first), or ``None`` when ``path`` has none."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "surrogateescape").split()
    return words or None
