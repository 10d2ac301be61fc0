"""The planning steps that read the ModelArts job: which platform runs it and how often it restarted, the
channel arguments it appends, the distributed variables, the boot-line lint and the accelerator preflight.
Lint and preflight findings are warnings; under ``--strict-lint`` the first is also a problem (exit 78)
that ``--dry-run`` still shows (see :mod:`launcher.core.build`)."""

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


def detect_platform_step(draft: Draft) -> None:
    """Which ModelArts service (if any) runs this container."""
    from launcher.modelarts.platform import detect_platform

    draft.platform = detect_platform(draft.base)
    draft.decisions.append(f"platform: {draft.platform.describe()}")


def split_channels_step(draft: Draft) -> None:
    """Take the trailing channel arguments off the command (``--channel-args env|drop``)."""
    request = draft.request
    if request.channel_args == "pass":
        return
    from launcher.modelarts.channels import split_channel_args

    # After -c every word is appended; otherwise the first word is the program and never a channel.
    words = ["-c", *request.command] if request.shell_line is not None else list(request.command)
    split = split_channel_args(words, draft.base, mode=request.channel_args, names=request.channel_names)
    if split.removed:
        verb = "turned into variables" if request.channel_args == "env" else "dropped"
        draft.decisions.append(
            f"channel arguments {verb}: {' '.join(split.removed)} (names from {split.names_from})"
        )
    draft.command = tuple(split.argv[1:] if request.shell_line is not None else split.argv)
    draft.channel_env = dict(split.env)


def channel_variables_step(draft: Draft) -> None:
    """The channel arguments taken off the command, as variables (``--channel-args env``)."""
    source = "channel argument appended by the platform (--channel-args env)"
    for name, value in draft.channel_env.items():
        draft.env.set(name, value, source, "channel")


def distributed_step(draft: Draft) -> None:
    """Derive the distributed variables on ModelArts (unless --no-dist-env; --torchrun and --msrun need the
    values anyway, on a single node off ModelArts too)."""
    request = draft.request
    launcher = request.torchrun or request.msrun
    if not launcher and not (request.dist_env and draft.platform.on_modelarts):
        return
    from launcher.modelarts.distributed import dist_env

    dist = dist_env(
        draft.env.env, draft.platform, master_port=request.master_port, world_per_node=request.world_per_node
    )
    draft.dist = dist
    if request.dist_env:
        for name, value in dist.set.items():
            draft.env.set(
                name, value, f"distributed training: {dist.sources.get(name, 'derived')}", "distributed"
            )
    if draft.platform.on_modelarts or request.torchrun or request.msrun:
        draft.decisions.append(
            f"distributed: {dist.nnodes} node(s), this is node {dist.node_rank}, {dist.nproc_per_node} "
            f"process(es) per node, master {dist.master_addr}:{dist.master_port}"
        )
        draft.decisions.extend(dist.notes)


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
