"""What kind of program a command runs: the one reading of a script's ``#!`` line (for the plan, the LD
analysis and doctor) and the one answer to "is this Python?".

A Python interpreter is a file named ``python``, ``python3``, ``python3.11`` (an ABI letter such as
``python3.7m`` included) or ``pypy``/``pypy3``; ``python3-config`` and ``pythonw`` are not. A script runs
Python when its ``#!`` line names such an interpreter, directly or through ``/usr/bin/env``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Optional


def read_shebang(path: str) -> Optional[list[str]]:
    """The words of a script's ``#!`` line (interpreter first), or ``None`` when ``path`` has none."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "surrogateescape").split()
    return words or None


_STEMS = ("python", "pypy")
_ABI_LETTERS = ("m", "d", "u")


def is_python_name(word: str) -> bool:
    """Whether the file name of ``word`` (a name or a path) is that of a Python interpreter."""
    name = word.rstrip("/").rsplit("/", 1)[-1]
    for stem in _STEMS:
        if name.startswith(stem):
            rest = name[len(stem) :]
            if rest[-1:] in _ABI_LETTERS and rest[:-1]:
                rest = rest[:-1]
            return all(char.isdigit() or char == "." for char in rest)
    return False


def interpreter_args(words: Sequence[str]) -> Optional[list[str]]:
    """For ``python [-u]… ARGS`` (any interpreter :func:`is_python_name` accepts), the words after the
    interpreter and its ``-u`` flags; ``None`` when ``words`` does not start with an interpreter. Launchers
    that start the interpreter themselves (torchrun, msrun) take these words."""
    if not words or not is_python_name(words[0]):
        return None
    rest = list(words[1:])
    while rest and rest[0] == "-u":
        rest = rest[1:]
    return rest


def shebang_interpreter(words: Sequence[str]) -> Optional[str]:
    """The program a ``#!`` line runs: its first word, or for ``/usr/bin/env [-S] [NAME=V]… PROG`` the
    program ``env`` looks up."""
    if not words:
        return None
    if os.path.basename(words[0]) != "env":
        return words[0]
    for word in words[1:]:
        if not word.startswith("-") and "=" not in word:
            return word
    return None


def runs_python(program: Optional[str], argv0: str) -> bool:
    """Whether the command is a Python interpreter (by name) or a script whose ``#!`` line runs one."""
    if is_python_name(argv0):
        return True
    if program is None:
        return False
    interpreter = shebang_interpreter(read_shebang(program) or ())
    return interpreter is not None and is_python_name(interpreter)
