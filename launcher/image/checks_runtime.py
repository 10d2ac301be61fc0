"""doctor's checks of what a boot line meets: ``sh`` (dash does not exec the last command),
``unbuffered`` (PYTHONUNBUFFERED baked in) and ``ma-launch`` (installed where the default user runs it)."""

from __future__ import annotations

import os
import sys
from typing import Optional

from launcher.core.paths import search_path, split_path
from launcher.image.check import FAIL, PASS, WARN, Check, Details
from launcher.image.checks_python import blocked_in_chain, start_chain
from launcher.image.context import Context
from launcher.image.users import User, execution_method, why_not_executed
from launcher.modelarts import facts
from launcher.run.probe import as_user, run_probe

#: PATH in an image whose Dockerfile does not set one (Docker's default).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Where the README installs ma-launch, besides PATH: its own venv, or pip's --user place.
MA_LAUNCH_DIRS = ("/opt/ma-launch/bin", facts.HOME + "/.local/bin")


def check_sh(ctx: Context) -> Check:
    """/bin/sh exists; dash only warns (boot lines must then start with ``exec``)."""
    try:
        resolved = ctx.resolve("/bin/sh")
    except OSError:
        resolved = "/bin/sh"
    details: Details = {"sh": resolved}
    if not os.path.isfile(ctx.host(resolved)):
        return Check("sh", FAIL, "/bin/sh is missing", "install a POSIX shell (dash or bash)", details)
    name = os.path.basename(resolved)
    if name.startswith("dash"):
        return Check(
            "sh",
            WARN,
            "/bin/sh is dash: it does not exec the last command of a boot line",
            "start boot lines with 'exec ma-launch …' so signals reach the job",
            details,
        )
    return Check("sh", PASS, f"/bin/sh is {name}", "", details)


def check_unbuffered(ctx: Context) -> Check:
    """PYTHONUNBUFFERED is set in the image (docker export drops ENV: given by --image-env)."""
    value = ctx.environ.get("PYTHONUNBUFFERED", "")
    details: Details = {"PYTHONUNBUFFERED": value or None}
    if value:
        return Check("unbuffered", PASS, f"PYTHONUNBUFFERED={value} is baked in", "", details)
    where = "" if ctx.live else " (docker export drops ENV: pass --image-env PYTHONUNBUFFERED=1 if it is set)"
    return Check(
        "unbuffered",
        WARN,
        "PYTHONUNBUFFERED is not set" + where,
        "add ENV PYTHONUNBUFFERED=1 so Python logs reach the job log on time",
        details,
    )


def find_ma_launch(ctx: Context) -> Optional[str]:
    """The ma-launch the default user would run (an image path): the first on the image's PATH (absolute
    entries only), else in the README's install places; on the live image also the one running now."""
    path = ctx.environ.get("PATH") or DEFAULT_PATH
    entries = [e for e in split_path(path) if e.startswith("/")] + list(MA_LAUNCH_DIRS)
    found = search_path("ma-launch", ":".join(entries), accept=lambda c: os.path.isfile(ctx.host(c)))
    if found is not None:
        return found
    if ctx.live and os.path.basename(sys.argv[0]) == "ma-launch" and os.path.isabs(sys.argv[0]):
        return sys.argv[0]
    return None


def _run_version(program: str, user: User, probe: bool, details: Details) -> Check:
    argv = [program, "--version"]
    result = run_probe(as_user(user.uid, user.gid, argv) if probe else argv, timeout=30)
    details.update(returncode=result.returncode, output=result.output)
    if not result.ok:
        summary = f"UID {user.uid} cannot run {program} --version: {result.last_line}"
        return Check("ma-launch", FAIL, summary, _fix(user), details)
    return Check("ma-launch", PASS, f"{program} runs as UID {user.uid}: {result.output}", "", details)


def _fix(user: User) -> str:
    return f"make it usable by UID {user.uid}: chmod -R a+rX the install directory"


def check_ma_launch(ctx: Context, user: User, program: Optional[str] = None) -> Check:
    """ma-launch is installed where the default user finds it and can run it (``--version`` is run as
    that user on the live image; elsewhere the program and its ``#!`` interpreter are checked, not run)."""
    program = program or find_ma_launch(ctx)
    if program is None:
        return Check(
            "ma-launch",
            FAIL,
            "ma-launch is not on the image's PATH nor in /opt/ma-launch/bin",
            "install it (python -m venv /opt/ma-launch && /opt/ma-launch/bin/pip install ma-launch) and link "
            "/opt/ma-launch/bin/ma-launch into /usr/local/bin",
            {},
        )
    method = execution_method(ctx, user)
    details: Details = {"path": program, "uid": user.uid, "method": method}
    if method != "static":
        return _run_version(program, user, method == "probe", details)
    details.update(executed=False, why=why_not_executed(ctx, user))
    chain, problem = start_chain(ctx, program)
    details["chain"] = list(chain)
    if problem is not None:
        return Check("ma-launch", FAIL, f"{program} cannot start: {problem}", _fix(user), details)
    denied = blocked_in_chain(ctx, chain, user)
    if denied is not None:
        summary = f"UID {user.uid} cannot run {denied[0]} ({denied[1]} denies it)"
        return Check("ma-launch", FAIL, summary, _fix(user), details)
    return Check("ma-launch", PASS, f"{program} is executable by UID {user.uid}", "", details)
