"""The channel arguments ModelArts appends to the boot command, and what to do with them.

The platform adds its input/output channels (and hyper-parameters) at the **end** of the boot command, as
``--data_url=/home/ma-user/modelarts/inputs/data_url_0/`` or ``--data_url /home/…``. Programs that reject
unknown flags fail on them. :func:`split_channel_args` finds the trailing run of such arguments and, by mode,
leaves them (``pass``), turns them into environment variables (``env``: ``data_url=/home/…``) or removes
them (``drop``).

Only the trailing run counts: an argument is taken only when it and every argument after it are channel
arguments. A user's own ``--data_url`` earlier in the command, or a similar name (``--data_url_extra``,
``--my_data_url``), is never touched.

Which names are channel names: those listed in ``MA_INPUTS`` and ``MA_OUTPUTS`` when either is set and
yields a name, else the ``names`` given (``data_url,train_url`` by default). Their format is not documented,
so these are all accepted: a JSON list of objects with a ``name``, ``input_name`` or ``output_name`` key; a
JSON list of strings; one such JSON object; or names separated by commas (or whitespace). A value that
starts like JSON but does not parse gives no names; a name must start with an ASCII letter or ``_`` and
hold only ASCII letters, digits, ``_``, ``.`` and ``-``. Pure.
"""

from __future__ import annotations

from launcher.core.record import Record
from launcher.modelarts.facts import CHANNEL_NAMES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Optional

    from launcher.modes import ChannelMode


NAME_KEYS = ("name", "input_name", "output_name")
CHANNEL_SOURCES = ("MA_INPUTS", "MA_OUTPUTS")


class ChannelSplit(Record):
    """``argv``: the command to run; ``env``: variables to add (mode ``env``); ``removed``: the arguments
    taken off the end, as they were; ``names``: the channel names that counted; ``names_from``: where those
    came from (``MA_INPUTS``/``MA_OUTPUTS`` or ``--channel-names``)."""

    __slots__ = ("argv", "env", "names", "names_from", "removed")

    def __init__(
        self,
        argv: list[str],
        env: Optional[dict[str, str]] = None,
        removed: Optional[list[str]] = None,
        names: tuple[str, ...] = (),
        names_from: str = "",
    ) -> None:
        self.argv = argv
        self.env = env if env is not None else {}
        self.removed = removed if removed is not None else []
        self.names = names
        self.names_from = names_from


def _is_name(text: str) -> bool:
    """A usable channel name: an ASCII letter or ``_``, then letters, digits, ``_``, ``.`` or ``-``."""
    return (
        text[:1].isascii()
        and (text[:1].isalpha() or text[:1] == "_")
        and all(char.isascii() and (char.isalnum() or char in "_.-") for char in text)
    )


def _names_in(value: object) -> list[str]:
    """Names in parsed JSON: strings, or objects with one of :data:`NAME_KEYS`, alone or in a list."""
    found: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            found.append(item.strip())
        elif isinstance(item, dict):
            name = next((item[key] for key in NAME_KEYS if isinstance(item.get(key), str)), None)
            if name is not None:
                found.append(name.strip())
    return found


def parse_channel_list(raw: str) -> list[str]:
    """Channel names from one ``MA_INPUTS``/``MA_OUTPUTS`` value (see the module's documentation). Text
    that is not a usable name is skipped; nothing usable gives an empty list."""
    text = raw.strip()
    if text[:1] in ("[", "{"):
        import json

        try:
            names = _names_in(json.loads(text))
        except (ValueError, RecursionError):
            names = []  # looks like JSON but is not (or is nested absurdly deep): no names, not fragments
    else:
        names = [part.strip("'\"") for part in text.replace(",", " ").split()]
    return [n for n in dict.fromkeys(names) if _is_name(n)]


def channel_names(environ: Mapping[str, str], default: Iterable[str]) -> tuple[tuple[str, ...], str]:
    """The channel names and where they came from: ``MA_INPUTS``/``MA_OUTPUTS``, else the non-empty
    names of ``default``."""
    names: list[str] = []
    sources: list[str] = []
    for var in CHANNEL_SOURCES:
        raw = environ.get(var)
        if raw:
            found = parse_channel_list(raw)
            if found:
                sources.append(var)
                names.extend(found)
    if names:
        return tuple(dict.fromkeys(names)), "+".join(sources)
    return tuple(dict.fromkeys(name for name in default if name)), "--channel-names"


def _parse_at(argv: Sequence[str], i: int, names: frozenset[str]) -> Optional[tuple[str, str, int]]:
    """A channel argument starting at ``argv[i]``: (name, value, number of words), or None."""
    word = argv[i]
    if not word.startswith("--"):
        return None
    body = word[2:]
    if "=" in body:
        name, value = body.split("=", 1)
        return (name, value, 1) if name in names else None
    if body in names and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
        return body, argv[i + 1], 2
    return None


def trailing_start(argv: Sequence[str], names: Sequence[str]) -> int:
    """Where the trailing run of channel arguments begins (``len(argv)`` when there is none). ``argv[0]``,
    the program, is never part of it."""
    wanted = frozenset(names)
    n = len(argv)
    # complete[i]: argv[i:] is a sequence of channel arguments and nothing else.
    complete = [False] * (n + 1)
    complete[n] = True
    for i in range(n - 1, 0, -1):
        found = _parse_at(argv, i, wanted)
        complete[i] = found is not None and complete[i + found[2]]
    for i in range(1, n):
        if complete[i]:
            return i
    return n


def env_name(channel: str) -> str:
    """The variable a channel becomes: its name with characters a shell cannot export replaced by ``_``."""
    name = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in channel)
    return "_" + name if name[:1].isdigit() else name


def split_channel_args(
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    mode: ChannelMode = "pass",
    names: Sequence[str] = CHANNEL_NAMES,
) -> ChannelSplit:
    """Apply ``mode`` (``pass``, ``env`` or ``drop``) to the trailing channel
    arguments of ``argv``.

    With ``env``, a channel given twice keeps its last value.
    """
    wanted, source = channel_names(environ, names)
    if mode == "pass":
        return ChannelSplit(list(argv), names=wanted, names_from=source)
    start = trailing_start(argv, wanted)
    env: dict[str, str] = {}
    i = start
    while i < len(argv):
        found = _parse_at(argv, i, frozenset(wanted))
        if found is None:  # cannot happen: every word from ``start`` on parses
            break
        name, value, width = found
        if mode == "env":
            env[env_name(name)] = value
        i += width
    return ChannelSplit(list(argv[:start]), env, list(argv[start:]), wanted, source)
