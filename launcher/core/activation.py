"""Activating a conda env the way ``conda activate`` does, without running conda.

Order, as in conda/activate.py: PATH and the ``CONDA_*`` variables; then ``etc/conda/env_vars.d/*.json``
(sorted), then ``conda-meta/state`` ``env_vars`` (which win); then ``etc/conda/activate.d/*.sh``, sourced by
one bash (:mod:`launcher.core.sourcing`).

An env directory or file this user cannot read is an AccessError (77), as conda would fail to read it too;
one that is malformed (not JSON, nested too deeply, a value no program can receive) is a DataError (65).
"""

from __future__ import annotations

import os

from launcher.core import paths
from launcher.core.plan import Change
from launcher.errors import AccessError, DataError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from launcher.core.conda import Env
    from launcher.core.sourcing import Script

UNSET = "***unset***"


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
    except PermissionError as exc:
        raise _unreadable(path, what) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}", hint=f"fix or remove the file ({what})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            hint=f"fix or remove the file ({what})",
        ) from exc
    except RecursionError as exc:
        raise DataError(
            f"{path} is nested too deeply to be read", hint=f"fix or remove the file ({what})"
        ) from exc
    if not isinstance(data, dict):
        raise DataError(f"{path} holds a JSON {type(data).__name__}, not an object", hint=f"fix {what}")
    return data


def _unreadable(path: str, what: str) -> AccessError:
    return AccessError(
        f"{path} cannot be read by this user (uid {os.getuid()})",
        hint=f"make it readable (chmod a+r; a+rx for a directory): it is {what}",
    )


def _vars_from(mapping: object, path: str, warnings: list[str]) -> list[Change]:
    if not isinstance(mapping, dict):
        raise DataError(f"env_vars in {path} is not a JSON object", hint='write it as {"NAME": "value"}')
    changes = []
    for name, raw in mapping.items():
        if not name or "=" in name or not _passable(name):
            raise DataError(f"{path} sets a variable with an impossible name {name!r}", hint="fix the name")
        if name == "PATH":
            warnings.append(f"{path} sets PATH; conda ignores that and so does ma-launch")
            continue
        value = raw if isinstance(raw, str) else _json_text(raw)
        if not _passable(value):
            raise DataError(
                f"{path} sets {name} to a value no program can receive (a NUL character or a lone surrogate "
                "such as \\ud800)",
                hint=f"fix the value of {name}",
            )
        changes.append(Change(name, None if value == UNSET else value, path, "declared"))
    return changes


def _passable(text: str) -> bool:
    """Whether ``text`` can be put in a program's environment: no NUL, and encodable as the bytes the
    OS takes (lone surrogates but the ``\\udcXX`` escapes of raw bytes cannot)."""
    if "\0" in text:
        return False
    try:
        os.fsencode(text)
    except UnicodeError:
        return False
    return True


def _json_text(raw: object) -> str:
    import json

    return json.dumps(raw)


def declared_variables(env: Env) -> tuple[list[Change], list[str]]:
    """The env's declared variables, ``env_vars.d/*.json`` then ``conda-meta/state``; and warnings.

    Raises DataError when one of the files is malformed, AccessError when one cannot be read.
    """
    warnings: list[str] = []
    changes: list[Change] = []
    vars_dir = os.path.join(env.prefix, "etc", "conda", "env_vars.d")
    what = "an env_vars.d file"
    names = _listdir(vars_dir, "the env's env_vars.d directory")
    for name in sorted(n for n in names if n.endswith(".json")):
        path = os.path.join(vars_dir, name)
        changes += _vars_from(_read_json_object(path, what), path, warnings)
    state = os.path.join(env.prefix, "conda-meta", "state")
    if _may_exist(state):
        data = _read_json_object(state, "conda-meta/state; `conda env config vars` writes it")
        changes += _vars_from(data.get("env_vars", {}), state, warnings)
    return changes, warnings


def _may_exist(path: str) -> bool:
    """False only when ``path`` surely does not exist (``os.path.exists`` is also false for a file this
    user cannot reach, which must be reported, not skipped)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True


def _listdir(path: str, what: str) -> list[str]:
    """The names in ``path``; none when it does not exist (or is not a directory); AccessError when this
    user cannot read it."""
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except PermissionError as exc:
        raise _unreadable(path, what) from exc


def activation_scripts(env: Env) -> list[Script]:
    """The env's ``etc/conda/activate.d/*.sh`` scripts, sorted as conda sources them, each attributed to
    its path."""
    scripts_dir = os.path.join(env.prefix, "etc", "conda", "activate.d")
    names = sorted(n for n in _listdir(scripts_dir, "the env's activate.d directory") if n.endswith(".sh"))
    found = [os.path.join(scripts_dir, n) for n in names]
    paths_ = [path for path in found if os.path.isfile(path)]
    if not paths_:
        return []
    from launcher.core.sourcing import Script  # only when there is something to source

    return [Script(path) for path in paths_]
