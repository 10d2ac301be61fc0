"""Finding conda roots and envs, and choosing the env a command should run in: the one conda discovery.

The launcher, ``doctor`` and ``pack`` all use these functions. Paths are as the image sees them; ``host``
maps such a path to where it is on this machine (``doctor --root DIR`` checks an unpacked image), and is
the identity for the running system. Pure apart from reading the file system.
"""

from __future__ import annotations

import os

from launcher.core import paths
from launcher.core.record import Record
from launcher.errors import ConfigError, NotFoundError, UsageError
from launcher.modelarts.facts import CONDA_ROOTS, DEFAULT_CONDA_ROOT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Callable, Literal, Optional

    #: The rule that chose an env (documented in the README and the JSON plan).
    EnvRule = Literal["prefix", "name", "interpreter", "anaconda_dir", "conda_prefix", "path", "none"]
    HostPath = Callable[[str], str]


def _same(path: str) -> str:
    return path


class Env(Record):
    """A conda env: its prefix, the name conda shows for it, and the root (base) prefix it belongs to."""

    __slots__ = ("name", "prefix", "root")

    def __init__(self, prefix: str, name: str, root: Optional[str]) -> None:
        self.prefix = prefix
        self.name = name
        self.root = root

    @property
    def is_root(self) -> bool:
        return self.root is not None and os.path.normpath(self.root) == os.path.normpath(self.prefix)


class EnvChoice(Record):
    """The env chosen for a launch (or ``None``), the rule that chose it, and why, in words."""

    __slots__ = ("env", "reason", "rule", "warnings")

    def __init__(
        self, env: Optional[Env], rule: EnvRule, reason: str, warnings: tuple[str, ...] = ()
    ) -> None:
        self.env = env
        self.rule: EnvRule = rule
        self.reason = reason
        self.warnings = warnings


def is_env(prefix: str, host: HostPath = _same) -> bool:
    """Whether ``prefix`` is a conda env (conda's own test: it has ``conda-meta/``)."""
    return os.path.isdir(host(os.path.join(prefix, "conda-meta")))


def is_root(path: str, host: HostPath = _same) -> bool:
    """Whether ``path`` can be a conda root: an env itself (a full install) or a directory of ``envs/``
    (an image that holds only packed envs, with no base install)."""
    return is_env(path, host) or os.path.isdir(host(os.path.join(path, "envs")))


def env_name(prefix: str, root: Optional[str]) -> str:
    """CONDA_DEFAULT_ENV as conda spells it: ``base`` for the root, the directory name under ``envs/``,
    else the full path."""
    prefix = os.path.normpath(prefix)
    if root is not None and os.path.normpath(root) == prefix:
        return "base"
    parent = os.path.dirname(prefix)
    if os.path.basename(parent) == "envs":
        return os.path.basename(prefix)
    return prefix


def root_of(prefix: str) -> Optional[str]:
    """The root prefix an env belongs to: itself when it has ``bin/conda`` or an ``envs`` dir, else the
    parent of ``envs/``; ``None`` for a standalone prefix."""
    prefix = os.path.normpath(prefix)
    if os.path.isfile(os.path.join(prefix, "bin", "conda")) or os.path.isdir(os.path.join(prefix, "envs")):
        return prefix
    parent = os.path.dirname(prefix)
    if os.path.basename(parent) == "envs":
        return os.path.dirname(parent)
    return None


def make_env(prefix: str, root: Optional[str] = None) -> Env:
    """An :class:`Env` for ``prefix``, finding its root when not given."""
    prefix = os.path.normpath(prefix)
    if root is None:
        root = root_of(prefix)
    return Env(prefix=prefix, name=env_name(prefix, root), root=root)


def anaconda_dir(environ: Mapping[str, str], host: HostPath = _same) -> tuple[Optional[str], Optional[str]]:
    """``(root, problem)``: ANACONDA_DIR when it names a conda root, else a sentence saying what is wrong."""
    value = environ.get("ANACONDA_DIR", "")
    if not value:
        return None, None
    if not os.path.isabs(value):
        return None, f"ANACONDA_DIR={value!r} is not an absolute path"
    path = host(os.path.normpath(value))  # "/file/" would not exist, where "/file" is not a directory
    if not os.path.exists(path):
        return None, f"ANACONDA_DIR={value} does not exist"
    if not os.path.isdir(path):
        return None, f"ANACONDA_DIR={value} is not a directory"
    if not is_root(value, host):
        return (
            None,
            f"ANACONDA_DIR={value} is not a conda installation (it has neither conda-meta/ nor envs/)",
        )
    return os.path.normpath(value), None


def candidate_roots(environ: Mapping[str, str], host: HostPath = _same) -> list[str]:
    """The conda roots to look in, in order: ANACONDA_DIR, then the usual install places that exist."""
    roots: list[str] = []
    first, _problem = anaconda_dir(environ, host)
    if first:
        roots.append(first)
    for root in CONDA_ROOTS:
        if is_root(root, host) and os.path.normpath(root) not in roots:
            roots.append(os.path.normpath(root))
    return roots


def list_envs(roots: Sequence[str], host: HostPath = _same) -> list[Env]:
    """Every env under the given roots: each root as ``base`` and each ``envs/*`` with ``conda-meta/``."""
    found: list[Env] = []
    for root in roots:
        if is_env(root, host):
            found.append(Env(prefix=root, name="base", root=root))
        envs_dir = os.path.join(root, "envs")
        try:
            names = sorted(os.listdir(host(envs_dir)))
        except OSError:
            continue
        for name in names:
            prefix = os.path.join(envs_dir, name)
            if is_env(prefix, host):
                found.append(Env(prefix=prefix, name=name, root=root))
    return found


def validate_name(name: str) -> None:
    """Reject env names that could address something other than ``<root>/envs/<name>``."""
    if not name:
        raise UsageError("the env name is empty", hint="give a name such as -n python-3.7.10, or -p PREFIX")
    if "/" in name or "\0" in name or name in (".", "..") or ".." in name.split(os.sep):
        raise UsageError(
            f"{name!r} is not an env name (names cannot hold '/', '..' or NUL)",
            hint="to use an env by its path, give -p PREFIX",
        )


def _closest_first(wanted: str, envs: Sequence[Env]) -> list[Env]:
    import difflib

    def score(env: Env) -> float:
        return difflib.SequenceMatcher(None, wanted.lower(), env.name.lower()).ratio()

    return sorted(envs, key=lambda e: (-score(e), e.name, e.prefix))


def _not_found(name: str, roots: Sequence[str], why: str, host: HostPath) -> NotFoundError:
    envs = list_envs(roots, host)
    if envs:
        listing = ", ".join(f"{e.name} ({e.prefix})" for e in _closest_first(name, envs)[:8])
        hint = f"existing envs, closest first: {listing}"
    elif roots:
        hint = f"no envs exist under {', '.join(roots)}"
    else:
        hint = "no conda installation was found; set ANACONDA_DIR or give -p PREFIX"
    return NotFoundError(f"conda env {name!r} not found {why}", hint=hint)


def find_by_name(
    name: str,
    environ: Mapping[str, str],
    roots: Optional[Sequence[str]] = None,
    host: HostPath = _same,
) -> Env:
    """The env called ``name`` (``base`` = the first root) in the given or usual roots; never a guess.

    Raises NotFoundError listing the envs that exist, closest first."""
    validate_name(name)
    if roots is None:
        roots = candidate_roots(environ, host)
    for root in roots:
        if name == "base":
            if is_env(root, host):
                return Env(prefix=root, name="base", root=root)
            continue
        prefix = os.path.join(root, "envs", name)
        if is_env(prefix, host):
            return Env(prefix=prefix, name=name, root=root)
    where = f"in {', '.join(roots)}" if roots else "(no conda installation found)"
    raise _not_found(name, roots, where, host)


def env_of_executable(path: str) -> Optional[Env]:
    """The env that holds an interpreter given by absolute path (``…/envs/X/bin/python``), if any."""
    if not os.path.isabs(path):
        return None
    bindir = os.path.dirname(os.path.normpath(path))
    if os.path.basename(bindir) != "bin":
        return None
    prefix = os.path.dirname(bindir)
    return make_env(prefix) if is_env(prefix) else None


def choose_env(
    environ: Mapping[str, str],
    *,
    name: Optional[str],
    prefix: Optional[str],
    first_word: Optional[str],
    cwd: str,
) -> EnvChoice:
    """Choose the env by the documented rules; the first that matches wins.

    ``-p`` → ``-n`` → an absolute interpreter path as the command's first word → ANACONDA_DIR +
    DEFAULT_CONDA_ENV_NAME → CONDA_PREFIX → the first ``python`` on PATH inside an env → none.
    An env that was asked for and does not exist is an error, never a fall-through.
    """
    if prefix is not None and name is not None:
        raise UsageError("-n/--name and -p/--prefix both given", hint="choose the env one way")
    if prefix is not None:
        return EnvChoice(make_env(_prefix_env(prefix, cwd)), "prefix", f"chosen with -p {prefix}")
    _root, problem = anaconda_dir(environ)
    if name is not None:
        if problem:
            raise ConfigError(problem, hint=_ANACONDA_HINT)
        return EnvChoice(find_by_name(name, environ), "name", f"chosen with -n {name}")
    env = env_of_executable(first_word) if first_word else None
    if env is not None:
        return EnvChoice(env, "interpreter", f"the command runs {first_word}, which lives in this env")
    default_name = environ.get("DEFAULT_CONDA_ENV_NAME", "")
    if default_name:
        if problem:
            raise ConfigError(
                f"{problem}, so DEFAULT_CONDA_ENV_NAME={default_name} cannot be found", hint=_ANACONDA_HINT
            )
        where = "ANACONDA_DIR" if environ.get("ANACONDA_DIR") else "the usual conda roots"
        env = find_by_name(default_name, environ)
        return EnvChoice(env, "anaconda_dir", f"DEFAULT_CONDA_ENV_NAME={default_name} in {where}")
    return _active_env(environ, [f"{problem}; it is ignored"] if problem else [])


_ANACONDA_HINT = "set ANACONDA_DIR to the conda root, e.g. " + DEFAULT_CONDA_ROOT


def _prefix_env(prefix: str, cwd: str) -> str:
    """The env directory ``-p PREFIX`` names (relative to ``cwd``); NotFoundError when it is not one."""
    if not prefix:
        raise UsageError("the env prefix is empty", hint="give -p /path/to/env")
    path = os.path.normpath(os.path.join(cwd, prefix))
    if not os.path.exists(path):
        raise NotFoundError(f"env prefix {path} does not exist", hint="check -p/--prefix")
    if not os.path.isdir(path):
        raise NotFoundError(f"env prefix {path} is not a directory", hint="give the env's directory")
    if not is_env(path):
        raise NotFoundError(
            f"{path} is not a conda env (it has no conda-meta/)",
            hint="give the env's prefix, the directory that holds bin/ and conda-meta/",
        )
    return path


def _active_env(environ: Mapping[str, str], warnings: list[str]) -> EnvChoice:
    """The last rules, for a launch that asked for no env: CONDA_PREFIX, then the first python on PATH
    that lives in an env, else none."""
    active = environ.get("CONDA_PREFIX", "")
    if active:
        if is_env(active):
            return EnvChoice(make_env(active), "conda_prefix", "CONDA_PREFIX is already set", tuple(warnings))
        warnings.append(f"CONDA_PREFIX={active} is not a conda env; it is ignored")
    absolute = os.pathsep.join(e for e in paths.split_path(environ.get("PATH")) if os.path.isabs(e))
    candidate = paths.search_path("python", absolute)
    env = env_of_executable(candidate) if candidate else None
    if env is not None:
        return EnvChoice(env, "path", f"the first python on PATH is {candidate}", tuple(warnings))
    return EnvChoice(
        None, "none", "no env was asked for or found; the command runs as it is", tuple(warnings)
    )
