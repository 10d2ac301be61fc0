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

Shell lines are read by :mod:`launcher.modelarts.shellwords`: split into words with :mod:`shlex`
(unbalanced quotes tolerated) and into simple commands at ``;``, ``&&``, ``||``, ``|`` and ``&``.
``$NAME``/``${NAME}`` are expanded from ``environ`` only to resolve paths; a path that still holds ``$``, a
backquote or a wildcard is not checked. A Python interpreter is what
:func:`launcher.core.programs.is_python_name` says (``python3.7m`` and ``pypy3`` too). Words in messages are
escaped to one line. Pure apart from checking whether files exist.
"""

from __future__ import annotations

import os

from launcher.core.programs import is_python_name
from launcher.core.record import Record
from launcher.errors import one_line
from launcher.modelarts.shellwords import (
    assigned_name,
    command_name,
    expand,
    first_operand,
    split_commands,
    strip_prefix,
    tokenize,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Literal, Optional

    from launcher.modelarts.platform import Platform

    LintCode = Literal[
        "bash-runs-python",
        "background",
        "conda-activate",
        "conda-run-captures",
        "run-train-sh",
        "missing-script",
        "ma-variable",
        # preflight (launcher.modelarts.devices)
        "gpus-visible",
        "nproc-visible",
        "devices-listed",
    ]

SHELLS = frozenset({"bash", "sh", "dash", "zsh", "ksh", "ash"})
SOURCE = frozenset({"source", "."})
CONDA_LIVE = frozenset({"--no-capture-output", "-s", "--live-stream"})
OWN_PREFIX = "MA_LAUNCH_"

# python options that take a value in the next word
_PYTHON_VALUE_OPTIONS = frozenset({"-W", "-X", "-Q"})
_SHELL_VALUE_OPTIONS = frozenset({"-o", "-O", "+o", "+O", "--rcfile", "--init-file"})


class LintWarning(Record):
    """One problem: a stable ``code``, a one-line ``message``, a ``hint`` naming the fix."""

    __slots__ = ("code", "hint", "message")

    def __init__(self, code: LintCode, message: str, hint: str) -> None:
        self.code = code
        self.message = message
        self.hint = hint


class _Linter:
    """Walks the commands of a boot line, following ``cd``, and collects the warnings."""

    def __init__(self, environ: Mapping[str, str], platform: Platform, workdir: str) -> None:
        self.environ = environ
        self.platform = platform
        self.cwd: Optional[str] = workdir
        self.warnings: list[LintWarning] = []
        self.assigned: list[str] = []

    def warn(self, code: LintCode, message: str, hint: str) -> None:
        warning = LintWarning(code, message, hint)
        if warning not in self.warnings:
            self.warnings.append(warning)

    def line(self, line: str) -> None:
        commands = split_commands(tokenize(line))
        for index, (words, op) in enumerate(commands):
            if op == "&":
                last = all(not w for w, _ in commands[index + 1 :])
                shown = one_line(" ".join(words)) or "the command"
                where = "ends the line" if last else "follows"
                self.warn(
                    "background",
                    f"`&` {where} `{shown}`: it runs in the background, so the job may never finish and its "
                    "status does not come from it",
                    "remove the `&` and make the training program the last command of the line",
                )
            self.command(words)

    def command(self, words: list[str]) -> None:
        words = strip_prefix(words, self.assigned)
        if not words:
            return
        head, args = words[0], words[1:]
        name = command_name(head)
        if name == "export":
            self.assigned.extend(assigned_name(arg) or arg for arg in args)
            return
        if name == "cd":
            self.change_directory(args)
            return
        self.platform_rules(name, words)
        if name in SHELLS:
            if "-c" in args[:3]:
                index = args.index("-c")
                if index + 1 < len(args):
                    self.line(args[index + 1])
                return
            self.shell_script(name, first_operand(args, _SHELL_VALUE_OPTIONS, frozenset()))
        elif is_python_name(name):
            script = first_operand(args, _PYTHON_VALUE_OPTIONS, frozenset({"-m", "-c"}))
            self.check_path(script, "python's script")
        elif name in SOURCE:
            self.check_path(args[0] if args else None, f"the file given to {name}")
        if "/" in head:
            self.check_path(head, "the command")

    def platform_rules(self, name: str, words: list[str]) -> None:
        """The rules about ModelArts and conda: run_train.sh, conda activate, conda run."""
        args = words[1:]
        if self.platform.kind == "v2" and any(command_name(w) == "run_train.sh" for w in words):
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

    def shell_script(self, shell: str, script: Optional[str]) -> None:
        if script is not None and script.endswith(".py"):
            shown = one_line(script)
            self.warn(
                "bash-runs-python",
                f"{shell} is given the Python file {shown}",
                f"run it with python: ma-launch -- python {shown}",
            )
        self.check_path(script, f"{shell}'s script")

    def change_directory(self, args: list[str]) -> None:
        target = args[0] if args else self.environ.get("HOME")
        if self.cwd is None or target is None or target == "-":
            self.cwd = None
            return
        path = expand(target, self.environ)
        if path is None:
            self.cwd = None
            return
        path = os.path.join(self.cwd, path)
        # A directory that is not there yet (code still to be downloaded) makes later paths unknowable.
        self.cwd = path if os.path.isdir(path) else None

    def check_path(self, word: Optional[str], what: str) -> None:
        if word is None or self.cwd is None:
            return
        path = expand(word, self.environ)
        if path is None or os.path.isabs(path) or not path:
            return
        if not os.path.exists(os.path.join(self.cwd, path)):
            self.warn(
                "missing-script",
                f"{what} {one_line(word)} does not exist in {one_line(self.cwd)} (a relative path depends on "
                "the directory)",
                f"use an absolute path such as ${{MA_JOB_DIR}}/code/{one_line(os.path.basename(path))}, or "
                "--workdir",
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
            shown = one_line(name)
            linter.warn(
                "ma-variable",
                f"the variable {shown} starts with MA_, which ModelArts reserves for its own settings",
                f"rename {shown} (ModelArts asks users not to define MA_* variables)",
            )
    return linter.warnings
