"""Where the Ascend CANN toolkit's activation scripts are, and whether their effect is already present.

The toolkit (and its ATB add-on) must be activated by sourcing a ``set_env.sh`` before torch_npu or
MindSpore's Ascend build can load (``libhccl.so``, ``libascendcl.so``). The toolkit's script is found
through ``ASCEND_TOOLKIT_HOME`` (the toolkit directory or its ``latest``), else at the documented place;
the ATB add-on's at its documented place. A script whose marker variable already points inside its
directory has been sourced (a Dockerfile ``ENV`` copied its result, or a wrapper sourced it): it is not
sourced again; a marker that points at another installation is the user's choice and is kept.

Reads the file system through ``host`` (an image path to a path on this machine), changes nothing.
"""

from __future__ import annotations

import os

from launcher.core.record import Record
from launcher.modelarts import facts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Callable, Optional

    HostPath = Callable[[str], str]

#: The variable each set_env.sh sets to its installation: when present, the script's effect is too.
TOOLKIT_MARKER = "ASCEND_HOME_PATH"
ATB_MARKER = "ATB_HOME_PATH"


def _same(path: str) -> str:
    return path


class SetEnv(Record):
    """A CANN ``set_env.sh``: its path (in the image), what it activates, the path to source (on this
    machine), and why it is not sourced (``skip``: its effect is already present, or another installation
    is chosen), or None."""

    __slots__ = ("file", "path", "skip", "what")

    def __init__(self, path: str, what: str, file: str, skip: Optional[str] = None) -> None:
        self.path = path
        self.what = what
        self.file = file
        self.skip = skip


def _inside(value: str, directory: str, host: HostPath) -> bool:
    """Whether ``value`` (a marker variable) names ``directory`` or a path below it, symlinks resolved."""
    real_dir = os.path.realpath(host(directory))
    real = os.path.realpath(host(value))
    return real == real_dir or real.startswith(real_dir.rstrip("/") + "/")


def _skip(marker: str, directory: str, environ: Mapping[str, str], host: HostPath) -> Optional[str]:
    value = environ.get(marker, "")
    if not value:
        return None
    if _inside(value, directory, host):
        return f"already active ({marker}={value})"
    return f"{marker}={value} names another installation, which is kept"


def toolkit_candidates(environ: Mapping[str, str]) -> list[str]:
    """Where the toolkit's set_env.sh may be, in order: ``$ASCEND_TOOLKIT_HOME/set_env.sh`` and its parent's
    (``ASCEND_TOOLKIT_HOME`` usually names ``…/ascend-toolkit/latest``), then the documented place."""
    found: list[str] = []
    home = environ.get(facts.CANN_HOME_VARIABLE, "").rstrip("/")
    if home.startswith("/"):
        found += [f"{home}/{facts.CANN_SET_ENV}", f"{os.path.dirname(home)}/{facts.CANN_SET_ENV}"]
    found.append(f"{facts.CANN_TOOLKIT_DIR}/{facts.CANN_SET_ENV}")
    return list(dict.fromkeys(found))


def find_set_env(environ: Mapping[str, str], host: HostPath = _same) -> list[SetEnv]:
    """The CANN set_env.sh scripts present, toolkit first, each marked when it must not be sourced."""
    scripts: list[SetEnv] = []
    for path in toolkit_candidates(environ):
        if os.path.isfile(host(path)):
            directory = os.path.dirname(path)
            skip = _skip(TOOLKIT_MARKER, directory, environ, host)
            scripts.append(SetEnv(path, "CANN toolkit", host(path), skip))
            break
    atb = f"{facts.CANN_ATB_DIR}/{facts.CANN_SET_ENV}"
    if os.path.isfile(host(atb)):
        skip = _skip(ATB_MARKER, os.path.dirname(atb), environ, host)
        scripts.append(SetEnv(atb, "CANN ATB", host(atb), skip))
    return scripts
