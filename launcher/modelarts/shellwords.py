"""How the boot-line lint reads a shell line: words, simple commands, the words in front of a program,
options, and ``$NAME`` expansion for paths. Not a shell: just enough to find the program and its script.

Pure; :mod:`shlex` is imported only when a line is split.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Optional

SEPARATORS = frozenset({";", "&&", "||", "|", "|&", "&", ";;", "(", ")", "\n"})
REDIRECTIONS = frozenset({">", ">>", "<", "<<", "<<<", ">&", "&>", "&>>", "<&", ">|", "<>"})
WRAPPERS = frozenset({"exec", "nohup", "time", "command", "builtin"})
#: Characters that keep a path from being checked: it still depends on the shell.
UNRESOLVED = frozenset("$`*?[~")


def tokenize(line: str) -> list[str]:
    """Shell words and operators of ``line``; a missing closing quote is assumed at the end."""
    import shlex

    for suffix in ("", '"', "'"):
        lexer = shlex.shlex(line + suffix, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            return list(lexer)
        except ValueError:
            continue
    return line.split()


def split_commands(tokens: Sequence[str]) -> list[tuple[list[str], str]]:
    """Simple commands with the operator that ends each (``""`` for the last), redirections dropped."""
    commands: list[tuple[list[str], str]] = []
    words: list[str] = []
    skip = False
    for token in tokens:
        if skip:
            skip = False
            continue
        if token in SEPARATORS:
            commands.append((words, token))
            words = []
        elif token in REDIRECTIONS:
            skip = True
        else:
            words.append(token)
    if words:
        commands.append((words, ""))
    return [(w, op) for w, op in commands if w or op == "&"]


def command_name(word: str) -> str:
    """The file name a command word runs (``/usr/bin/python3/`` → ``python3``)."""
    return word.rstrip("/").rsplit("/", 1)[-1]


def _is_name_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


def is_variable_name(text: str) -> bool:
    """A shell variable name: an ASCII letter or ``_``, then ASCII letters, digits and ``_``."""
    return text.isascii() and text.isidentifier()


def assigned_name(word: str) -> Optional[str]:
    """``NAME`` of a ``NAME=value`` word, else None."""
    name, equals, _value = word.partition("=")
    return name if equals and is_variable_name(name) else None


def strip_prefix(words: list[str], assigned: list[str]) -> list[str]:
    """Drop leading ``NAME=value`` words (appending the names to ``assigned``) and wrappers such as
    ``exec``, ``env [-u NAME]`` and ``stdbuf -oL``."""
    i = 0
    while i < len(words):
        word = words[i]
        name = assigned_name(word)
        if name is not None:
            assigned.append(name)
            i += 1
        elif word in WRAPPERS:
            i += 1
        elif command_name(word) == "env":
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 2 if words[i] in ("-u", "--unset", "-C", "--chdir") else 1
        elif command_name(word) == "stdbuf":
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 1
        else:
            break
    return words[i:]


def _substitute(word: str, environ: Mapping[str, str]) -> Optional[str]:
    """``word`` with ``$NAME`` and ``${NAME}`` replaced from ``environ``; None for a variable that is not
    there or any other use of ``$``."""
    parts: list[str] = []
    i = 0
    while True:
        dollar = word.find("$", i)
        if dollar < 0:
            return "".join([*parts, word[i:]])
        parts.append(word[i:dollar])
        if word[dollar + 1 : dollar + 2] == "{":
            end = word.find("}", dollar)
            name, i = (word[dollar + 2 : end], end + 1) if end > 0 else ("", len(word))
        else:
            end = dollar + 1
            while end < len(word) and _is_name_char(word[end]):
                end += 1
            name, i = word[dollar + 1 : end], end
        if not is_variable_name(name) or name not in environ:
            return None
        parts.append(environ[name])


def expand(word: str, environ: Mapping[str, str]) -> Optional[str]:
    """``word`` with variables from ``environ`` expanded; None when it cannot be resolved (an unknown
    variable, or a ``$``, backquote, wildcard or ``~`` left after expansion)."""
    expanded = _substitute(word, environ)
    if expanded is None or not UNRESOLVED.isdisjoint(expanded):
        return None
    return expanded


def first_operand(args: Sequence[str], value_options: frozenset[str], stops: frozenset[str]) -> Optional[str]:
    """The first argument that is not an option; None when an option in ``stops`` (``-c``, ``-m``) comes
    first or there is none."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return args[i + 1] if i + 1 < len(args) else None
        if arg in stops or arg[:2] in stops:
            return None
        if arg in value_options:
            i += 2
            continue
        if arg.startswith(("-", "+")) and arg not in ("-", "+"):
            i += 1
            continue
        return None if arg == "-" else arg
    return None
