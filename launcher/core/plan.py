"""The launch plan as data: every variable change with its source, the LD_LIBRARY_PATH decision, and the
plan itself. A plan is built once (:mod:`launcher.core.build`) and then rendered, executed, supervised or
baked; nothing in it is changed afterwards (``with_changes`` makes a new plan).
"""

from __future__ import annotations

from launcher.core.record import Record
from launcher.errors import one_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Literal, Optional

    from launcher.core.conda import EnvChoice
    from launcher.errors import LaunchError
    from launcher.modelarts.distributed import DistEnv
    from launcher.modelarts.platform import Platform
    from launcher.modes import LdMode

    #: What kind of rule made a change: conda's own variables, the env's declared variables
    #: (env_vars.d, conda-meta/state), a sourced script, the platform's channel arguments, the
    #: distributed-training variables, Python's output settings, the working directory, PATH without
    #: empty entries, LD_LIBRARY_PATH, the Ascend rank table.
    ChangeKind = Literal[
        "activation",
        "declared",
        "script",
        "channel",
        "distributed",
        "python",
        "workdir",
        "path",
        "ld",
        "rank-table",
    ]


class Change(Record):
    """Set ``name`` to ``value`` (``None`` unsets it); ``source`` says in words which rule or file asked
    for it, ``kind`` which kind of rule."""

    __slots__ = ("kind", "name", "source", "value")

    def __init__(self, name: str, value: Optional[str], source: str, kind: ChangeKind) -> None:
        self.name = name
        self.value = value
        self.source = source
        self.kind: ChangeKind = kind


class LdDecision(Record):
    """What was done to LD_LIBRARY_PATH and why: the directories added in front, the explanation lines,
    the warnings, and (``auto``) the analysis as JSON-able data."""

    __slots__ = ("added", "analysis", "details", "mode", "reasons", "warnings")

    def __init__(
        self,
        mode: LdMode,
        added: tuple[str, ...] = (),
        reasons: tuple[str, ...] = (),
        warnings: tuple[str, ...] = (),
        analysis: Optional[Mapping[str, object]] = None,
        details: tuple[str, ...] = (),
    ) -> None:
        self.mode: LdMode = mode
        self.added = added
        self.reasons = reasons
        self.warnings = warnings
        self.analysis = analysis
        self.details = details


class EnvBuilder:
    """The environment under construction plus the record of every change made to it, in order."""

    def __init__(self, base: Mapping[str, str]) -> None:
        self.env = dict(base)
        self.changes: list[Change] = []

    def apply(self, change: Change) -> None:
        if change.value is None:
            self.env.pop(change.name, None)
        else:
            self.env[change.name] = change.value
        self.changes.append(change)

    def extend(self, changes: Sequence[Change]) -> None:
        for change in changes:
            self.apply(change)

    def set(self, name: str, value: str, source: str, kind: ChangeKind) -> None:
        self.apply(Change(name, value, source, kind))


class LaunchPlan(Record):
    """A launch, fully decided: run ``argv`` in ``workdir`` with ``environ``.

    ``base`` is the environment the launcher started with; ``changes`` lists every variable change in the
    order it was made; ``decisions`` and ``warnings`` are one line each (line breaks in them are escaped).
    ``problems`` are failures the real run would hit (the first one decides the exit status), kept so that
    ``--dry-run`` can still show everything else.
    """

    __slots__ = (
        "argv",
        "base",
        "changes",
        "choice",
        "decisions",
        "dist",
        "environ",
        "is_python",
        "ld",
        "platform",
        "problems",
        "program",
        "warnings",
        "workdir",
    )

    def __init__(
        self,
        *,
        argv: tuple[str, ...],
        workdir: str,
        environ: Mapping[str, str],
        base: Mapping[str, str],
        choice: EnvChoice,
        changes: tuple[Change, ...],
        program: Optional[str],
        is_python: bool,
        ld: LdDecision,
        platform: Platform,
        dist: Optional[DistEnv],
        decisions: tuple[str, ...],
        warnings: tuple[str, ...],
        problems: tuple[LaunchError, ...],
    ) -> None:
        self.argv = argv
        self.workdir = workdir
        self.environ = environ
        self.base = base
        self.choice = choice
        self.changes = changes
        self.program = program
        self.is_python = is_python
        self.ld = ld
        self.platform = platform
        self.dist = dist
        self.decisions = tuple(one_line(text) for text in decisions)
        self.warnings = tuple(one_line(text) for text in warnings)
        self.problems = problems

    def with_changes(self, changes: Sequence[Change], decision: str) -> LaunchPlan:
        """A new plan with more variable changes, made after planning (the rank table), and a decision."""
        builder = EnvBuilder(self.environ)
        builder.extend(changes)
        return LaunchPlan(
            argv=self.argv,
            workdir=self.workdir,
            environ=builder.env,
            base=self.base,
            choice=self.choice,
            changes=(*self.changes, *changes),
            program=self.program,
            is_python=self.is_python,
            ld=self.ld,
            platform=self.platform,
            dist=self.dist,
            decisions=(*self.decisions, decision),
            warnings=self.warnings,
            problems=self.problems,
        )

    def net_set(self) -> list[tuple[str, str]]:
        """The variables whose final value differs from the starting one, in order of first change."""
        seen: dict[str, None] = {}
        for change in self.changes:
            seen.setdefault(change.name)
        return [
            (name, self.environ[name])
            for name in seen
            if name in self.environ and self.base.get(name) != self.environ[name]
        ]

    def net_unset(self) -> list[str]:
        """The variables that were set at the start and are unset in the end."""
        return [name for name in self.base if name not in self.environ]

    def source_of(self, name: str) -> str:
        """The source of the last change to ``name`` (``inherited`` when nothing changed it)."""
        for change in reversed(self.changes):
            if change.name == name:
                return change.source
        return "inherited"

    @property
    def exec_path(self) -> str:
        """The file the exec runs: argv[0] itself when it names a file (it holds a ``/``; the exec runs in
        ``workdir``), else the program found on PATH. The real run and the ``--dry-run`` line both exec
        it, keeping argv[0] as given where they can, so no second PATH search may find another file."""
        first = self.argv[0]
        return first if "/" in first or self.program is None else self.program

    @property
    def exit_code(self) -> int:
        """The status the real run ends with before the program runs: 0, or the first problem's code."""
        return self.problems[0].exit_code if self.problems else 0
