"""The Ascend NPUs this container may use: the one place that reads ``ASCEND_RT_VISIBLE_DEVICES``,
``ASCEND_VISIBLE_DEVICES`` and the ``davinciN`` device nodes.

The device directory is an argument (``/dev`` in a real launch), so tests can point it at a tree of their
own. Reads the file system; changes nothing.
"""

from __future__ import annotations

import os

from launcher.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional

#: The variables that restrict the NPUs, most specific first: the runtime's own (like
#: CUDA_VISIBLE_DEVICES), then the one the container runtime sets for the devices it mounted.
VISIBLE_VARIABLES = ("ASCEND_RT_VISIBLE_DEVICES", "ASCEND_VISIBLE_DEVICES")
#: Where device nodes are in a real container.
DEV_ROOT = "/dev"
#: An NPU's device node is ``davinci<N>``; ``davinci_manager`` and the other control nodes are not NPUs.
NODE_STEM = "davinci"


def _device_list(name: str, raw: str) -> int:
    """How many devices ``0,1,2`` or ``0-3,6`` names (each counted once); ConfigError when it is neither."""
    seen: set[int] = set()
    for item in raw.split(","):
        text = item.strip()
        low, dash, high = text.partition("-")
        if not (low.isascii() and low.isdigit()) or (dash and not (high.isascii() and high.isdigit())):
            raise ConfigError(
                f"{name}={raw!r} is not a list of device numbers such as 0,1 or 0-3",
                hint=f"fix {name}, or set MA_NUM_GPUS to the number of NPUs to use",
            )
        first, last = int(low), int(high) if dash else int(low)
        if last < first or last - first > 4096:
            raise ConfigError(f"{name}={raw!r} has the range {text}", hint=f"fix {name}")
        seen.update(range(first, last + 1))
    return len(seen)


def device_nodes(dev_root: str = DEV_ROOT) -> list[str]:
    """The ``davinciN`` device nodes under ``dev_root``, sorted by N (empty when there are none)."""
    try:
        names = os.listdir(dev_root)
    except OSError:
        return []
    found = [n for n in names if n.startswith(NODE_STEM) and n[len(NODE_STEM) :].isdigit()]
    return sorted(found, key=lambda n: int(n[len(NODE_STEM) :]))


def visible_npus(environ: Mapping[str, str], dev_root: str = DEV_ROOT) -> Optional[tuple[int, str]]:
    """The number of NPUs this container may use and where that number came from: the first non-empty
    variable of :data:`VISIBLE_VARIABLES`, else the device nodes under ``dev_root``; ``None`` when there
    is no NPU at all."""
    for name in VISIBLE_VARIABLES:
        raw = environ.get(name, "").strip()
        if raw:
            return _device_list(name, raw), name
    nodes = device_nodes(dev_root)
    if nodes:
        return len(nodes), f"{len(nodes)} device node(s) {os.path.join(dev_root, NODE_STEM)}N"
    return None
