"""``--ld-report``: the shared-library analysis of a whole env (its programs included), without running
anything: what the loader would miss, which env directory provides it, and the fix."""

from __future__ import annotations

from launcher.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from launcher.core.plan import LaunchPlan


def report(plan: LaunchPlan, *, as_json: bool) -> str:
    """The report for the env and program of ``plan`` (planned with ``--ld-library-path off``), as text
    or JSON. Reads and writes the LD cache."""
    from launcher.ld.analysis import analyze, env_programs

    env = plan.choice.env
    if env is None:
        raise UsageError("--ld-report needs an env and none was found", hint="give -n ENV or -p PREFIX")
    analysis = analyze(env.prefix, plan.program, plan.environ, extra_objects=env_programs(env.prefix))
    if as_json:
        import json

        data = {
            "env": {"name": env.name, "prefix": env.prefix},
            "program": plan.program,
            **analysis.to_json(),
        }
        return json.dumps(data, indent=2) + "\n"
    lines = [f"env {env.name} ({env.prefix}); program {plan.program or plan.argv[0]}"]
    lines += analysis.explain_lines()
    if analysis.added:
        added = ":".join(analysis.directories)
        lines.append(
            f"the fix ma-launch applies: LD_LIBRARY_PATH={added}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"
        )
    return "\n".join(lines) + "\n"
