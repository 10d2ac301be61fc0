"""Warnings about boot commands that are known to fail or misbehave on ModelArts.

:func:`lint` looks at the command (an argument list, or the ``-c`` shell line) and reports each problem as a
:class:`LintWarning` with a stable ``code``, a one-line ``message`` and a ``hint`` naming the fix:

``bash-runs-python``   ``bash``/``sh`` given a ``.py`` file
``background``         a ``&`` that puts a command in the background (the job may never leave "Running",
                       and its status no longer comes from the training process)
``conda-activate``     ``conda activate``: fails outside an interactive shell
``conda-run-captures`` ``conda run`` without ``--no-capture-output``/``-s``/``--live-stream``: logs arrive
                       only when the job ends
``run-train-sh``       ``run_train.sh`` (the old service's wrapper) on the new service, where its ``DLS_*``
                       variables are missing
``missing-script``     a relative script (the first argument of python/bash/sh/source, or the command
                       itself when it is a relative path with a slash) that does not exist from the
                       working directory (``cd`` in the line is followed)
``ma-variable``        a user variable whose name starts with ``MA_`` (reserved by ModelArts; this tool's own
                       ``MA_LAUNCH_*`` settings excepted)

Shell lines are split into words with :mod:`shlex` (unbalanced quotes tolerated) and into simple commands
at ``;``, ``&&``, ``||``, ``|`` and ``&``. ``$NAME``/``${NAME}`` are expanded from ``environ`` only to
resolve paths; a path that still holds ``$``, a backquote or a wildcard is not checked. Pure apart from
checking whether files exist.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from launcher.modelarts.platform import Platform

SHELLS = frozenset({"bash", "sh", "dash", "zsh", "ksh", "ash"})
SOURCE = frozenset({"source", "."})
WRAPPERS = frozenset({"exec", "nohup", "time", "command", "builtin"})
SEPARATORS = frozenset({";", "&&", "||", "|", "|&", "&", ";;", "(", ")", "\n"})
REDIRECTIONS = frozenset({">", ">>", "<", "<<", "<<<", ">&", "&>", "&>>", "<&", ">|", "<>"})
CONDA_LIVE = frozenset({"--no-capture-output", "-s", "--live-stream"})
OWN_PREFIX = "MA_LAUNCH_"

_PYTHON = re.compile(r"python[0-9.]*[mdu]?\Z")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
# python options that take a value in the next word
_PYTHON_VALUE_OPTIONS = frozenset({"-W", "-X", "-Q"})
_SHELL_VALUE_OPTIONS = frozenset({"-o", "-O", "+o", "+O", "--rcfile", "--init-file"})


@dataclass(frozen=True)
class LintWarning:
    """One problem: a stable ``code``, a one-line ``message``, a ``hint`` naming the fix."""

    code: str
    message: str
    hint: str


def tokenize(line: str) -> list[str]:
    """Shell words and operators of ``line``; a missing closing quote is assumed at the end."""
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


def _name(word: str) -> str:
    return word.rstrip("/").rsplit("/", 1)[-1]


def _strip_prefix(words: list[str], assigned: list[str]) -> list[str]:
    """Drop leading ``NAME=value`` words (recording the names) and wrappers such as ``exec``/``env``."""
    i = 0
    while i < len(words):
        word = words[i]
        match = _ASSIGNMENT.match(word)
        if match:
            assigned.append(match.group(1))
            i += 1
        elif word in WRAPPERS:
            i += 1
        elif _name(word) == "env":
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 2 if words[i] in ("-u", "--unset", "-C", "--chdir") else 1
        elif _name(word) == "stdbuf":
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 1
        else:
            break
    return words[i:]


def _expand(word: str, environ: Mapping[str, str]) -> Optional[str]:
    """``word`` with variables from ``environ`` expanded; None when it cannot be resolved."""
    expanded = _VAR.sub(lambda m: environ.get(m.group(1) or m.group(2), "$?"), word)
    if "$" in expanded or "`" in expanded or any(c in expanded for c in "*?[~"):
        return None
    return expanded


def _first_operand(
    args: Sequence[str], value_options: frozenset[str], stops: frozenset[str]
) -> Optional[str]:
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


class _Linter:
    def __init__(self, environ: Mapping[str, str], platform: Platform, workdir: str) -> None:
        self.environ = environ
        self.platform = platform
        self.cwd: Optional[str] = workdir
        self.warnings: list[LintWarning] = []
        self.assigned: list[str] = []

    def warn(self, code: str, message: str, hint: str) -> None:
        warning = LintWarning(code, message, hint)
        if warning not in self.warnings:
            self.warnings.append(warning)

    def line(self, line: str) -> None:
        tokens = tokenize(line)
        commands = split_commands(tokens)
        for index, (words, op) in enumerate(commands):
            if op == "&":
                last = all(not w for w, _ in commands[index + 1 :])
                shown = " ".join(words) or "the command"
                where = "ends the line" if last else "follows"
                self.warn(
                    "background",
                    f"`&` {where} `{shown}`: it runs in the background, so the job may never finish and its "
                    "status does not come from it",
                    "remove the `&` and make the training program the last command of the line",
                )
            self.command(words)

    def command(self, words: list[str]) -> None:
        words = _strip_prefix(words, self.assigned)
        if not words:
            return
        head = words[0]
        name = _name(head)
        args = words[1:]
        if name == "export":
            for arg in args:
                match = _ASSIGNMENT.match(arg)
                self.assigned.append(match.group(1) if match else arg)
            return
        if name == "cd":
            self.change_directory(args)
            return
        if any(_name(w) == "run_train.sh" for w in words) and self.platform.kind == "v2":
            self.warn(
                "run-train-sh",
                "run_train.sh is the old training service's wrapper; on this service its DLS_* variables are "
                "missing",
                "run the program directly: ma-launch -n ENV -- python train.py …",
            )
        if name == "conda" and args[:1] == ["activate"]:
            self.warn(
                "conda-activate",
                "`conda activate` fails in a boot command: it is not an interactive shell",
                "let ma-launch activate the env: ma-launch -n ENV -- …",
            )
        if name == "conda" and "run" in args[:3] and not CONDA_LIVE.intersection(args):
            self.warn(
                "conda-run-captures",
                "`conda run` holds all output back until the command exits (logs arrive late or never)",
                "use ma-launch -n ENV -- …, or add --no-capture-output to conda run",
            )
        if name in SHELLS:
            if "-c" in args[:3]:
                index = args.index("-c")
                if index + 1 < len(args):
                    self.line(args[index + 1])
                return
            script = _first_operand(args, _SHELL_VALUE_OPTIONS, frozenset())
            if script is not None and script.endswith(".py"):
                self.warn(
                    "bash-runs-python",
                    f"{name} is given the Python file {script}",
                    f"run it with python: ma-launch -- python {script}",
                )
            self.check_path(script, f"{name}'s script")
        elif _PYTHON.match(name):
            script = _first_operand(args, _PYTHON_VALUE_OPTIONS, frozenset({"-m", "-c"}))
            self.check_path(script, "python's script")
        elif name in SOURCE:
            self.check_path(args[0] if args else None, f"the file given to {name}")
        if "/" in head:
            self.check_path(head, "the command")

    def change_directory(self, args: list[str]) -> None:
        target = args[0] if args else self.environ.get("HOME")
        if self.cwd is None or target is None or target == "-":
            self.cwd = None
            return
        path = _expand(target, self.environ)
        if path is None:
            self.cwd = None
            return
        path = os.path.join(self.cwd, path)
        # A directory that is not there yet (code still to be downloaded) makes later paths unknowable.
        self.cwd = path if os.path.isdir(path) else None

    def check_path(self, word: Optional[str], what: str) -> None:
        if word is None or self.cwd is None:
            return
        path = _expand(word, self.environ)
        if path is None or os.path.isabs(path) or not path:
            return
        if not os.path.exists(os.path.join(self.cwd, path)):
            self.warn(
                "missing-script",
                f"{what} {word} does not exist in {self.cwd} (a relative path depends on the directory)",
                f"use an absolute path such as ${{MA_JOB_DIR}}/code/{os.path.basename(path)}, or --workdir",
            )


def lint(
    argv: Sequence[str],
    *,
    shell_line: Optional[str],
    environ: Mapping[str, str],
    platform: Platform,
    workdir: str,
    user_env_names: Iterable[str] = (),
) -> list[LintWarning]:
    """Every warning for the command ``argv`` (or, when ``shell_line`` is given, for that ``-c`` line)
    run from ``workdir``, in the order found; ``user_env_names`` are the variables the user sets (their
    ``--env`` options, the env's own variables)."""
    linter = _Linter(environ, platform, workdir)
    if shell_line is not None:
        linter.line(shell_line)
    elif argv:
        words = list(argv)
        if words[-1] == "&":
            linter.warn(
                "background",
                "the command ends with a literal `&` argument (in a boot line it runs in the background)",
                "remove the `&`",
            )
            words = words[:-1]
        linter.command(words)
    names = [*user_env_names, *linter.assigned]
    for name in dict.fromkeys(names):
        if name.startswith("MA_") and not name.startswith(OWN_PREFIX):
            linter.warn(
                "ma-variable",
                f"the variable {name} starts with MA_, which ModelArts reserves for its own settings",
                f"rename {name} (ModelArts asks users not to define MA_* variables)",
            )
    return linter.warnings
