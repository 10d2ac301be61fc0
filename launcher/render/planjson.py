"""The ``--json`` plan (keys documented in the README), by the masking rule: it goes to job logs.

Every value in it is masked by :mod:`launcher.render.mask`, ``line`` included: that one is the ``--dry-run``
line rendered from the plan with its values masked (the exact line is ``--dry-run``'s stdout alone).
"""

from __future__ import annotations

from launcher.render.mask import mask_argv, mask_text, shown

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from launcher.core.plan import LaunchPlan
    from launcher.render.shells import Dialect

JSON_VERSION = 1


def plan_data(
    plan: LaunchPlan, *, shell: Optional[str] = None, dialect: Optional[Dialect] = None
) -> dict[str, object]:
    """The plan as JSON-able data, masked; ``line`` is the line for ``dialect`` (``None`` without one)."""
    from launcher.modelarts.restarts import restarts

    env = plan.choice.env
    dist = plan.dist
    restart = restarts(plan.base)
    data: dict[str, object] = {
        "version": JSON_VERSION,
        "argv": mask_argv(plan.argv),
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
    }
    # Free text (decisions, reasons, problems…) may quote any value.
    masked = {key: _masked(item) for key, item in data.items()}
    masked["line"] = None if dialect is None else masked_line(plan, dialect)
    return masked


def plan_json(plan: LaunchPlan, *, shell: Optional[str] = None, dialect: Optional[Dialect] = None) -> str:
    """The plan as indented JSON text (ASCII only: non-UTF-8 bytes appear as ``\\udcXX`` escapes)."""
    import json

    return json.dumps(plan_data(plan, shell=shell, dialect=dialect), indent=2, ensure_ascii=True)


def masked_line(plan: LaunchPlan, dialect: Dialect) -> str:
    """The ``--dry-run`` line for ``dialect`` with every value shown by the masking rule."""
    from launcher.render.line import dry_run_line

    return dry_run_line(_masked_plan(plan), dialect)


def _masked_plan(plan: LaunchPlan) -> LaunchPlan:
    """``plan`` with its argv and every variable value as the masking rule shows them. A change the mask
    would hide (a secret replaced by another) stays a change: its starting value is left out."""
    from launcher.core.plan import Change, LaunchPlan

    environ = {name: shown(name, value) for name, value in plan.environ.items()}
    base = {name: shown(name, value) for name, value in plan.base.items()}
    for name, _ in plan.net_set():
        if base.get(name) == environ.get(name):
            del base[name]
    changes = tuple(
        Change(c.name, None if c.value is None else shown(c.name, c.value), c.source, c.kind)
        for c in plan.changes
    )
    return LaunchPlan(
        argv=tuple(mask_argv(plan.argv)),
        workdir=plan.workdir,
        environ=environ,
        base=base,
        choice=plan.choice,
        changes=changes,
        program=plan.program,
        is_python=plan.is_python,
        ld=plan.ld,
        platform=plan.platform,
        dist=plan.dist,
        decisions=plan.decisions,
        warnings=plan.warnings,
        problems=plan.problems,
    )


def _masked(value: object) -> object:
    """Every string in a JSON-able value by the masking rule (dictionary keys are names, kept)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(item) for item in value]
    return value
