"""Activating a conda env the way ``conda activate`` does, without running conda.

Order, as in conda/activate.py: PATH and the ``CONDA_*`` variables; then ``etc/conda/env_vars.d/*.json``
(sorted), then ``conda-meta/state`` ``env_vars`` (which win); then ``etc/conda/activate.d/*.sh`` sourced by
bash in one process, whose effect is read back as the difference of ``env -0`` before and after each script.
"""

from __future__ import annotations

import os

from launcher.core import paths
from launcher.core.plan import Change
from launcher.errors import ConfigError, DataError, UnavailableError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Callable

    from launcher.core.conda import Env

    #: Sources activation scripts and returns what the driver wrote (see :mod:`launcher.run.activate`):
    #: ``(scripts, environ, cwd) -> bytes``. The planner is given one; tests pass fakes.
    ScriptRunner = Callable[[Sequence[str], Mapping[str, str], str], bytes]

UNSET = "***unset***"
#: Variables a bash process changes by itself; never attributed to an activation script.
_SHELL_NOISE = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})


def conda_variables(env: Env, environ: Mapping[str, str]) -> list[Change]:
    """PATH and the CONDA_* variables that ``conda activate`` sets for ``env``."""
    changes: list[Change] = []
    src = "conda activation"
    old_prefix = environ.get("CONDA_PREFIX") or None
    drop = [os.path.join(old_prefix, "bin")] if old_prefix and old_prefix != env.prefix else []
    new_path = paths.prepend_entries(environ.get("PATH"), [os.path.join(env.prefix, "bin")], drop)
    changes.append(
        Change("PATH", new_path, src + (f" (replacing {old_prefix}/bin)" if drop else ""), "activation")
    )
    try:
        old_level = int(environ.get("CONDA_SHLVL", "0") or "0")
    except ValueError:
        old_level = 0
    if old_prefix == env.prefix:
        level = max(old_level, 1)
    else:
        level = old_level + 1
        if old_prefix and old_level >= 1:
            changes.append(Change(f"CONDA_PREFIX_{old_level}", old_prefix, src, "activation"))
    changes += [
        Change("CONDA_PREFIX", env.prefix, src, "activation"),
        Change("CONDA_DEFAULT_ENV", env.name, src, "activation"),
        Change("CONDA_SHLVL", str(level), src, "activation"),
        Change("CONDA_PROMPT_MODIFIER", f"({env.name}) ", src, "activation"),
    ]
    if env.root is not None:
        conda_exe = os.path.join(env.root, "bin", "conda")
        if os.path.isfile(conda_exe):
            changes.append(Change("CONDA_EXE", conda_exe, src, "activation"))
            conda_python = os.path.join(env.root, "bin", "python")
            if os.path.exists(conda_python):
                changes.append(Change("CONDA_PYTHON_EXE", conda_python, src, "activation"))
    return changes


def _read_json_object(path: str, what: str) -> dict[str, object]:
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}", hint=f"fix or remove the file ({what})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            hint=f"fix or remove the file ({what})",
        ) from exc
    if not isinstance(data, dict):
        raise DataError(f"{path} holds a JSON {type(data).__name__}, not an object", hint=f"fix {what}")
    return data


def _vars_from(mapping: object, path: str, warnings: list[str]) -> list[Change]:
    if not isinstance(mapping, dict):
        raise DataError(f"env_vars in {path} is not a JSON object", hint='write it as {"NAME": "value"}')
    changes = []
    for name, raw in mapping.items():
        if not name or "=" in name or "\0" in name:
            raise DataError(f"{path} sets a variable with an impossible name {name!r}", hint="fix the name")
        if name == "PATH":
            warnings.append(f"{path} sets PATH; conda ignores that and so does ma-launch")
            continue
        value = raw if isinstance(raw, str) else _json_text(raw)
        changes.append(Change(name, None if value == UNSET else value, path, "declared"))
    return changes


def _json_text(raw: object) -> str:
    import json

    return json.dumps(raw)


def declared_variables(env: Env) -> tuple[list[Change], list[str]]:
    """The env's declared variables, ``env_vars.d/*.json`` then ``conda-meta/state``; and warnings.

    Raises DataError when one of the files is malformed.
    """
    warnings: list[str] = []
    changes: list[Change] = []
    vars_dir = os.path.join(env.prefix, "etc", "conda", "env_vars.d")
    try:
        names = sorted(n for n in os.listdir(vars_dir) if n.endswith(".json"))
    except OSError:
        names = []
    for name in names:
        path = os.path.join(vars_dir, name)
        changes += _vars_from(_read_json_object(path, "an env_vars.d file"), path, warnings)
    state = os.path.join(env.prefix, "conda-meta", "state")
    if os.path.exists(state):
        data = _read_json_object(state, "conda-meta/state; `conda env config vars` writes it")
        changes += _vars_from(data.get("env_vars", {}), state, warnings)
    return changes, warnings


def activation_scripts(env: Env) -> list[str]:
    """The env's ``etc/conda/activate.d/*.sh`` scripts, sorted as conda sources them."""
    scripts_dir = os.path.join(env.prefix, "etc", "conda", "activate.d")
    try:
        names = sorted(n for n in os.listdir(scripts_dir) if n.endswith(".sh"))
    except OSError:
        return []
    return [os.path.join(scripts_dir, n) for n in names if os.path.isfile(os.path.join(scripts_dir, n))]


def _parse_dumps(raw: bytes) -> list[tuple[str, dict[str, str]]]:
    stages: list[tuple[str, dict[str, str]]] = []
    tokens = raw.split(b"\0")
    i = 0
    while i < len(tokens) and tokens[i]:
        marker = os.fsdecode(tokens[i])
        i += 1
        env: dict[str, str] = {}
        while i < len(tokens) and tokens[i]:
            name, sep, value = tokens[i].partition(b"=")
            if sep:
                env[os.fsdecode(name)] = os.fsdecode(value)
            i += 1
        i += 1  # the empty token that ends a dump
        stages.append((marker, env))
    return stages


def script_changes(
    scripts: Sequence[str],
    environ: Mapping[str, str],
    cwd: str,
    *,
    strict: bool,
    runner: ScriptRunner,
) -> tuple[list[Change], list[str]]:
    """Source the activation scripts and return the variables they changed, each attributed to its
    script, plus warnings. A failing script is a warning (ConfigError with ``strict``).
    """
    if not scripts:
        return [], []
    try:
        raw = runner(scripts, environ, cwd)
    except UnavailableError:
        if strict:
            raise
        return [], ["activate.d scripts were not run: there is no bash (install bash)"]
    stages = _parse_dumps(raw)
    warnings: list[str] = []
    changes: list[Change] = []
    if not stages or stages[0][0] != "start":
        problem = "the activation shell did not start"
        if strict:
            raise ConfigError(problem, hint="check that bash works in this image")
        return [], [problem]
    previous = stages[0][1]
    for script, (marker, env) in zip(scripts, stages[1:]):
        status = marker.partition(":")[2]
        if status != "0":
            problem = f"activation script {script} failed (status {status})"
            if strict:
                raise ConfigError(problem, hint="fix the script, or drop --strict-activation to go on")
            warnings.append(problem + "; the launch goes on")
        for name in sorted(set(previous) | set(env)):
            if name in _SHELL_NOISE:
                continue
            if previous.get(name) != env.get(name):
                changes.append(Change(name, env.get(name), script, "script"))
        previous = env
    if len(stages) - 1 < len(scripts):
        stopped = scripts[len(stages) - 1]
        problem = (
            f"activation script {stopped} ended the shell (exit?); it and the scripts after it had no effect"
        )
        if strict:
            raise ConfigError(problem, hint="a sourced script must not call exit")
        warnings.append(problem)
    return changes, warnings
