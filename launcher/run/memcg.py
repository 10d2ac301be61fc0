"""The memory cgroup this process runs in, read so that an out-of-memory kill is measured, not guessed.

The supervisor reads it before it starts the program and again after the program ended: when the cgroup's
OOM-kill counter rose, the kernel's OOM killer killed a process of the job. What is read:

====================  ====================================  ===========================================
                      cgroup v2                             cgroup v1
====================  ====================================  ===========================================
OOM kills             ``memory.events`` ``oom_kill``        ``memory.oom_control`` ``oom_kill`` (4.13+)
limit reached         ``memory.events`` ``max``             ``memory.failcnt``
limit                 ``memory.max`` (smallest up the tree) ``memory.limit_in_bytes`` (likewise)
peak                  ``memory.peak`` (5.19+)               ``memory.max_usage_in_bytes``
====================  ====================================  ===========================================

The cgroup is found from ``/proc/self/cgroup`` under a root (``/sys/fs/cgroup``; tests point it at a
fake tree). Inside a container the root is usually the container's own cgroup while ``/proc/self/cgroup``
may still name the host's path, so the path is tried whole, then without its leading components, down to
the root itself. A value that cannot be read is ``None``; nothing here raises for a missing or odd file.

Part of the supervisor: standard library only.
"""

from __future__ import annotations

import os

from launcher.core.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, Optional

    CgroupVersion = Literal["v1", "v2"]

#: Where cgroup file systems are mounted.
DEFAULT_ROOT = "/sys/fs/cgroup"
#: A v1 limit at or above this is "no limit" (the kernel reports about 2**63 rounded to a page).
_UNLIMITED = 1 << 62


class Memory(Record):
    """What one reading of the memory cgroup found: where (``version``, ``path``), the OOM-kill counter,
    how often the usage reached the limit, the smallest limit on the way up the tree, and the peak usage
    (bytes). Any of the numbers is ``None`` when the kernel does not offer it."""

    __slots__ = ("limit", "limit_hits", "oom_kills", "path", "peak", "version")

    def __init__(
        self,
        version: CgroupVersion,
        path: str,
        oom_kills: Optional[int],
        limit_hits: Optional[int],
        limit: Optional[int],
        peak: Optional[int],
    ) -> None:
        self.version: CgroupVersion = version
        self.path = path
        self.oom_kills = oom_kills
        self.limit_hits = limit_hits
        self.limit = limit
        self.peak = peak


def read_memory(root: str = DEFAULT_ROOT, membership: Optional[str] = None) -> Optional[Memory]:
    """The memory cgroup of this process under ``root`` (v2 first, then v1), or ``None`` when there is
    none to read. ``membership`` is the text of ``/proc/self/cgroup`` (read when not given)."""
    if membership is None:
        membership = _text("/proc/self/cgroup") or ""
    v2_path, v1_path = _paths(membership)
    if v2_path is not None:
        found = _locate(root, v2_path, "memory.events")
        if found is not None:
            return _read_v2(*found)
    if v1_path is not None:
        found = _locate(os.path.join(root, "memory"), v1_path, "memory.limit_in_bytes")
        if found is not None:
            return _read_v1(*found)
    return None


def _paths(membership: str) -> tuple[Optional[str], Optional[str]]:
    """The v2 path (``0::/path``) and the v1 memory controller's path (``N:…memory…:/path``)."""
    v2 = v1 = None
    for line in membership.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and not controllers:
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _locate(base: str, path: str, marker: str) -> Optional[tuple[str, str]]:
    """The directory for cgroup ``path`` under ``base`` that holds ``marker``: the whole path first, then
    without its leading components (a container sees its own cgroup as the root), then ``base`` itself.
    Returns (``base``, the directory)."""
    parts = [part for part in path.split("/") if part and part not in (".", "..")]
    for start in range(len(parts) + 1):
        directory = os.path.join(base, *parts[start:])
        if os.path.isfile(os.path.join(directory, marker)):
            return base, directory
    return None


def _read_v2(base: str, directory: str) -> Memory:
    events = _keyed(_text(os.path.join(directory, "memory.events")))
    return Memory(
        "v2",
        directory,
        oom_kills=events.get("oom_kill"),
        limit_hits=events.get("max"),
        limit=_smallest_limit(base, directory, "memory.max"),
        peak=_number(_text(os.path.join(directory, "memory.peak"))),
    )


def _read_v1(base: str, directory: str) -> Memory:
    control = _keyed(_text(os.path.join(directory, "memory.oom_control")))
    return Memory(
        "v1",
        directory,
        oom_kills=control.get("oom_kill"),  # absent before Linux 4.13
        limit_hits=_number(_text(os.path.join(directory, "memory.failcnt"))),
        limit=_smallest_limit(base, directory, "memory.limit_in_bytes"),
        peak=_number(_text(os.path.join(directory, "memory.max_usage_in_bytes"))),
    )


def _smallest_limit(base: str, directory: str, name: str) -> Optional[int]:
    """The smallest limit from ``directory`` up to ``base`` (a parent's limit binds its children too)."""
    smallest: Optional[int] = None
    current = directory
    while True:
        value = _number(_text(os.path.join(current, name)))
        if value is not None and value < _UNLIMITED and (smallest is None or value < smallest):
            smallest = value
        if os.path.normpath(current) == os.path.normpath(base):
            return smallest
        parent = os.path.dirname(current)
        if parent == current:
            return smallest
        current = parent


def _keyed(text: Optional[str]) -> dict[str, int]:
    """``name value`` lines as a dict (values that are not whole numbers are left out)."""
    found: dict[str, int] = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit():
            found[fields[0]] = int(fields[1])
    return found


def _number(text: Optional[str]) -> Optional[int]:
    """A whole number file (``max`` and anything else that is not a number: ``None``)."""
    if text is None:
        return None
    value = text.strip()
    return int(value) if value.isdigit() and len(value) < 24 else None


def _text(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as handle:
            return handle.read(65536).decode("ascii", "replace")
    except (OSError, ValueError):
        return None
