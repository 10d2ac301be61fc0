"""The process tree below the supervisor, read from ``/proc`` (psutil where there is none), and the
subreaper setting that keeps orphaned descendants in it.

Part of the supervisor: standard library only.
"""

from __future__ import annotations

import os
import sys

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are re-parented to us (Linux >= 3.4)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (ImportError, OSError, AttributeError):
        pass


def descendants(root: int) -> list[int]:
    """Live (non-zombie) descendants of ``root``, from /proc; psutil where there is no /proc."""
    if root == os.getpid() and hasattr(os, "waitid"):
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)  # reaps nothing
        except ChildProcessError:
            return []  # no child at all (not even a zombie): no descendant either
    if os.path.exists(f"/proc/{root}/task/{root}/children"):
        return descendants_by_children(root)
    return descendants_by_scan(root)


def descendants_by_scan(root: int) -> list[int]:
    """Read the parent of every process in /proc (kernels without CONFIG_PROC_CHILDREN)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return _descendants_psutil(root)
    children: dict[int, list[int]] = {}
    for name in names:
        if name.isdigit():
            state, ppid = state_and_ppid(name)
            if state not in ("Z", "X", ""):
                children.setdefault(ppid, []).append(int(name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def descendants_by_children(root: int) -> list[int]:
    """Walk /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN): reads only the tree, not all of /proc."""
    found: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            for child in _read(f"/proc/{pid}/task/{tid}/children").split():
                if state_and_ppid(child.decode())[0] not in ("Z", "X", ""):
                    found.append(int(child))
                    todo.append(int(child))
    return found


def stopped_in_group(pgid: int, pids: list[int]) -> bool:
    """Whether one of ``pids`` in process group ``pgid`` is stopped by a signal (state ``T``: SIGSTOP,
    SIGTSTP, SIGTTIN, SIGTTOU); such a process runs no handler until it gets SIGCONT."""
    for pid in pids:
        fields = _stat_fields(str(pid))
        if len(fields) > 2 and fields[0] == b"T" and fields[2] == str(pgid).encode():
            return True
    return False


def state_and_ppid(pid: str) -> tuple[str, int]:
    """State letter and parent pid from /proc/<pid>/stat; ("", 0) when the process is gone."""
    fields = _stat_fields(pid)
    if len(fields) < 2:
        return "", 0
    return fields[0].decode(), int(fields[1])


def _stat_fields(pid: str) -> list[bytes]:
    """The fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, session…"""
    data = _read(f"/proc/{pid}/stat")
    return data[data.rfind(b")") + 2 :].split(None, 4)


def _read(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return b""
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _descendants_psutil(root: int) -> list[int]:
    try:
        import importlib

        psutil = importlib.import_module("psutil")
        return [p.pid for p in psutil.Process(root).children(recursive=True)]
    except Exception:  # best effort where there is no /proc
        return []
