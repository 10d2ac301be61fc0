"""Shell dialects for ``--dry-run``: how each shell quotes a word and spells the one-line boot command.

The line always has the same shape, ``cd DIR && exec env [-u NAME]... [--] [NAME=VALUE]... PROGRAM ARGS...``:
``env`` sets and unsets variables whatever their names (``BATCH_job.0_HOSTS`` cannot be exported by any
shell, and dash drops it from the environment it passes on), then execs the program the planner resolved
(by its path, as the real run does). Only the quoting, and the inherited variables a shell keeps for
itself, differ between shells, so each dialect is a ``quote`` function and a set of names; everything else
is shared.

Values may hold any byte but NUL (non-UTF-8 bytes arrive as surrogate escapes and are written back as the
original bytes).
"""

from __future__ import annotations

from launcher.core.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Callable, Optional

_POSIX_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")


def _is_safe(word: str) -> bool:
    """Whether ``word`` means itself unquoted in every shell here. A leading ``=`` does not: zsh expands
    ``=cmd`` to the path of cmd, and tcsh ``=N`` to a directory-stack entry."""
    return bool(word) and not word.startswith("=") and all(c in _POSIX_SAFE for c in word)


def quote_posix(word: str) -> str:
    """Quote ``word`` for sh, dash, bash, zsh and ksh: single quotes, ``'`` spelled ``'\\''``."""
    if _is_safe(word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def quote_fish(word: str) -> str:
    """Quote ``word`` for fish, where ``\\`` and ``'`` are escapes even inside single quotes."""
    if _is_safe(word):
        return word
    return "'" + word.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_csh(word: str) -> str:
    """Quote ``word`` for csh and tcsh.

    History expansion sees ``!`` even inside single quotes, and a newline must be escaped inside them; each
    is written as its own escaped piece (``\\!`` bare, ``'\\<newline>'``) so that no backslash of the value
    can pair with the escape.
    """
    if _is_safe(word):
        return word
    out: list[str] = []
    run: list[str] = []

    def close_run() -> None:
        if run:
            out.append("'" + "".join(run).replace("'", "'\\''") + "'")
            run.clear()

    for char in word:
        if char == "!":
            close_run()
            out.append("\\!")
        elif char == "\n":
            close_run()
            out.append("'\\\n'")
        else:
            run.append(char)
    close_run()
    return "".join(out) or "''"


class Dialect(Record):
    """How one family of shells spells the boot line: its name, how it quotes a word, whether
    ``${VAR:+:$VAR}`` works (so a prepended PATH can refer to the value at run time), and the inherited
    variables it does not pass on to a program as they are (it keeps the names for itself, or sets them at
    start-up), which the line restates."""

    __slots__ = ("name", "posix_expansion", "quote", "reserved")

    def __init__(
        self,
        name: str,
        quote: Callable[[str], str],
        *,
        posix_expansion: bool,
        reserved: frozenset[str] = frozenset(),
    ) -> None:
        self.name = name
        self.quote = quote
        self.posix_expansion = posix_expansion
        self.reserved = reserved


POSIX = Dialect("posix", quote_posix, posix_expansion=True)
#: fish drops its read-only and special variables from what it inherits (``argv`` and ``IFS`` it empties);
#: measured with fish 3.6 (tests/system/test_dryrun_shells.py checks each).
FISH = Dialect(
    "fish",
    quote_fish,
    posix_expansion=False,
    reserved=frozenset(
        {
            "argv",
            "status",
            "pipestatus",
            "status_generation",
            "history",
            "hostname",
            "version",
            "FISH_VERSION",
            "fish_pid",
            "fish_kill_signal",
            "fish_killring",
            "fish_user_paths",
            "umask",
            "CMD_DURATION",
            "IFS",
        }
    ),
)
#: tcsh sets these at start-up over inherited values.
CSH = Dialect(
    "csh", quote_csh, posix_expansion=False, reserved=frozenset({"HOST", "HOSTTYPE", "MACHTYPE", "VENDOR"})
)

_ALIASES = {
    "sh": POSIX,
    "dash": POSIX,
    "ash": POSIX,
    "bash": POSIX,
    "zsh": POSIX,
    "ksh": POSIX,
    "mksh": POSIX,
    "busybox": POSIX,
    "posix": POSIX,
    "fish": FISH,
    "csh": CSH,
    "tcsh": CSH,
}

SHELL_NAMES = tuple(sorted(_ALIASES))


def dialect_for(name: str) -> Optional[Dialect]:
    """The dialect for a shell name (``bash``, ``/usr/bin/fish``…), or ``None`` when unknown."""
    base = name.rsplit("/", 1)[-1].lower()
    if base.startswith("-"):  # login shells show up as "-bash"
        base = base[1:]
    return _ALIASES.get(base)


class Assignment(Record):
    """One ``NAME=VALUE`` for the line; ``prepend`` marks a list variable whose new entries go in front of
    the value the shell holds at run time, and ``copy_of`` a variable that copies another's value at run
    time (each only rendered that way where the shell can say it exactly)."""

    __slots__ = ("copy_of", "name", "prepend", "value")

    def __init__(
        self, name: str, value: str, prepend: tuple[str, ...] = (), copy_of: Optional[str] = None
    ) -> None:
        self.name = name
        self.value = value
        self.prepend = prepend
        self.copy_of = copy_of


def render_line(
    dialect: Dialect,
    workdir: str,
    unset: Sequence[str],
    assign: Sequence[Assignment],
    argv: Sequence[str],
) -> str:
    """The one-line boot command that changes directory, sets the environment and execs ``argv``.

    ``env`` would take a word starting with ``-`` for one of its options: ``--`` then ends them, before
    the assignments (an inherited ``-x=1``) and the program."""
    q = dialect.quote
    words = ["exec", "env"]
    for name in unset:
        words += ["-u", q(name)]
    if argv[0].startswith("-") or any(item.name.startswith("-") for item in assign):
        words.append("--")
    for item in assign:
        words.append(_assignment(dialect, item))
    if "=" in argv[0]:
        # env would take the program for an assignment; let sh exec it instead.
        words += ["sh", "-c", q('exec "$0" "$@"')]
    words += [q(a) for a in argv]
    return f"cd {q(workdir)} && " + " ".join(words)


def _assignment(dialect: Dialect, item: Assignment) -> str:
    q = dialect.quote
    if item.prepend and dialect.posix_expansion:
        head = ":".join(item.prepend)
        return q(f"{item.name}={head}") + f'"${{{item.name}:+:${item.name}}}"'
    if item.copy_of and dialect.posix_expansion:
        return q(f"{item.name}=") + f'"${{{item.copy_of}-}}"'
    return q(f"{item.name}={item.value}")
