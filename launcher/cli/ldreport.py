"""``--ld-report``: the shared-library analysis of a whole env (its executables included), without running
anything: what the loader would miss, which env directory provides it, and the fix. With ``--save`` the
analysis is also kept in the env, for the launches of an image (pre-computed at image build)."""

from __future__ import annotations

import os

from launcher.errors import AccessError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional

    from launcher.core.plan import LaunchPlan
    from launcher.ld.result import LdAnalysis


def report(plan: LaunchPlan, *, as_json: bool, save: bool) -> str:
    """The report for the env and program of ``plan`` (planned with ``--ld-library-path off``), as text
    or JSON. Reads and writes the user's LD cache; with ``save``, writes the analysis into the env."""
    env = plan.choice.env
    if env is None:
        raise UsageError("--ld-report needs an env and none was found", hint="give -n ENV or -p PREFIX")
    analysis, saved = _analysis(env.prefix, plan.program, plan.environ, save=save)
    if as_json:
        import json

        data = {
            "env": {"name": env.name, "prefix": env.prefix},
            "program": plan.program,
            **analysis.to_json(),
            "saved": saved,
        }
        return json.dumps(data, indent=2) + "\n"
    lines = [f"env {env.name} ({env.prefix}); program {plan.program or plan.argv[0]}"]
    lines += analysis.report()
    if analysis.added:
        added = ":".join(analysis.directories)
        lines.append(
            f"the fix ma-launch applies: LD_LIBRARY_PATH={added}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"
        )
    if saved:
        lines.append(f"saved for the launches of this image: {saved}")
    return "\n".join(lines) + "\n"


def _analysis(
    prefix: str, program: Optional[str], environ: Mapping[str, str], *, save: bool
) -> tuple[LdAnalysis, Optional[str]]:
    """The whole-env analysis (through the user's cache), or with ``save`` a fresh one kept in the env;
    and the directory it was saved in."""
    from launcher.ld.analysis import analyze
    from launcher.run import ldstore

    if not save:
        return analyze(prefix, program, environ, store=ldstore.user_store(environ), reach=True), None
    from launcher.ld.precompute import precompute

    directory = ldstore.precomputed_dir(prefix)
    try:
        os.makedirs(directory, exist_ok=True)  # first: making it must not change what the analysis sees
        analysis, docs = precompute(prefix, program, environ)
        return analysis, ldstore.save_precomputed(prefix, docs)
    except OSError as error:
        raise AccessError(
            f"cannot save the LD analysis into {directory}: {error.strerror}",
            hint="run --ld-report --save as the user who owns the env (in the Dockerfile, after USER)",
        ) from None
