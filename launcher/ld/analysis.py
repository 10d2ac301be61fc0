"""Targeted LD_LIBRARY_PATH: prepend exactly the env directories the dynamic loader would otherwise miss,
or that an inherited LD_LIBRARY_PATH would shadow.

``analyze(prefix, program, environ, store=...)`` reads the ELF dynamic sections (:mod:`launcher.ld.elf`)
of the program (a script is followed to its ``#!`` interpreter), of the env's Python, of every shared
object under the env (``lib/``, ``lib64/``, ``site-packages/**`` with its ``nvidia/*/lib``,
``torch/lib``, ``*.libs`` ...) and - the *reach* - when the program is a shell or a script that is not
Python, of the env's executables too (its ``bin/`` and the ``bin/`` directories inside packages): a boot
line run through a shell may start any of them, and must not do worse than the documented fix of
prepending the env's ``lib``. It then links them as the loader would (:mod:`launcher.ld.link`,
:mod:`launcher.ld.search`), chooses the directories (:mod:`launcher.ld.choose`) and returns an
:class:`LdAnalysis`. It never raises for file-system trouble.

The work is kept in a store (:mod:`launcher.ld.store`; on disk :mod:`launcher.run.ldstore`): a repeated
launch with the same question reads one small document and stats each scanned directory once; when
something changed, only the changed directories are listed and only new or changed files parsed again.
A store that is missing, corrupt, forged or unwritable means a fresh analysis, never a failed launch.
"""

from __future__ import annotations

import os

from launcher.core.paths import search_path
from launcher.core.programs import is_python_name, read_shebang, shebang_interpreter
from launcher.core.record import Record
from launcher.ld.answers import find_answer
from launcher.ld.result import AddedDir, LdAnalysis, Unresolved
from launcher.ld.sigs import path_sig
from launcher.ld.sysdirs import LD_SO_CACHE, ld_path_entries, system_lib_dirs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Optional

    from launcher.ld.store import LdStore

__all__ = ["AddedDir", "LdAnalysis", "Question", "Unresolved", "analyze", "question"]

#: Programs that run command lines: a boot line given to one may start any of the env's executables.
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "fish", "tcsh", "csh"})
_STORE_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError)


class Question(Record):
    """Everything the answer depends on besides the env's files: the env, ``LD_LIBRARY_PATH``'s
    entries, the program (``main``, after ``#!`` lines), the Python that loads extension modules, other
    programs to check, and whether the env's executables are checked too (``reach``)."""

    __slots__ = ("_keys", "ld_path", "main", "others", "prefix", "python", "reach")

    def __init__(
        self,
        prefix: str,
        ld_path: tuple[str, ...],
        main: Optional[str],
        python: Optional[str],
        others: tuple[str, ...],
        reach: bool,
    ) -> None:
        self.prefix = prefix
        self.ld_path = ld_path
        self.main = main
        self.python = python
        self.others = others
        self.reach = reach
        self._keys: dict[bool, list[object]] = {}

    def key(self, coarse: bool = False) -> list[object]:
        """The question but ``LD_LIBRARY_PATH`` (see :mod:`launcher.ld.answers`), with the signatures of the
        files outside the env it depends on (``coarse``: as an image's pre-computed answers keep them)."""
        if coarse not in self._keys:
            roots = [p for p in (self.main, self.python, *self.others) if p]
            self._keys[coarse] = [
                [self.prefix, self.main, self.python, list(self.others), self.reach],
                [[p, path_sig(p, coarse)] for p in roots],
                path_sig(LD_SO_CACHE, coarse),
                [[d, path_sig(d, coarse)] for d in system_lib_dirs()],
            ]
        return self._keys[coarse]


def _shebang_target(path: str, environ: Mapping[str, str]) -> str:
    """The program that runs ``path`` after following ``#!`` lines (``#!/usr/bin/env NAME`` included);
    ``path`` itself when it has none."""
    for _ in range(4):
        words = read_shebang(path) if os.path.isfile(path) else None
        interpreter = shebang_interpreter(words or ())
        if words is None or interpreter is None:
            break
        if interpreter != words[0]:
            found = search_path(interpreter, environ.get("PATH"))
            if found is None:
                break
            interpreter = found
        path = interpreter
    return path


def _env_python(prefix: str) -> Optional[str]:
    for name in ("python3", "python"):
        path = os.path.join(prefix, "bin", name)
        if os.path.exists(path):
            return os.path.realpath(path)
    return None


def question(
    prefix: str,
    program: Optional[str],
    environ: Mapping[str, str],
    extra_objects: Sequence[str] = (),
    reach: Optional[bool] = None,
) -> Question:
    """The question for a launch of ``program`` in the env ``prefix`` (``extra_objects``: other programs
    to check as well). ``reach`` says whether the env's executables are checked too; ``None``: when the
    program is a shell, or a script whose interpreter is not Python."""
    prefix = os.path.normpath(os.path.abspath(prefix))
    env_python = _env_python(prefix)
    main, python, others, is_script = env_python, env_python, [], False
    if program:
        target = _shebang_target(os.path.abspath(program), environ)
        is_script = target != os.path.abspath(program)
        main = os.path.realpath(target)
        if is_python_name(main):
            python = main
            if env_python and env_python != main:
                others.append(env_python)
    if reach is None:
        name = os.path.basename(main or "")
        reach = bool(program) and not is_python_name(name) and (is_script or name in _SHELLS)
    others += [os.path.abspath(p) for p in extra_objects]
    return Question(prefix, tuple(ld_path_entries(environ)), main, python, tuple(others), reach)


def _debug_log(environ: Mapping[str, str]) -> Callable[[str], None]:
    if environ.get("MA_LAUNCH_DEBUG", "").strip().lower() in ("", "0", "false", "no", "off"):
        return lambda _message: None

    def log(message: str) -> None:
        import sys

        sys.stderr.write(f"ma-launch: debug: ld: {message}\n")

    return log


def analyze(
    prefix: str,
    program: Optional[str],
    environ: Mapping[str, str],
    *,
    store: LdStore,
    extra_objects: Sequence[str] = (),
    reach: Optional[bool] = None,
) -> LdAnalysis:
    """Which env directories must be prepended to LD_LIBRARY_PATH for ``program`` (and the env) to find
    what it needs, and what stays unresolved (``reach``: see :func:`question`). Reads and writes its
    work through ``store``; with ``MA_LAUNCH_DEBUG`` set in ``environ`` it says on stderr why the store
    was not used."""
    q = question(prefix, program, environ, extra_objects, reach)
    log = _debug_log(environ)
    try:
        return _answer(q, store, log, use_store=True)
    except _STORE_ERRORS as exc:  # documents of the right shape but not what this version wrote
        log(f"ignoring the stored analysis of {q.prefix}: {exc!r}")
        return _answer(q, store, log, use_store=False)


def _answer(q: Question, store: LdStore, log: Callable[[str], None], *, use_store: bool) -> LdAnalysis:
    """A stored answer that still holds, else a new one (:func:`launcher.ld.fresh.fresh_answer`)."""
    if use_store:
        for doc in store.layers(q.prefix, "index"):
            found = find_answer(doc, q.prefix, q.ld_path, q.key)
            if found is not None:
                return found
    from launcher.ld.fresh import fresh_answer  # the slow path: walk, parse, link

    return fresh_answer(q, store, log, use_store=use_store)
