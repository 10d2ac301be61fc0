"""Showing a plan to people and programs: the explanation (stderr), the ``--json`` plan and the
``--dry-run`` line. Pure: every function returns text."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Optional

from launcher.core.build import LaunchPlan
from launcher.render.shells import Assignment, Dialect, render_line

_SECRET = re.compile(r"SECRET|TOKEN|PASSW|CREDENTIAL|PRIVATE|(^|_)(AK|SK|KEY|API_KEY)($|_)", re.IGNORECASE)
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LIST_VARS = ("PATH", "LD_LIBRARY_PATH")
MASK = "********"

JSON_VERSION = 1


def is_secret(name: str) -> bool:
    """Whether a variable's value must not be shown (credentials are common in training containers)."""
    return bool(_SECRET.search(name))


def shown(name: str, value: str) -> str:
    """The value as the explanation may show it."""
    return MASK if is_secret(name) else value


def explanation(plan: LaunchPlan, *, every_variable: bool) -> list[str]:
    """Lines (without the ``ma-launch:`` prefix) that say what the launch does and why."""
    lines = list(plan.decisions)
    if every_variable:
        lines += plan.ld.details
        for name, value in plan.net_set():
            lines.append(f"set {name}={shown(name, value)}  ({plan.source_of(name)})")
        for name in plan.net_unset():
            lines.append(f"unset {name}  ({plan.source_of(name)})")
    lines.append("exec " + " ".join(_printable(a) for a in plan.argv))
    return lines


def _printable(word: str) -> str:
    from launcher.render.shells import quote_posix

    return quote_posix(word).encode("utf-8", "backslashreplace").decode("utf-8")


def dry_run_line(
    plan: LaunchPlan,
    dialect: Dialect,
    *,
    argv: Optional[Sequence[str]] = None,
    restate_unexportable: bool = True,
) -> str:
    """The one-line command that does in ``dialect``'s shell what the real run does.

    ``argv`` replaces the plan's (``bake`` adds ``"$@"`` handling); ``restate_unexportable=False`` leaves
    out the inherited variables no shell can export, which only make sense on the machine that made them.
    """
    assign: list[Assignment] = []
    for name, value in plan.net_set():
        prepend = _prepended(plan, name, value) if dialect.posix_expansion else ()
        assign.append(Assignment(name, value, prepend, _copied(plan, name, value)))
    changed = {name for name, _ in plan.net_set()}
    # Names no shell can export are dropped by some shells (dash) on the way to the program: restate them.
    for name, value in plan.environ.items():
        if restate_unexportable and name not in changed and not _SHELL_NAME.match(name):
            assign.append(Assignment(name, value))
    return render_line(dialect, plan.workdir, plan.net_unset(), assign, plan.argv if argv is None else argv)


def _copied(plan: LaunchPlan, name: str, value: str) -> Optional[str]:
    """The variable whose starting value ``name`` keeps (MA_LAUNCH_ORIG_LD_LIBRARY_PATH), if any."""
    if name == "MA_LAUNCH_ORIG_LD_LIBRARY_PATH" and value == plan.base.get("LD_LIBRARY_PATH", ""):
        return "LD_LIBRARY_PATH"
    return None


def _prepended(plan: LaunchPlan, name: str, value: str) -> tuple[str, ...]:
    """The entries put in front of a list variable, when the rest is exactly the starting value."""
    if name not in _LIST_VARS:
        return ()
    old = plan.base.get(name, "")
    old_entries = old.split(":") if old else []
    if "" in old_entries:
        return ()
    new_entries = value.split(":")
    count = len(new_entries) - len(old_entries)
    if count <= 0 or new_entries[count:] != old_entries:
        return ()
    return tuple(new_entries[:count])


def plan_json(plan: LaunchPlan, *, shell: Optional[str] = None, line: Optional[str] = None) -> str:
    """The plan as JSON (keys documented in the README); secret values are masked."""
    env = plan.choice.env
    data: dict[str, Any] = {
        "version": JSON_VERSION,
        "argv": list(plan.argv),
        "program": plan.program,
        "is_python": plan.is_python,
        "workdir": plan.workdir,
        "env": None if env is None else {"name": env.name, "prefix": env.prefix, "root": env.root},
        "platform": {"kind": plan.platform.kind, "evidence": list(plan.platform.evidence)},
        "distributed": None
        if plan.dist is None
        else {
            "nnodes": plan.dist.nnodes,
            "node_rank": plan.dist.node_rank,
            "nproc_per_node": plan.dist.nproc_per_node,
            "master_addr": plan.dist.master_addr,
            "master_port": plan.dist.master_port,
        },
        "env_rule": plan.choice.rule,
        "env_reason": plan.choice.reason,
        "set": {name: shown(name, value) for name, value in plan.net_set()},
        "unset": plan.net_unset(),
        "changes": [
            {
                "name": c.name,
                "value": None if c.value is None else shown(c.name, c.value),
                "source": c.source,
            }
            for c in plan.changes
        ],
        "ld_library_path": {
            "mode": plan.ld.mode,
            "added": list(plan.ld.added),
            "reasons": list(plan.ld.reasons),
            "warnings": list(plan.ld.warnings),
            "analysis": plan.ld.analysis,
        },
        "decisions": list(plan.decisions),
        "warnings": list(plan.warnings),
        "problems": [{"message": p.message, "hint": p.hint, "exit_code": p.exit_code} for p in plan.problems],
        "exit_code": plan.problems[0].exit_code if plan.problems else 0,
        "shell": shell,
        "line": line,
    }
    return json.dumps(data, indent=2, ensure_ascii=True)
