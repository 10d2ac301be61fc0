"""The launch plan: everything a launch will do, computed before anything is done.

``build_plan(request, environ, cwd)`` is the core of ma-launch. It reads the file system (and sources the
env's activate.d scripts in a bash subprocess, as activation requires) but changes nothing; the result is a
frozen :class:`LaunchPlan` that ``--dry-run`` renders and a normal run executes, so the two cannot disagree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Optional

from launcher.core import activation, paths
from launcher.core.activation import Change
from launcher.core.conda import EnvChoice, choose_env
from launcher.errors import (
    AccessError,
    CommandNotExecutable,
    CommandNotFound,
    ConfigError,
    LaunchError,
    NotFoundError,
    UnavailableError,
    UsageError,
)
from launcher.modelarts.distributed import DistEnv
from launcher.modelarts.platform import LOCAL, Platform

if TYPE_CHECKING:
    from launcher.ld.store import LdStore

DEFAULT_WORKDIR = "/home/ma-user"
LD_MODES = ("auto", "prefix", "off")
PYTHON_NAMES = ("python", "pypy")


@dataclass(frozen=True)
class Request:
    """What the user asked for, after flags and MA_LAUNCH_* variables were read."""

    command: tuple[str, ...] = ()
    shell_line: Optional[str] = None
    name: Optional[str] = None
    prefix: Optional[str] = None
    workdir: Optional[str] = None
    ld_mode: str = "auto"
    conda_run: bool = False
    line_buffered: bool = False
    strict_activation: bool = False
    channel_args: str = "pass"
    channel_names: tuple[str, ...] = ("data_url", "train_url")
    dist_env: bool = True
    master_port: int = 6060
    world_per_node: bool = False
    torchrun: bool = False
    torchrun_args: tuple[str, ...] = ()
    strict_lint: bool = False


@dataclass(frozen=True)
class LdDecision:
    """What was done to LD_LIBRARY_PATH and why."""

    mode: str
    added: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    analysis: Optional[Mapping[str, object]] = None
    details: tuple[str, ...] = ()  # what ``-v`` adds to the reasons


@dataclass(frozen=True)
class LaunchPlan:
    """A launch, fully decided: run ``argv`` in ``workdir`` with ``environ``.

    ``changes`` lists every variable change in the order it was made, each with its source; ``problems``
    are failures the real run would hit (the first one decides the exit status), kept so that
    ``--dry-run`` can still show everything else.
    """

    argv: tuple[str, ...]
    workdir: str
    environ: Mapping[str, str]
    base: Mapping[str, str]
    choice: EnvChoice
    changes: tuple[Change, ...]
    program: Optional[str]
    is_python: bool
    ld: LdDecision
    platform: Platform = LOCAL
    dist: Optional[DistEnv] = None
    decisions: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    problems: tuple[LaunchError, ...] = field(default=())

    def with_changes(self, changes: Sequence[Change], decision: str) -> LaunchPlan:
        """A copy of the plan with more variable changes (made after planning, e.g. the rank table)."""
        environ = dict(self.environ)
        for change in changes:
            if change.value is None:
                environ.pop(change.name, None)
            else:
                environ[change.name] = change.value
        return replace(
            self,
            environ=environ,
            changes=(*self.changes, *changes),
            decisions=(*self.decisions, decision),
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
        """The source of the last change to ``name``."""
        for change in reversed(self.changes):
            if change.name == name:
                return change.source
        return "inherited"


class _EnvBuilder:
    """The environment under construction plus the record of every change made to it."""

    def __init__(self, base: Mapping[str, str]) -> None:
        self.env = dict(base)
        self.changes: list[Change] = []

    def apply(self, change: Change) -> None:
        if change.value is None:
            self.env.pop(change.name, None)
        else:
            self.env[change.name] = change.value
        self.changes.append(change)

    def set(self, name: str, value: str, source: str) -> None:
        self.apply(Change(name, value, source))

    def extend(self, changes: Sequence[Change]) -> None:
        for change in changes:
            self.apply(change)


def resolve_workdir(request: Request, environ: Mapping[str, str], cwd: str) -> tuple[str, str]:
    """The working directory and where it came from: --workdir, else $MA_HOME, else /home/ma-user."""
    if request.workdir is not None:
        if not request.workdir:
            raise UsageError("--workdir is empty", hint="give --workdir DIR, e.g. --workdir /home/ma-user")
        return os.path.normpath(os.path.join(cwd, request.workdir)), "--workdir"
    home = environ.get("MA_HOME", "")
    if home and os.path.isabs(home):
        return os.path.normpath(home), "MA_HOME"
    if home:
        return DEFAULT_WORKDIR, f"the ModelArts default; MA_HOME={home!r} is not absolute and was ignored"
    return DEFAULT_WORKDIR, "the ModelArts default"


def check_workdir(workdir: str) -> Optional[LaunchError]:
    """Why the launch cannot run in ``workdir``, or ``None`` when it can."""
    import stat

    hint = "create it, or choose another with --workdir DIR"
    try:
        mode = os.stat(workdir).st_mode
    except PermissionError:
        return AccessError(
            f"working directory {workdir} cannot be reached by this user (uid {os.getuid()}): "
            "a directory above it is not accessible",
            hint="fix the permissions of its parents, or choose another with --workdir DIR",
        )
    except OSError:
        return NotFoundError(f"working directory {workdir} does not exist", hint=hint)
    if not stat.S_ISDIR(mode):
        return NotFoundError(f"working directory {workdir} is not a directory", hint=hint)
    if not os.access(workdir, os.X_OK):
        return AccessError(
            f"working directory {workdir} is not accessible to this user (uid {os.getuid()})",
            hint="fix its permissions, or choose another with --workdir DIR",
        )
    return None


def which(name: str, path_value: Optional[str], cwd: str) -> tuple[Optional[str], Optional[LaunchError]]:
    """Find ``name`` as ``execvpe`` will: directly when it has a ``/``, else on ``path_value``.

    Returns the path, or the error the exec would end with (not found → 127, not executable → 126).
    """
    if "/" in name:
        path = os.path.join(cwd, name)
        if not os.path.exists(path):
            return None, CommandNotFound(
                f"{name}: no such file (looked from {cwd})", hint=_relative_hint(name)
            )
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            return None, CommandNotExecutable(
                f"{name}: not executable", hint=f"chmod +x {name}, or run it with its interpreter"
            )
        return path, None
    denied: Optional[str] = None
    for entry in paths.split_path(path_value):
        candidate = os.path.join(entry if os.path.isabs(entry) else os.path.join(cwd, entry), name)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate, None
            denied = denied or candidate
    if denied:
        return None, CommandNotExecutable(f"{denied}: not executable", hint=f"chmod +x {denied}")
    return None, CommandNotFound(
        f"{name}: command not found on PATH", hint="check the spelling, or choose the env that provides it"
    )


def _relative_hint(name: str) -> str:
    if not os.path.isabs(name):
        return "relative paths are looked up from the working directory; give an absolute path or --workdir"
    return "check the path"


def looks_like_python(program: Optional[str], argv0: str) -> bool:
    """Whether the program is a Python interpreter or a ``#!`` script run by one."""
    base = os.path.basename(argv0)
    if base.startswith(PYTHON_NAMES):
        return True
    if program is None:
        return False
    from launcher.ld.shebang import read_shebang

    return "python" in " ".join(read_shebang(program) or ())


def _is_c_locale(environ: Mapping[str, str]) -> bool:
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = environ.get(name)
        if value:
            return value in ("C", "POSIX")
    return True


def _first_word(request: Request) -> Optional[str]:
    if request.command:
        return request.command[0]
    if request.shell_line:
        import shlex

        try:
            words = shlex.split(request.shell_line)
        except ValueError:
            return None
        return words[0] if words else None
    return None


def build_plan(
    request: Request,
    environ: Mapping[str, str],
    cwd: str,
    *,
    script_runner: activation.ScriptRunner,
    ld_store: Optional[LdStore] = None,
) -> LaunchPlan:
    """Decide the whole launch for ``request`` in the environment ``environ``, seen from ``cwd``.

    Raises LaunchError for what leaves nothing to show (an unknown env, bad options); failures of the
    command itself or of the working directory are recorded in ``problems`` instead. ``ld_store`` keeps
    the LD analysis between launches (``None``: no cache).
    """
    if not request.command and request.shell_line is None:
        raise UsageError("no command given", hint="usage: ma-launch [OPTIONS] [--] COMMAND [ARGS...]")
    if request.shell_line is not None and not request.shell_line.strip() and not request.command:
        raise UsageError("the -c command line is empty", hint="give -c 'cd code && bash run.sh'")
    if request.ld_mode not in LD_MODES:
        raise UsageError(
            f"--ld-library-path {request.ld_mode!r} is not one of {', '.join(LD_MODES)}",
            hint=f"use --ld-library-path {LD_MODES[0]}",
        )

    decisions: list[str] = []
    warnings: list[str] = []
    problems: list[LaunchError] = []

    from launcher.modelarts.platform import detect_platform

    platform = detect_platform(environ)
    decisions.append(f"platform: {platform.describe()}")
    command, channel_env = _split_channels(request, environ, decisions)

    if request.torchrun and request.shell_line is not None:
        raise UsageError(
            "--torchrun and -c do not go together", hint="give the training script after --torchrun"
        )
    choice = choose_env(
        environ, name=request.name, prefix=request.prefix, first_word=_first_word(request), cwd=cwd
    )
    warnings += choice.warnings
    if choice.env is not None:
        decisions.append(f"env {choice.env.name} ({choice.env.prefix}): {choice.reason}")
    else:
        decisions.append(f"env: none — {choice.reason}")

    workdir, workdir_source = resolve_workdir(request, environ, cwd)
    decisions.append(f"working directory {workdir} ({workdir_source})")
    workdir_problem = check_workdir(workdir)
    if workdir_problem:
        problems.append(workdir_problem)

    builder = _EnvBuilder(environ)
    env = choice.env
    if request.conda_run and env is None:
        raise UsageError("--conda-run needs an env", hint="choose one with -n ENV or -p PREFIX")
    if env is not None and not request.conda_run:
        builder.extend(activation.conda_variables(env, environ))
        declared, declared_warnings = activation.declared_variables(env)
        warnings += declared_warnings
        builder.extend(declared)
        scripts = activation.activation_scripts(env)
        if scripts:
            script_run_dir = workdir if workdir_problem is None else cwd
            changed, script_warnings = activation.script_changes(
                scripts, builder.env, script_run_dir, strict=request.strict_activation, runner=script_runner
            )
            warnings += script_warnings
            builder.extend(changed)
            decisions.append(f"sourced {len(scripts)} activate.d script(s) with bash")

    for name, value in channel_env.items():
        builder.set(name, value, "channel argument appended by the platform (--channel-args env)")
    dist = _apply_dist(request, builder, platform, decisions)

    if not environ.get("PYTHONUNBUFFERED"):  # Python ignores an empty value
        builder.set("PYTHONUNBUFFERED", "1", "unbuffered output, so log lines reach the job log at once")
    if "PYTHONIOENCODING" not in environ and _is_c_locale(environ):
        builder.set("PYTHONIOENCODING", "utf-8", "the locale is C/POSIX or unset")
    builder.set("PWD", workdir, "working directory")

    argv = _compose_argv(request, command, choice, builder.env, dist, decisions)
    program, exec_problem = which(argv[0], builder.env.get("PATH"), workdir)
    if exec_problem:
        problems.append(exec_problem)
    is_python = looks_like_python(program, argv[0])
    ld = _apply_ld(request.ld_mode, env.prefix if env else None, program, environ, builder, ld_store)
    decisions.extend(ld.reasons)
    warnings.extend(ld.warnings)
    if request.line_buffered:
        argv = _line_buffered(argv, is_python, builder.env, decisions, warnings)

    warnings += _lint(request, command, environ, platform, workdir, builder.changes)

    return LaunchPlan(
        argv=tuple(argv),
        workdir=workdir,
        environ=builder.env,
        base=dict(environ),
        choice=choice,
        changes=tuple(builder.changes),
        program=program,
        is_python=is_python,
        ld=ld,
        platform=platform,
        dist=dist,
        decisions=tuple(decisions),
        warnings=tuple(warnings),
        problems=tuple(problems),
    )


def _apply_ld(
    mode: str,
    prefix: Optional[str],
    program: Optional[str],
    base: Mapping[str, str],
    builder: _EnvBuilder,
    store: Optional[LdStore],
) -> LdDecision:
    """Change LD_LIBRARY_PATH for ``mode``; keep the original value in MA_LAUNCH_ORIG_LD_LIBRARY_PATH.

    ``auto`` adds exactly the env directories that provide what the loader would not find, or that an
    inherited LD_LIBRARY_PATH would shadow (see :mod:`launcher.ld.analysis`; its work is kept in ``store``).
    """
    if mode == "off":
        return LdDecision(mode, reasons=("LD_LIBRARY_PATH left as it is (--ld-library-path off)",))
    if prefix is None:
        return LdDecision(mode, reasons=("LD_LIBRARY_PATH left as it is (no env)",))
    if mode == "auto":
        from launcher.ld.analysis import analyze
        from launcher.ld.store import NullStore

        analysis = analyze(prefix, program, builder.env, store=store or NullStore())
        _prepend_ld(analysis.directories, base, builder, "--ld-library-path auto")
        return LdDecision(
            mode,
            added=tuple(analysis.directories),
            reasons=tuple(analysis.notes()),
            warnings=tuple(analysis.warnings()),
            analysis=analysis.to_json(),
            details=tuple(analysis.details()),
        )
    added = (os.path.join(prefix, "lib"),)
    reason = f"LD_LIBRARY_PATH: {added[0]} first (--ld-library-path prefix, the documented fix)"
    _prepend_ld(added, base, builder, "--ld-library-path prefix")
    return LdDecision(mode, added=added, reasons=(reason,))


def _prepend_ld(added: Sequence[str], base: Mapping[str, str], builder: _EnvBuilder, source: str) -> None:
    if not added:
        return
    current = builder.env.get("LD_LIBRARY_PATH")
    new = paths.prepend_entries(current, added)
    if new == current:
        return
    if "MA_LAUNCH_ORIG_LD_LIBRARY_PATH" not in base:
        builder.set(
            "MA_LAUNCH_ORIG_LD_LIBRARY_PATH", base.get("LD_LIBRARY_PATH", ""), "the value before ma-launch"
        )
    builder.set("LD_LIBRARY_PATH", new, source)


def _split_channels(
    request: Request, environ: Mapping[str, str], decisions: list[str]
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The command without the trailing channel arguments (``--channel-args env|drop``), and the
    variables made from them."""
    if request.channel_args == "pass":
        return request.command, {}
    from launcher.modelarts.channels import split_channel_args

    # After -c every word is appended; otherwise the first word is the program and never a channel.
    words = ["-c", *request.command] if request.shell_line is not None else list(request.command)
    split = split_channel_args(words, environ, mode=request.channel_args, names=request.channel_names)
    if split.removed:
        verb = "turned into variables" if request.channel_args == "env" else "dropped"
        decisions.append(
            f"channel arguments {verb}: {' '.join(split.removed)} (names from {split.names_from})"
        )
    argv = split.argv[1:] if request.shell_line is not None else split.argv
    return tuple(argv), dict(split.env)


def _apply_dist(
    request: Request, builder: _EnvBuilder, platform: Platform, decisions: list[str]
) -> Optional[DistEnv]:
    """Derive the distributed variables (unless --no-dist-env; --torchrun needs the values anyway)."""
    if not request.dist_env and not request.torchrun:
        return None
    from launcher.modelarts.distributed import dist_env

    dist = dist_env(
        builder.env, platform, master_port=request.master_port, world_per_node=request.world_per_node
    )
    if request.dist_env:
        for name, value in dist.set.items():
            builder.set(name, value, f"distributed training: {dist.sources.get(name, 'derived')}")
    if platform.on_modelarts or request.torchrun:
        decisions.append(
            f"distributed: {dist.nnodes} node(s), this is node {dist.node_rank}, {dist.nproc_per_node} "
            f"process(es) per node, master {dist.master_addr}:{dist.master_port}"
        )
        decisions.extend(dist.notes)
    return dist


def _lint(
    request: Request,
    command: Sequence[str],
    environ: Mapping[str, str],
    platform: Platform,
    workdir: str,
    changes: Sequence[Change],
) -> list[str]:
    """Boot-line warnings; under --strict-lint the first one is an error."""
    from launcher.modelarts.lint import lint

    declared = [c.name for c in changes if c.source.endswith((".json", "state"))]
    found = lint(
        command,
        shell_line=request.shell_line,
        environ=environ,
        platform=platform,
        workdir=workdir,
        user_env_names=declared,
    )
    if found and request.strict_lint:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ConfigError(f"boot-line lint [{first.code}]: {first.message}{more}", hint=first.hint)
    return [f"[{w.code}] {w.message} (hint: {w.hint})" for w in found]


def _compose_argv(
    request: Request,
    command: Sequence[str],
    choice: EnvChoice,
    env: Mapping[str, str],
    dist: Optional[DistEnv],
    decisions: list[str],
) -> list[str]:
    if request.shell_line is not None:
        import shlex

        line = request.shell_line
        if command:
            line = line + " " + shlex.join(command)
        shell = _shell_for_line(env)
        decisions.append(f"the -c line runs with {shell} -c")
        argv = [shell, "-c", line]
    elif request.torchrun and dist is not None:  # dist is always derived for --torchrun
        from launcher.modelarts.distributed import job_id, torchrun_argv

        if not command:
            raise UsageError(
                "--torchrun needs a training script", hint="ma-launch --torchrun train.py ARGS..."
            )
        python = os.path.join(choice.env.prefix, "bin", "python") if choice.env else "python"
        argv = torchrun_argv(python, command, dist, job_id=job_id(env), extra=request.torchrun_args)
        decisions.append("composed torchrun (python -m torch.distributed.run) for this node")
    else:
        argv = list(command)
    env_ = choice.env
    if request.conda_run and env_ is not None:
        conda = os.path.join(env_.root, "bin", "conda") if env_.root else None
        if conda is None or not os.access(conda, os.X_OK):
            where = f"{env_.root}/bin/conda" if env_.root else f"a conda root above {env_.prefix}"
            raise UnavailableError(
                f"--conda-run needs conda, but there is none at {where}",
                hint="drop --conda-run: ma-launch activates the env itself",
            )
        selector = ["-n", env_.name] if env_.name == "base" or "/" not in env_.name else ["-p", env_.prefix]
        decisions.append("composed conda run --no-capture-output, so output is not held back")
        argv = [conda, "run", "--no-capture-output", *selector, *argv]
    return argv


def _shell_for_line(env: Mapping[str, str]) -> str:
    for candidate in ("/bin/bash", "/usr/bin/bash"):
        if os.access(candidate, os.X_OK):
            return candidate
    for entry in paths.split_path(env.get("PATH")):
        candidate = os.path.join(entry, "bash")
        if os.access(candidate, os.X_OK):
            return candidate
    return "/bin/sh"


def _line_buffered(
    argv: list[str], is_python: bool, env: Mapping[str, str], decisions: list[str], warnings: list[str]
) -> list[str]:
    if is_python:
        decisions.append("--line-buffered: not needed for Python (PYTHONUNBUFFERED does it)")
        return argv
    stdbuf, _problem = which("stdbuf", env.get("PATH"), "/")
    if stdbuf is None:
        warnings.append("--line-buffered: stdbuf is not installed; output buffering is left to the program")
        return argv
    decisions.append("--line-buffered: the program runs under stdbuf -oL -eL")
    return [stdbuf, "-oL", "-eL", *argv]
