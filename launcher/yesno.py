"""The one reading of yes/no values (``MA_LAUNCH_QUIET=1``, ``MA_LAUNCH_DEBUG=false``…).

Standard library and :mod:`launcher.errors` only, so that every layer (the option parser, the LD analysis's
debug output, the supervisor) can read a switch the same way: ``1 true yes on`` mean yes; ``0 false no
off`` and the empty value mean no; case and surrounding blanks do not matter.
"""

from __future__ import annotations

from launcher.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional

YES = ("1", "true", "yes", "on")
NO = ("0", "false", "no", "off", "")


def yes_no(raw: str, where: str) -> bool:
    """The switch ``raw`` (given as ``where``, e.g. ``MA_LAUNCH_QUIET``); UsageError (exit 2) when it is
    neither a yes nor a no."""
    word = raw.strip().lower()
    if word in YES:
        return True
    if word in NO:
        return False
    raise UsageError(f"{where}={raw!r} is not a yes/no value", hint=f"set {where} to 1 or 0")


def is_yes(raw: Optional[str]) -> bool:
    """Whether ``raw`` is a yes; never raises (anything that is not a yes is a no), for the places that
    must not fail, such as deciding whether to print debug output."""
    return raw is not None and raw.strip().lower() in YES


def env_yes(environ: Mapping[str, str], name: str) -> bool:
    """Whether the variable ``name`` is set to a yes (``MA_LAUNCH_DEBUG``); never raises."""
    return is_yes(environ.get(name))
