"""Preflight: do the accelerators this container can see agree with ``MA_NUM_GPUS`` and with the number of
processes torchrun will start on this node?

What is visible, most specific first, per kind of accelerator:

* GPUs: ``CUDA_VISIBLE_DEVICES`` (what the CUDA runtime will use), else ``NVIDIA_VISIBLE_DEVICES`` (what the
  container runtime mounted; ``all`` defers to the device nodes), else the ``nvidiaN`` device nodes;
* Ascend NPUs: ``ASCEND_RT_VISIBLE_DEVICES``, else ``ASCEND_VISIBLE_DEVICES`` (ids and ``a-b`` ranges),
  else the ``davinciN`` device nodes.

The device nodes are read from ``/dev`` or the directory ``MA_LAUNCH_DEVICE_ROOT`` names. A container without
any of these has no accelerator to compare, and gets no warning. Each finding is a
:class:`~launcher.modelarts.lint.LintWarning`; ``--strict-lint`` makes the first one an error.

``gpus-visible``    ``MA_NUM_GPUS`` and the visible accelerators differ
``nproc-visible``   torchrun's ``--nproc_per_node`` and the visible accelerators differ
``devices-listed``  a variable lists more devices than there are device nodes

Pure apart from listing the device directory.
"""

from __future__ import annotations

import os

from launcher.core.record import Record
from launcher.modelarts.facts import (
    DEVICE_ROOT,
    DEVICE_ROOT_VARIABLE,
    VISIBLE_GPU_VARIABLES,
    VISIBLE_NPU_VARIABLES,
)
from launcher.modelarts.lint import LintWarning

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional

#: Device names of one card of each kind, followed by its number.
_NODE_NAMES = {"gpu": "nvidia", "npu": "davinci"}
_VARIABLES = {
    "gpu": VISIBLE_GPU_VARIABLES,
    "npu": VISIBLE_NPU_VARIABLES,
}
_NOUN = {"gpu": "GPU", "npu": "NPU"}
_MAX_DEVICES = 4096


class Visible(Record):
    """How many accelerators of a ``kind`` (``gpu``, ``npu``) are visible, the variable that says so
    (``None``: the device nodes say so) and its value, and how many device nodes there are."""

    __slots__ = ("count", "kind", "nodes", "value", "variable")

    def __init__(self, kind: str, count: int, variable: Optional[str], value: str, nodes: int) -> None:
        self.kind = kind
        self.count = count
        self.variable = variable
        self.value = value
        self.nodes = nodes

    @property
    def node_name(self) -> str:
        """``nvidiaN`` or ``davinciN``."""
        return _NODE_NAMES[self.kind] + "N"

    def describe(self) -> str:
        """``4 GPUs visible (CUDA_VISIBLE_DEVICES=0,1,2,3)``."""
        noun = _NOUN[self.kind] + ("" if self.count == 1 else "s")
        source = f"{self.variable}={self.value}" if self.variable else f"{self.value}/{self.node_name} nodes"
        return f"{self.count} {noun} visible ({source})"


def device_root(environ: Mapping[str, str]) -> str:
    """Where the device nodes are: ``MA_LAUNCH_DEVICE_ROOT``, else ``/dev``."""
    return environ.get(DEVICE_ROOT_VARIABLE) or DEVICE_ROOT


def visible(environ: Mapping[str, str], root: str) -> Optional[Visible]:
    """The visible accelerators: GPUs when anything says there are some (or a variable is set), else NPUs
    likewise; ``None`` when nothing says anything."""
    found = [v for v in (_visible(kind, environ, root) for kind in ("gpu", "npu")) if v is not None]
    for item in found:
        if item.count:
            return item
    return found[0] if found else None


def visible_npus(environ: Mapping[str, str]) -> Optional[Visible]:
    """The visible Ascend NPUs (what ``--msrun`` starts a worker for each of), or ``None``."""
    return _visible("npu", environ, device_root(environ))


def _visible(kind: str, environ: Mapping[str, str], root: str) -> Optional[Visible]:
    nodes = _count_nodes(root, _NODE_NAMES[kind])
    for name in _VARIABLES[kind]:
        raw = environ.get(name)
        if raw is None:
            continue
        count = _listed(raw)
        if count is not None:
            return Visible(kind, count, name, raw, nodes)
    if nodes:
        return Visible(kind, nodes, None, root.rstrip("/") or "/", nodes)
    return None


def _listed(raw: str) -> Optional[int]:
    """How many devices a visible-devices value lists: ids, ``GPU-…``/``MIG-…`` names, ``a-b`` ranges; empty,
    ``none``, ``void`` and ``NoDevFiles`` are 0; ``all`` (or anything unreadable) is ``None``. Like the CUDA
    runtime, the list ends at the first entry that is not a device."""
    text = raw.strip()
    if text.lower() in ("", "none", "void", "nodevfiles"):
        return 0
    count = 0
    for item in (part.strip() for part in text.split(",")):
        if (item.isascii() and item.isdigit()) or item.startswith(("GPU-", "MIG-")):
            count += 1
        elif item.count("-") == 1 and all(p.isascii() and p.isdigit() for p in item.split("-")):
            first, last = (int(p) for p in item.split("-"))
            if last < first or last - first >= _MAX_DEVICES:
                return None
            count += last - first + 1
        else:
            break
    return count if count else None


def whole_number(raw: Optional[str]) -> Optional[int]:
    """``raw`` as a count (``MA_NUM_GPUS``), or ``None`` when unset or not a whole number (the
    distributed step reports bad values)."""
    text = (raw or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 7 else None


def _count_nodes(root: str, stem: str) -> int:
    try:
        names = os.listdir(root)
    except OSError:
        return 0
    return sum(1 for name in names if name.startswith(stem) and name[len(stem) :].isdigit())


def preflight(environ: Mapping[str, str], *, gpus: Optional[int], nproc: Optional[int]) -> list[LintWarning]:
    """The disagreements between the visible accelerators and ``gpus`` (``MA_NUM_GPUS``) and ``nproc``
    (torchrun's processes per node); ``None`` means "not given"."""
    seen = visible(environ, device_root(environ))
    if seen is None:
        return []
    found = []
    if seen.variable and seen.nodes and seen.count > seen.nodes:
        found.append(
            LintWarning(
                "devices-listed",
                f"{seen.variable}={seen.value} lists {seen.count} devices but there are only {seen.nodes} "
                f"{seen.node_name} device nodes",
                "list only devices this container has",
            )
        )
    if gpus is not None and gpus != seen.count:
        found.append(
            LintWarning(
                "gpus-visible",
                f"MA_NUM_GPUS={gpus} but {seen.describe()}",
                "make the job's accelerators visible (do not narrow the visible devices in the image or the "
                "boot command), or choose a flavor with that many",
            )
        )
    if nproc is not None and nproc != seen.count:
        more = "processes would share accelerators" if nproc > seen.count else "accelerators would stay idle"
        found.append(
            LintWarning(
                "nproc-visible",
                f"torchrun will start {nproc} processes on this node but {seen.describe()}: {more}",
                f"pass --torchrun-arg=--nproc_per_node={seen.count} or make {nproc} accelerators visible",
            )
        )
    return found
