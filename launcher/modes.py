"""The modes of ma-launch's options, in one place: the words each accepts (the option table's choices),
their ``Literal`` types (checked by mypy, free at run time) and the one parser of a mode word; and the one
reading of yes/no switches (``MA_LAUNCH_QUIET=1``, ``MA_LAUNCH_DEBUG=false``…): ``1 true yes on`` mean
yes; ``0 false no off`` and the empty value mean no; case and surrounding blanks do not matter.

Standard library only and cheap to import: the option table, the planner and the supervisor all read it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Literal, Optional, TypeVar

    LdMode = Literal["auto", "prefix", "off"]
    ChannelMode = Literal["pass", "env", "drop"]
    RankTableMode = Literal["auto", "off"]
    InitMode = Literal["auto", "always", "never"]
    CannMode = Literal["auto", "off"]
    StopSignal = Literal["TERM", "INT", "HUP", "QUIT", "USR1", "USR2"]
    Mode = TypeVar("Mode", bound=str)

#: ``--ld-library-path``: exactly what the loader would miss, the env's lib first, or nothing.
LD_MODES: tuple[LdMode, ...] = ("auto", "prefix", "off")
#: ``--channel-args``: what to do with the channel arguments the platform appends.
CHANNEL_MODES: tuple[ChannelMode, ...] = ("pass", "env", "drop")
#: ``--rank-table``: wait for and convert the Ascend rank table when one is announced, or not.
RANK_TABLE_MODES: tuple[RankTableMode, ...] = ("auto", "off")
#: ``--init``: supervise the program (``auto``: when PID 1).
INIT_MODES: tuple[InitMode, ...] = ("auto", "always", "never")
#: ``--cann``: source the Ascend CANN toolkit's set_env.sh when the image has it, or never.
CANN_MODES: tuple[CannMode, ...] = ("auto", "off")
#: ``--stop-signal``: what the program gets first when the job is asked to stop (without ``SIG``).
STOP_SIGNALS: tuple[StopSignal, ...] = ("TERM", "INT", "HUP", "QUIT", "USR1", "USR2")


def parse_mode(text: str, modes: Sequence[Mode], option: str) -> Mode:
    """The mode among ``modes`` named ``text``; a usage error (exit 2) naming ``option`` for any other
    word."""
    for mode in modes:
        if text == mode:
            return mode
    from launcher.errors import UsageError

    raise UsageError(f"{option} {text!r} is not one of {', '.join(modes)}", hint=f"use {option} {modes[0]}")


#: The words of a yes and of a no.
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
    from launcher.errors import UsageError

    raise UsageError(f"{where}={raw!r} is not a yes/no value", hint=f"set {where} to 1 or 0")


def is_yes(raw: Optional[str]) -> bool:
    """Whether ``raw`` is a yes; never raises (anything that is not a yes is a no), for the places that
    must not fail, such as deciding whether to print debug output."""
    return raw is not None and raw.strip().lower() in YES


def env_yes(environ: Mapping[str, str], name: str) -> bool:
    """Whether the variable ``name`` is set to a yes (``MA_LAUNCH_DEBUG``); never raises."""
    return is_yes(environ.get(name))
