"""Memory cgroups for tests: fake cgroup trees (files a test writes), and a real child memory cgroup with a
small limit, where the machine lets a test make one (root; cgroup v1's memory controller, or a cgroup v2
ancestor that hands the memory controller to its children: .ci/run sets one up).

A process joins the child cgroup through :func:`in_cgroup`: ``sh`` writes its own PID to the cgroup's
``cgroup.procs`` and then execs the command, so everything the command starts is inside.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Optional

from needs import missing

ROOT = Path("/sys/fs/cgroup")
#: A program that allocates (and touches) memory until it is killed.
HOG = "chunks = []\nwhile True:\n    chunks.append(b'x' * (8 << 20))\n"


class Child:
    """A child memory cgroup: its directory, cgroup version and limit."""

    def __init__(self, path: Path, version: str, limit: int) -> None:
        self.path = path
        self.version = version
        self.limit = limit

    def procs(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def oom_kills(self) -> int:
        name = "memory.events" if self.version == "v2" else "memory.oom_control"
        for line in (self.path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return missing("this kernel's memory cgroup has no oom_kill counter (Linux 4.13+)")


def own_path(version: str) -> Optional[str]:
    """This process's cgroup path for the v2 hierarchy or the v1 memory controller."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if version == "v2" and hierarchy == "0" and not controllers:
            return path
        if version == "v1" and "memory" in controllers.split(","):
            return path
    return None


def _v1_parent() -> Optional[Path]:
    path = own_path("v1")
    base = ROOT / "memory"
    if path is None or not (base / "memory.limit_in_bytes").exists():
        return None
    here = base / path.lstrip("/")
    return here if here.is_dir() else base


def _v2_parent() -> Optional[Path]:
    """The nearest cgroup at or above this one that hands the memory controller to its children."""
    path = own_path("v2")
    if path is None or not (ROOT / "cgroup.controllers").exists():
        return None
    here = ROOT / path.lstrip("/")
    while True:
        try:
            if "memory" in (here / "cgroup.subtree_control").read_text().split():
                return here
        except OSError:
            pass
        if here == ROOT:
            return None
        here = here.parent


@contextmanager
def child_memory_cgroup(limit: int) -> Iterator[Child]:
    """A new child memory cgroup limited to ``limit`` bytes, removed afterwards (its processes killed);
    :func:`needs.missing` when the machine does not let this test make one."""
    if os.geteuid() != 0:
        missing("a child memory cgroup needs root")
    made: Optional[Child] = None
    for version, parent in (("v2", _v2_parent()), ("v1", _v1_parent())):
        if parent is None:
            continue
        path = parent / f"ma-launch-test-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir()
            limit_file = "memory.max" if version == "v2" else "memory.limit_in_bytes"
            (path / limit_file).write_text(str(limit))
            if version == "v1":
                _write_quietly(path / "memory.memsw.limit_in_bytes", str(limit))  # no escape into swap
            else:
                _write_quietly(path / "memory.swap.max", "0")
        except OSError:
            _remove(Child(path, version, limit))
            continue
        made = Child(path, version, limit)
        break
    if made is None:
        missing("cannot make a child memory cgroup here (needs cgroup v1 memory or a delegated v2 tree)")
    try:
        yield made
    finally:
        _remove(made)


def in_cgroup(child: Child, command: list[str]) -> list[str]:
    """``command``, started inside ``child``."""
    procs = str(child.path / "cgroup.procs")
    return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, *command]


def _write_quietly(path: Path, text: str) -> None:
    with suppress(OSError):  # not offered by this kernel or configuration
        path.write_text(text)


def _remove(child: Child) -> None:
    deadline = time.monotonic() + 10
    while child.path.exists():
        for pid in child.procs():
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            child.path.rmdir()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def fake_tree(root: Path, files: dict[str, str]) -> Path:
    """A fake cgroup tree under ``root``: ``files`` maps relative paths to their content."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
