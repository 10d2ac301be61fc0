"""Which processes hold an accelerator device open (``/dev/nvidia*``, ``/dev/davinci*``), read from their
``/proc/PID/fd`` links.

A dataloader worker or a stray child that outlives the program keeps the GPU or NPU busy, and the next run
(a restart in the same container) fails with "device busy"; the supervisor names them before it stops them.
The device directory is ``/dev`` unless the caller gives another (tests use a directory of their own).

Part of the supervisor: standard library only.
"""

from __future__ import annotations

import os

from launcher.core.record import Record
from launcher.modelarts.facts import ACCELERATOR_PREFIXES, DEVICE_ROOT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


class Holder(Record):
    """A process (``pid``, its command name) and the accelerator devices it has open."""

    __slots__ = ("devices", "name", "pid")

    def __init__(self, pid: int, name: str, devices: tuple[str, ...]) -> None:
        self.pid = pid
        self.name = name
        self.devices = devices


def is_accelerator(path: str, device_root: str = DEVICE_ROOT) -> bool:
    """Whether ``path`` names an accelerator device node directly under ``device_root``."""
    directory, name = os.path.split(path)
    return os.path.normpath(directory) == os.path.normpath(device_root) and name.startswith(
        ACCELERATOR_PREFIXES
    )


def device_holders(pids: Iterable[int], device_root: str = DEVICE_ROOT) -> list[Holder]:
    """The processes among ``pids`` that hold an accelerator device open, in the order given. Processes
    that are gone or whose descriptors may not be read are left out."""
    holders = []
    for pid in pids:
        devices = _open_devices(pid, device_root)
        if devices:
            holders.append(Holder(pid, _comm(pid), devices))
    return holders


def _open_devices(pid: int, device_root: str) -> tuple[str, ...]:
    directory = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(directory)
    except OSError:
        return ()
    found: list[str] = []
    for fd in fds:
        try:
            target = os.readlink(f"{directory}/{fd}")
        except OSError:
            continue
        if target not in found and is_accelerator(target, device_root):
            found.append(target)
    return tuple(sorted(found))


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as handle:
            return handle.read(64).decode("utf-8", "replace").strip() or "?"
    except OSError:
        return "?"
