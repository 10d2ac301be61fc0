"""``ma-launch doctor``: check a ModelArts custom image against the platform's rules.

The image is either the running system (root ``/``) or an unpacked image root (``docker export``
extracted into a directory), seen through a :class:`~launcher.image.context.Context`. :func:`run_checks`
runs every check in a stable order; :func:`render_table` and :func:`to_json` present the result. Exit
status (see ``launcher.cli.app``): 0 when no check fails, 1 when any check fails; bad arguments raise
their :class:`~launcher.errors.LaunchError` before anything is checked.

The checks live by subject in ``checks_user``, ``checks_conda``, ``checks_python``, ``checks_ld``,
``checks_files``, ``checks_ascend`` and ``checks_runtime``. Nothing here changes the checked image, and an
image's files are executed only on the running image, only as its default user, never as root (see
:func:`launcher.image.users.execution_method`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Callable

from launcher.image.check import FAIL, PASS, STATUSES, WARN, Check, Status
from launcher.image.checks_ascend import ascend_checks
from launcher.image.checks_conda import check_conda, check_default_env, discover
from launcher.image.checks_files import check_drivers, check_setuid, check_size, scan_tree
from launcher.image.checks_ld import check_ld
from launcher.image.checks_python import check_python
from launcher.image.checks_runtime import check_ma_launch, check_sh, check_unbuffered
from launcher.image.checks_user import check_home, check_user
from launcher.image.context import Context, make_context
from launcher.image.reading import reason
from launcher.image.users import default_user

__all__ = ["Context", "counts", "exit_code", "make_context", "render_table", "run_checks", "to_json"]

#: JSON output format version; bumped on incompatible changes.
JSON_VERSION = 1


def _unreadable(check_id: str, exc: OSError) -> Check:
    """A failing check naming the file the image holds and doctor cannot read."""
    where = f"{exc.filename}: " if exc.filename else ""
    summary = f"cannot read {where}{reason(exc)}"
    return Check(check_id, FAIL, summary, "fix or remove that path in the image", {"error": summary})


def _guarded(check_id: str, run: Callable[..., Check], *args: object) -> Check:
    """``run(*args)``, or a failing check naming the file when the image holds something doctor cannot
    read (one check never stops the others)."""
    try:
        return run(*args)
    except OSError as exc:
        return _unreadable(check_id, exc)


def _guarded_all(check_id: str, run: Callable[..., list[Check]], *args: object) -> list[Check]:
    """:func:`_guarded` for a function that returns several checks."""
    try:
        return run(*args)
    except OSError as exc:
        return [_unreadable(check_id, exc)]


def run_checks(ctx: Context) -> list[Check]:
    """Every check, in a stable order. Side effects: probes on the live image (see the checks)."""
    user = default_user(ctx)
    checks = [_guarded("user", check_user, ctx), _guarded("home", check_home, ctx, user)]
    conda = discover(ctx)
    checks.append(check_conda(conda))
    checks.append(_guarded("default-env", check_default_env, ctx, conda))
    checks += [_guarded(f"python:{env.prefix}", check_python, ctx, env, user) for env in conda.envs]
    checks += [_guarded(f"ld:{env.prefix}", check_ld, ctx, env) for env in conda.envs]
    scan = scan_tree(ctx)
    checks += [check_setuid(ctx, scan), check_drivers(scan), check_size(scan)]
    checks += _guarded_all("ascend", ascend_checks, ctx, conda.envs)
    checks.append(_guarded("sh", check_sh, ctx))
    checks.append(check_unbuffered(ctx))
    checks.append(_guarded("ma-launch", check_ma_launch, ctx, user))
    return checks


def counts(checks: Sequence[Check]) -> dict[Status, int]:
    return {s: sum(1 for c in checks if c.status == s) for s in STATUSES}


def exit_code(checks: Sequence[Check]) -> int:
    """0 when no check fails, 1 otherwise."""
    return 1 if any(c.status == FAIL for c in checks) else 0


def to_json(ctx: Context, checks: Sequence[Check]) -> str:
    """The documented JSON report::

    {"version": 1, "root": "/", "checks": [{"id", "status": "pass|warn|fail", "summary", "advice",
      "details": {...}}], "counts": {"pass": n, "warn": n, "fail": n}, "ok": true}
    """
    report = {
        "version": JSON_VERSION,
        "root": ctx.root,
        "checks": [c.as_dict() for c in checks],
        "counts": counts(checks),
        "ok": exit_code(checks) == 0,
    }
    return json.dumps(report, indent=2, sort_keys=False)


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """``text`` safe to print as part of one line: control characters, lone surrogates (bytes that were
    not UTF-8) and other unprintable characters are written as Python escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _ESCAPES.get(c) or repr(c)[1:-1] for c in text)


def render_table(ctx: Context, checks: Sequence[Check], write: Callable[[str], object]) -> None:
    """The human report: a header, one line per check (with a line of advice unless it passed), and the
    counts."""
    width = max([len(c.id) for c in checks] + [5])
    write(f"ma-launch doctor: {'the running image' if ctx.live else one_line(ctx.root)}\n")
    for c in checks:
        write(f"{c.status.upper():<4}  {one_line(c.id):<{width}}  {one_line(c.summary)}\n")
        if c.advice and c.status != PASS:
            write(f"{'':<4}  {'':<{width}}  -> {one_line(c.advice)}\n")
    n = counts(checks)
    write(f"{n[PASS]} passed, {n[WARN]} warnings, {n[FAIL]} failed\n")
