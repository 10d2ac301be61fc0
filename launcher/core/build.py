"""``build_plan``: everything a launch will do, decided before anything is done.

The plan is built by a short pipeline of steps (:data:`STEPS`), each reading the request and what the
earlier steps decided, and adding its own decisions, variable changes, warnings and problems to a
:class:`Draft`. The steps read the file system and source the env's activation scripts through the runner
they are given (sourcing is how a script's effect is known), but change nothing: ``--dry-run`` renders the
result and a normal run executes it, so the two cannot disagree.
"""

from __future__ import annotations

import os

from launcher.core import activation, command, libpath, paths, programs, sources, workdir
from launcher.core.conda import EnvChoice, choose_env
from launcher.core.jobsteps import (
    channel_variables_step,
    detect_platform_step,
    distributed_step,
    lint_step,
    preflight_step,
    restarts_step,
    split_channels_step,
)
from launcher.core.plan import EnvBuilder, LaunchPlan, LdDecision
from launcher.errors import UsageError
from launcher.modelarts.platform import LOCAL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Callable, Optional

    from launcher.core.request import Request
    from launcher.core.sourcing import Script, ScriptRunner
    from launcher.errors import LaunchError
    from launcher.ld.store import LdStore
    from launcher.modelarts.distributed import DistEnv
    from launcher.modelarts.platform import Platform


class Draft:
    """A plan under construction. ``base`` is the environment the launcher started with and is never
    changed; ``env`` records every change made on top of it."""

    def __init__(
        self, request: Request, environ: Mapping[str, str], cwd: str, runner: ScriptRunner, ld_store: LdStore
    ) -> None:
        self.request = request
        self.base = dict(environ)
        self.cwd = cwd
        self.runner = runner
        self.ld_store = ld_store
        self.env = EnvBuilder(environ)
        self.decisions: list[str] = []
        self.warnings: list[str] = []
        self.problems: list[LaunchError] = []
        self.platform: Platform = LOCAL
        self.command: tuple[str, ...] = request.command
        self.channel_env: dict[str, str] = {}
        self.choice = EnvChoice(None, "none", "not chosen yet")
        self.workdir = cwd
        self.workdir_ok = True
        self.dist: Optional[DistEnv] = None
        self.argv: list[str] = []
        self.program: Optional[str] = None
        self.is_python = False
        self.ld = LdDecision("off")

    def finish(self) -> LaunchPlan:
        return LaunchPlan(
            argv=tuple(self.argv),
            workdir=self.workdir,
            environ=self.env.env,
            base=self.base,
            choice=self.choice,
            changes=tuple(self.env.changes),
            program=self.program,
            is_python=self.is_python,
            ld=self.ld,
            platform=self.platform,
            dist=self.dist,
            decisions=tuple(self.decisions),
            warnings=tuple(self.warnings),
            problems=tuple(self.problems),
        )


def choose_env_step(draft: Draft) -> None:
    """The env, by the documented rules (see :func:`launcher.core.conda.choose_env`)."""
    request = draft.request
    choice = choose_env(
        draft.base,
        name=request.name,
        prefix=request.prefix,
        first_word=command.first_word(request),
        cwd=draft.cwd,
    )
    draft.choice = choice
    draft.warnings += choice.warnings
    if choice.env is not None:
        draft.decisions.append(f"env {choice.env.name} ({choice.env.prefix}): {choice.reason}")
    else:
        draft.decisions.append(f"env: none — {choice.reason}")
    if request.conda_run and choice.env is None:
        raise UsageError("--conda-run needs an env", hint="choose one with -n ENV or -p PREFIX")


def workdir_step(draft: Draft) -> None:
    """The working directory, and whether this user can run in it (a problem, not an error: dry-run
    still shows the rest)."""
    draft.workdir, source = workdir.resolve_workdir(draft.request.workdir, draft.base, draft.cwd)
    draft.decisions.append(f"working directory {draft.workdir} ({source})")
    problem = workdir.check_workdir(draft.workdir)
    if problem is not None:
        draft.problems.append(problem)
        draft.workdir_ok = False


def activate_step(draft: Draft) -> None:
    """Activate the env as conda does: its variables, then its activate.d scripts; then the CANN toolkit's
    set_env.sh (--cann auto) and the --source files. One bash sources every script."""
    env = draft.choice.env
    request = draft.request
    scripts: list[Script] = []
    if env is not None and not request.conda_run:
        draft.env.extend(activation.conda_variables(env, draft.base))
        declared, declared_warnings = activation.declared_variables(env)
        draft.warnings += declared_warnings
        draft.env.extend(declared)
        scripts = activation.activation_scripts(env)
    files, notes = sources.files_to_source(request.sources, request.cann, draft.env.env, draft.cwd)
    draft.decisions += notes
    if not scripts and not files:
        return
    run_dir = draft.workdir if draft.workdir_ok else draft.cwd
    from launcher.core import sourcing

    changed, script_warnings = sourcing.script_changes(
        [*scripts, *files],
        draft.env.env,
        run_dir,
        strict=request.strict_activation,
        timeout=request.activation_timeout,
        runner=draft.runner,
    )
    labels = {f.source for f in files}
    changed = [sources.tidied(c) if c.source in labels else c for c in changed]
    draft.warnings += script_warnings
    draft.env.extend(changed)
    if scripts:
        draft.decisions.append(f"sourced {len(scripts)} activate.d script(s) with bash")
    draft.decisions += [sources.summary(f.source, changed) for f in files]


def output_step(draft: Draft) -> None:
    """Unbuffered Python output and UTF-8 under a C locale, unless the user or the env decided these
    variables; and ``PWD``."""
    env = draft.env.env
    if not env.get("PYTHONUNBUFFERED") and not _env_decided(draft, "PYTHONUNBUFFERED"):
        # An inherited empty value means "not set" to Python: it is replaced.
        draft.env.set(
            "PYTHONUNBUFFERED", "1", "unbuffered output, so log lines reach the job log at once", "python"
        )
    if "PYTHONIOENCODING" not in env and not _env_decided(draft, "PYTHONIOENCODING") and _is_c_locale(env):
        draft.env.set("PYTHONIOENCODING", "utf-8", "the locale is C/POSIX or unset", "python")
    draft.env.set("PWD", draft.workdir, "working directory", "workdir")


def _env_decided(draft: Draft, name: str) -> bool:
    """Whether the env's own files or scripts set or unset ``name`` (their choice wins over ours)."""
    return any(c.name == name and c.kind in ("declared", "script") for c in draft.env.changes)


def _is_c_locale(environ: Mapping[str, str]) -> bool:
    """Whether the program's locale is C/POSIX: the first of LC_ALL, LC_CTYPE, LANG that is set decides;
    none set is C."""
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = environ.get(name)
        if value:
            return value in ("C", "POSIX")
    return True


def compose_step(draft: Draft) -> None:
    """The argv to execute: the command, a ``-c`` line, torchrun, msrun, or conda run."""
    request = draft.request
    env = draft.choice.env
    if request.shell_line is not None:
        draft.argv = command.shell_line_argv(request.shell_line, draft.command, draft.env.env)
        draft.decisions.append(f"the -c line runs with {draft.argv[0]} -c")
    elif request.torchrun and draft.dist is not None:  # dist is always derived for --torchrun
        draft.argv = command.torchrun_command(draft.command, env, draft.dist, request, draft.env.env)
        draft.decisions.append("composed torchrun (python -m torch.distributed.run) for this node")
    elif request.msrun and draft.dist is not None:  # dist is always derived for --msrun
        draft.argv, note = command.msrun_command(
            draft.command, env, draft.dist, request, draft.env.env, draft.workdir
        )
        draft.decisions.append(note)
    else:
        draft.argv = list(draft.command)
    if request.conda_run and env is not None:
        draft.argv = command.conda_run_command(draft.argv, env)
        draft.decisions.append("composed conda run --no-capture-output, so output is not held back")


def path_step(draft: Draft) -> None:
    """No empty entries in PATH: one means the working directory, where the real run never looks for a
    program, but every later lookup would (the supervisor's exec, ``stdbuf``, the line's ``env``)."""
    value = draft.env.env.get("PATH")
    if value is None:
        return
    clean = os.pathsep.join(paths.split_path(value))
    if clean != value:
        why = "empty entries removed (an empty entry means the working directory)"
        draft.env.set("PATH", clean, why, "path")


def program_step(draft: Draft) -> None:
    """The file argv[0] resolves to on the new PATH, checked the way exec will check it (a problem when
    it cannot run; a file exec cannot run at all is refused), and whether it runs Python."""
    name = draft.argv[0]
    draft.program, problem = command.resolve_program(name, draft.env.env.get("PATH"), draft.workdir)
    if draft.program is not None:
        problem = command.exec_problem(draft.program, name, draft.workdir)
    if problem is not None:
        draft.problems.append(problem)
    draft.is_python = programs.runs_python(draft.program, name)


def libpath_step(draft: Draft) -> None:
    """LD_LIBRARY_PATH for the program (see :mod:`launcher.core.libpath`)."""
    env = draft.choice.env
    draft.ld = libpath.apply_ld(
        draft.request.ld_mode,
        env.prefix if env else None,
        draft.program,
        draft.base,
        draft.env,
        draft.ld_store,
    )
    draft.decisions.extend(draft.ld.reasons)
    draft.warnings.extend(draft.ld.warnings)


def line_buffer_step(draft: Draft) -> None:
    """``--line-buffered``: stdbuf for programs that are not Python (PYTHONUNBUFFERED covers Python)."""
    if not draft.request.line_buffered:
        return
    if draft.is_python:
        draft.decisions.append("--line-buffered: not needed for Python (PYTHONUNBUFFERED does it)")
        return
    wrapped = command.stdbuf_command(draft.argv, draft.env.env)
    if wrapped is None:
        draft.warnings.append(
            "--line-buffered: stdbuf is not installed; output buffering is left to the program"
        )
        return
    draft.argv = wrapped
    draft.decisions.append("--line-buffered: the program runs under stdbuf -oL -eL")


def limits_step(draft: Draft) -> None:
    """A variable or argument longer than exec can pass is a problem (the real run would fail with
    E2BIG)."""
    problem = command.too_long_for_exec(draft.argv, draft.env.env)
    if problem is not None:
        draft.problems.append(problem)


#: The planning steps, in order.
STEPS: tuple[Callable[[Draft], None], ...] = (
    detect_platform_step,
    restarts_step,
    split_channels_step,
    choose_env_step,
    workdir_step,
    activate_step,
    channel_variables_step,
    distributed_step,
    output_step,
    path_step,
    compose_step,
    program_step,
    libpath_step,
    line_buffer_step,
    limits_step,
    lint_step,
    preflight_step,
)


def build_plan(
    request: Request,
    environ: Mapping[str, str],
    cwd: str,
    *,
    script_runner: ScriptRunner,
    ld_store: Optional[LdStore] = None,
) -> LaunchPlan:
    """Decide the whole launch for ``request`` in the environment ``environ``, seen from ``cwd``.

    ``script_runner`` sources activation scripts (:func:`launcher.run.activate.run_bash_program` in a
    real launch); ``ld_store`` keeps the LD analysis between launches (the user's cache in a real launch,
    :func:`launcher.run.ldstore.user_store`; none by default, so nothing is written).

    Raises LaunchError for what leaves nothing to show (an unknown env, bad options, a malformed env
    file, an activation script past its deadline) and for what the ``--dry-run`` line would run although
    the real run cannot (a file with no ``#!`` line); failures of the command itself, of the working
    directory and strict lint, which the line meets in the same way, are recorded in ``problems``
    instead.
    """
    from launcher.ld.store import NullStore

    request.check()
    store = ld_store if ld_store is not None else NullStore()
    draft = Draft(request, environ, cwd, script_runner, store)
    for step in STEPS:
        step(draft)
    return draft.finish()
