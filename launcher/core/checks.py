"""The planning steps that check rather than decide: the platform's restart counts, boot-line lint and the
accelerator preflight. Warnings go to the plan; under ``--strict-lint`` the first lint or preflight finding
is also a problem (exit 78) that ``--dry-run`` still shows (see :mod:`launcher.core.build`)."""

from __future__ import annotations

from launcher.errors import ConfigError
from launcher.modelarts import facts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from launcher.core.build import Draft
    from launcher.modelarts.lint import LintWarning


def restarts_step(draft: Draft) -> None:
    """Whether the platform runs the boot command again (``MA_PROC_START_CNT``, ``MA_SCHEDULE_CNT``)."""
    if not (draft.base.get(facts.START_COUNT) or draft.base.get(facts.SCHEDULE_COUNT)):
        return  # a first start off the platform: nothing to read (and nothing more to import)
    from launcher.modelarts.restarts import restarts

    found = restarts(draft.base)
    if found is not None:
        draft.decisions.append(found.describe())


def lint_step(draft: Draft) -> None:
    """Boot-line warnings (see :func:`_report`)."""
    from launcher.modelarts.lint import lint

    request = draft.request
    declared = [c.name for c in draft.env.changes if c.kind == "declared"]
    found = lint(
        draft.command,
        shell_line=request.shell_line,
        environ=draft.base,
        platform=draft.platform,
        workdir=draft.workdir,
        user_env_names=declared,
    )
    _report(draft, found, "boot-line lint")


def preflight_step(draft: Draft) -> None:
    """The visible accelerators against MA_NUM_GPUS and torchrun's processes per node, in the program's
    environment (see :mod:`launcher.modelarts.devices`)."""
    request = draft.request
    environ = draft.env.env
    named = (*facts.VISIBLE_GPU_VARIABLES, *facts.VISIBLE_NPU_VARIABLES, "MA_NUM_GPUS")
    if not request.torchrun and not any(name in environ for name in named):
        return  # nothing says how many accelerators there should be: nothing to compare
    from launcher.modelarts.devices import preflight, whole_number

    nproc = None
    if request.torchrun and draft.dist is not None:
        from launcher.modelarts.torchrun import processes_per_node

        nproc = processes_per_node(draft.dist, request.torchrun_args)
    gpus = whole_number(environ.get("MA_NUM_GPUS"))
    _report(draft, preflight(environ, gpus=gpus, nproc=nproc), "preflight")


def _report(draft: Draft, found: Sequence[LintWarning], what: str) -> None:
    """Warnings; under --strict-lint the first one is also a problem (78) that dry-run still shows."""
    if found and draft.request.strict_lint:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        draft.problems.append(ConfigError(f"{what} [{first.code}]: {first.message}{more}", hint=first.hint))
    draft.warnings += [f"[{w.code}] {w.message} (hint: {w.hint})" for w in found]
