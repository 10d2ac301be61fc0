"""The ``--json`` plan (keys documented in the README); secret values are masked."""

from __future__ import annotations

from launcher.render.mask import shown

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from launcher.core.plan import LaunchPlan

JSON_VERSION = 1


def plan_data(
    plan: LaunchPlan, *, shell: Optional[str] = None, line: Optional[str] = None
) -> dict[str, object]:
    """The plan as JSON-able data."""
    from launcher.modelarts.restarts import restarts

    env = plan.choice.env
    dist = plan.dist
    restart = restarts(plan.base)
    return {
        "version": JSON_VERSION,
        "argv": list(plan.argv),
        "program": plan.program,
        "is_python": plan.is_python,
        "workdir": plan.workdir,
        "env": None if env is None else {"name": env.name, "prefix": env.prefix, "root": env.root},
        "platform": {"kind": plan.platform.kind, "evidence": list(plan.platform.evidence)},
        "distributed": None
        if dist is None
        else {
            "nnodes": dist.nnodes,
            "node_rank": dist.node_rank,
            "nproc_per_node": dist.nproc_per_node,
            "master_addr": dist.master_addr,
            "master_port": dist.master_port,
        },
        "restart": None if restart is None else restart.data(),
        "env_rule": plan.choice.rule,
        "env_reason": plan.choice.reason,
        "set": {name: shown(name, value) for name, value in plan.net_set()},
        "unset": plan.net_unset(),
        "changes": [
            {"name": c.name, "value": None if c.value is None else shown(c.name, c.value), "source": c.source}
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
        "exit_code": plan.exit_code,
        "shell": shell,
        "line": line,
    }


def plan_json(plan: LaunchPlan, *, shell: Optional[str] = None, line: Optional[str] = None) -> str:
    """The plan as indented JSON text (ASCII only: non-UTF-8 bytes appear as ``\\udcXX`` escapes)."""
    import json

    return json.dumps(plan_data(plan, shell=shell, line=line), indent=2, ensure_ascii=True)
