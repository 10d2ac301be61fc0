"""doctor's ``python:<prefix>`` check: each env's ``bin/python`` can start for the default user.

What doctor executes, and as whom (:func:`~launcher.image.users.execution_method`): on the running image it
starts ``bin/python -V`` as the default user (through setpriv when doctor is root, directly when doctor
is that user). It never executes an image's file as root, and never executes the files of an unpacked
root at all: they would run on this machine rather than in their image, and UID 1000 here may be someone's
account. Then the check is static: the file and its ``#!`` chain exist in the image, are reachable and
executable for the default user by their mode bits, the program is an ELF executable for the image's
machine whose loader the image has, and the version comes from the env's ``conda-meta/python-*.json``.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from typing import Optional

from launcher.core.conda import Env
from launcher.core.programs import read_shebang
from launcher.image.check import FAIL, PASS, WARN, Check, Details
from launcher.image.context import Context
from launcher.image.reading import reason
from launcher.image.users import User, execution_method, path_reachable, why_not_executed
from launcher.ld.elf import ElfInfo, read_elf
from launcher.run.probe import as_user, run_probe

#: The programs whose ELF header tells the image's machine, in order.
REFERENCE_PROGRAMS = ("/bin/sh", "/usr/bin/env", "/bin/ls", "/usr/bin/ls")
#: How many ``#!`` interpreters the kernel follows in a row.
MAX_SCRIPT_DEPTH = 4
MACHINES = {
    3: "x86",
    8: "MIPS",
    20: "PowerPC",
    21: "PowerPC64",
    22: "s390x",
    40: "ARM",
    62: "x86-64",
    183: "AArch64",
    243: "RISC-V",
    258: "LoongArch",
}
_ET_EXEC, _ET_DYN = 2, 3


def _machine(info: ElfInfo) -> str:
    bits = "" if info.elf_class == 2 else " (32-bit)"
    return MACHINES.get(info.machine, f"machine {info.machine}") + bits


def _reference(ctx: Context) -> Optional[tuple[str, ElfInfo]]:
    """The image's machine, told by the first of its base programs that is an ELF file."""
    for program in REFERENCE_PROGRAMS:
        info = read_elf(ctx.host(program))
        if info is not None:
            return program, info
    return None


def _regular(ctx: Context, image_path: str) -> Optional[str]:
    """Why ``image_path`` is not an executable regular file in the image, or ``None``."""
    try:
        resolved = ctx.resolve(image_path)
    except OSError as exc:
        return f"{image_path}: {reason(exc)}"
    shown = image_path if resolved == image_path else f"{image_path} -> {resolved}"
    try:
        st = os.stat(ctx.host(resolved))
    except OSError as exc:
        missing = exc.errno in (errno.ENOENT, errno.ENOTDIR)
        return f"{shown} does not exist" if missing else f"{shown} cannot be reached: {reason(exc)}"
    if not stat.S_ISREG(st.st_mode):
        return f"{shown} is not a regular file"
    if not st.st_mode & 0o111:
        return f"{shown} is not executable"
    return None


def start_chain(ctx: Context, image_path: str, depth: int = 0) -> tuple[list[str], Optional[str]]:
    """What the image's kernel would open to start ``image_path``: the file, its ``#!`` interpreters and
    the ELF loader (image paths), and why it could not start (``None`` when nothing stops it), judged from
    the files alone. An ELF program must match the image's machine."""
    problem = _regular(ctx, image_path)
    if problem is not None:
        return [image_path], problem
    host = ctx.host(image_path)
    words = read_shebang(host)
    if words is not None:
        interpreter = words[0]
        if not interpreter.startswith("/") or "\0" in interpreter:
            return [image_path], f"the #! line of {image_path} names no absolute interpreter"
        if depth >= MAX_SCRIPT_DEPTH:
            return [image_path], f"{image_path}: too many #! interpreters in a row"
        chain, inner = start_chain(ctx, interpreter, depth + 1)
        return [image_path, *chain], inner
    info = read_elf(host)
    if info is None or info.elf_type not in (_ET_EXEC, _ET_DYN):
        return [image_path], f"{image_path} is neither an ELF program nor a #! script"
    reference = _reference(ctx)
    if reference is not None and reference[1].arch_key != info.arch_key:
        theirs = f"the image's {reference[0]} for {_machine(reference[1])}"
        return [image_path], f"{image_path} is built for {_machine(info)}, {theirs}"
    if not info.interp:
        return [image_path], None
    return [image_path, info.interp], _regular(ctx, info.interp)


def blocked_in_chain(ctx: Context, chain: list[str], user: User) -> Optional[tuple[str, str]]:
    """``(file, the path that denies it)`` for the first file of a start chain that ``user`` may not
    use by the mode bits (read and execute for the program, execute for interpreters), else ``None``."""
    for index, item in enumerate(chain):
        want = os.R_OK | os.X_OK if index == 0 else os.X_OK
        blocked = path_reachable(ctx, item, user, want)
        if blocked is not None:
            return item, blocked
    return None


def recorded_version(ctx: Context, prefix: str) -> Optional[str]:
    """The Python version conda recorded for the env (``conda-meta/python-<version>-<build>.json``)."""
    meta = os.path.join(prefix, "conda-meta")
    try:
        names = sorted(os.listdir(ctx.host(meta)))
    except OSError:
        return None
    for name in names:
        if not (name.startswith("python-") and name[7:8].isdigit() and name.endswith(".json")):
            continue
        try:
            record = json.loads(ctx.read_bytes(os.path.join(meta, name), limit=None))
        except (OSError, ValueError, RecursionError):
            continue
        if (
            isinstance(record, dict)
            and record.get("name") == "python"
            and isinstance(record.get("version"), str)
        ):
            return str(record["version"])
    return None


def _static(ctx: Context, env: Env, user: User, details: Details) -> Check:
    cid = f"python:{env.prefix}"
    python = os.path.join(env.prefix, "bin", "python")
    details.update(executed=False, why=why_not_executed(ctx, user))
    chain, problem = start_chain(ctx, python)
    details["chain"] = list(chain)
    if problem is not None:
        details["problem"] = problem
        advice = "reinstall python in the env (a broken link or a foreign-architecture interpreter)"
        return Check(cid, FAIL, f"env {env.name}: bin/python does not start ({problem})", advice, details)
    denied = blocked_in_chain(ctx, chain, user)
    if denied is not None:
        details["blocked"] = denied[1]
        what = "bin/python" if denied[0] == python else f"bin/python (its {denied[0]})"
        return Check(
            cid,
            FAIL,
            f"env {env.name}: UID {user.uid} cannot run {what} ({denied[1]} denies it)",
            f"chown -R {user.uid}:{user.gid} {env.root or env.prefix} or chmod -R a+rX {env.prefix}",
            details,
        )
    version = recorded_version(ctx, env.prefix)
    details["version"] = version
    shown = f"Python {version}" if version else "version unknown (no conda-meta/python-*.json)"
    return Check(cid, PASS, f"env {env.name}: {shown}; bin/python can start (checked, not run)", "", details)


def _run(ctx: Context, env: Env, user: User, probe: bool, details: Details) -> Check:
    cid = f"python:{env.prefix}"
    argv = [os.path.join(env.prefix, "bin", "python"), "-V"]
    if probe:
        argv = as_user(user.uid, user.gid, argv)
    details["as_uid"] = user.uid
    result = run_probe(argv)
    details.update(executed=True, returncode=result.returncode, output=result.output)
    if not result.ok:
        return Check(
            cid,
            FAIL,
            f"env {env.name}: bin/python does not start ({result.last_line})",
            "run it by hand to see why; a broken or foreign-architecture interpreter needs a reinstall",
            details,
        )
    details["version"] = result.last_line
    return Check(cid, PASS, f"env {env.name}: {result.last_line}", "", details)


def check_python(ctx: Context, env: Env, user: User) -> Check:
    """The env's ``bin/python`` starts for the default user (a missing one only warns: not every env is a
    Python env)."""
    python = os.path.join(env.prefix, "bin", "python")
    details: Details = {"env": env.name, "prefix": env.prefix, "python": python}
    if not os.path.lexists(os.path.join(ctx.host(os.path.dirname(python)), "python")):
        advice = "fine for a non-Python env; else reinstall python"
        return Check(f"python:{env.prefix}", WARN, f"env {env.name} has no bin/python", advice, details)
    method = execution_method(ctx, user)
    details["method"] = method
    if method == "static":
        return _static(ctx, env, user, details)
    return _run(ctx, env, user, method == "probe", details)
