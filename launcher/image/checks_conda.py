"""doctor's checks of conda: ``conda`` (the roots and envs in the image) and ``default-env``
(ANACONDA_DIR and DEFAULT_CONDA_ENV_NAME name an env).

Both ask :mod:`launcher.core.conda`, the launcher's own discovery, through the image view
(:meth:`Context.host`): doctor accepts exactly the layouts the launcher accepts, such as a root that holds
only ``envs/`` (what the Dockerfile lines of ``ma-launch pack`` build).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import NamedTuple

from launcher.core.conda import Env, anaconda_dir, candidate_roots, find_by_name, list_envs
from launcher.errors import LaunchError
from launcher.image.check import FAIL, PASS, WARN, Check, Details
from launcher.image.context import Context
from launcher.modelarts import facts

_RUN_AS_OWNER = "run doctor as root or as the owner of the tree"


class Conda(NamedTuple):
    """What the image holds: conda roots and envs (image paths), and directories doctor could not read."""

    roots: list[str]
    envs: list[Env]
    unreadable: list[str]


def _blocked(ctx: Context, image_path: str) -> bool:
    """Whether ``image_path`` exists but this process may not look inside (list or enter it)."""
    host = ctx.host(image_path)
    try:
        st = os.stat(host)
    except PermissionError:
        return True  # a directory on the way may not be searched
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and not os.access(host, os.R_OK | os.X_OK)


def _unreadable(ctx: Context, roots: Sequence[str]) -> list[str]:
    """The places discovery looks that exist but cannot be read: conda roots, ``envs/`` and the envs."""
    places = [ctx.environ.get("ANACONDA_DIR", ""), *facts.CONDA_ROOTS, *roots]
    found: list[str] = []
    for root in dict.fromkeys(os.path.normpath(p) for p in places if p.startswith("/")):
        envs = os.path.join(root, "envs")
        try:
            names = sorted(os.listdir(ctx.host(envs)))
        except OSError:
            names = []
        for path in (root, envs, *(os.path.join(envs, n) for n in names)):
            if path not in found and _blocked(ctx, path):
                found.append(path)
    return found


def discover(ctx: Context) -> Conda:
    """The conda roots and envs of the image, as the launcher would find them there."""
    roots = candidate_roots(ctx.environ, ctx.host)
    return Conda(roots, list_envs(roots, ctx.host), _unreadable(ctx, roots))


def check_conda(conda: Conda) -> Check:
    """The image has a conda root the launcher finds, and doctor could read all of it."""
    details: Details = {
        "roots": list(conda.roots),
        "envs": [{"name": e.name, "prefix": e.prefix} for e in conda.envs],
        "unreadable": list(conda.unreadable),
    }
    if conda.unreadable:
        shown = ", ".join(conda.unreadable[:3]) + (" …" if len(conda.unreadable) > 3 else "")
        return Check(
            "conda", WARN, f"cannot read {shown}: envs there are not checked", _RUN_AS_OWNER, details
        )
    if not conda.roots:
        return Check(
            "conda",
            WARN,
            "no conda installation found (ANACONDA_DIR, " + ", ".join(facts.CONDA_ROOTS) + ")",
            f"install conda under {facts.DEFAULT_CONDA_ROOT} or set ANACONDA_DIR",
            details,
        )
    names = ", ".join(e.name for e in conda.envs) or "none"
    summary = f"{len(conda.roots)} conda root(s): {', '.join(conda.roots)}; envs: {names}"
    return Check("conda", PASS, summary, "", details)


def check_default_env(ctx: Context, conda: Conda) -> Check:
    """ANACONDA_DIR and DEFAULT_CONDA_ENV_NAME name an env, found the way the launcher finds it at boot:
    a set but unusable ANACONDA_DIR stops the launch when DEFAULT_CONDA_ENV_NAME is set, else it is
    ignored."""
    anaconda = ctx.environ.get("ANACONDA_DIR", "")
    name = ctx.environ.get("DEFAULT_CONDA_ENV_NAME", "")
    details: Details = {"ANACONDA_DIR": anaconda or None, "DEFAULT_CONDA_ENV_NAME": name or None}
    source = "the environment" if ctx.live else "--image-env"
    if not anaconda and not name:
        return Check(
            "default-env",
            WARN,
            f"ANACONDA_DIR and DEFAULT_CONDA_ENV_NAME are not set (in {source})",
            "set them in the Dockerfile (ENV ANACONDA_DIR=… DEFAULT_CONDA_ENV_NAME=…)",
            details,
        )
    _root, problem = anaconda_dir(ctx.environ, ctx.host)
    if problem:
        fix = f"point ANACONDA_DIR at the conda root, e.g. {facts.DEFAULT_CONDA_ROOT}"
        return Check("default-env", FAIL if name else WARN, problem, fix, details)
    if not name:
        return Check(
            "default-env",
            WARN,
            f"ANACONDA_DIR={anaconda} is set but DEFAULT_CONDA_ENV_NAME is not",
            "set DEFAULT_CONDA_ENV_NAME to the env jobs should run in (base for the root)",
            details,
        )
    try:
        env = find_by_name(name, ctx.environ, host=ctx.host)
    except LaunchError as error:
        if conda.unreadable:
            summary = (
                f"DEFAULT_CONDA_ENV_NAME={name} is not found, and doctor cannot read {conda.unreadable[0]}"
            )
            return Check("default-env", FAIL, summary, _RUN_AS_OWNER, details)
        summary = f"DEFAULT_CONDA_ENV_NAME={name}: {error.message}"
        return Check("default-env", FAIL, summary, error.hint or "fix the name or ANACONDA_DIR", details)
    details["prefix"] = env.prefix
    return Check("default-env", PASS, f"DEFAULT_CONDA_ENV_NAME={name} is {env.prefix}", "", details)
