"""The ``ma-launch`` command: parse, plan, then show or execute. The one place errors are caught.

Only the standard library is imported on the launch path; typer loads for subcommands only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Optional

from launcher.errors import ConfigError, LaunchError, UsageError

if TYPE_CHECKING:
    from launcher.cli.options import Parsed
    from launcher.core.build import LaunchPlan, Request
    from launcher.ld.result import LdAnalysis

PREFIX = "ma-launch: "
#: Subcommands with their own options, run by the typer app; ``bake`` shares the launch options.
TYPER_SUBCOMMANDS = frozenset({"doctor", "pack"})


def say(message: str) -> None:
    """Write one of the launcher's own lines to stderr (stdout belongs to the program)."""
    sys.stderr.write(PREFIX + message + "\n")


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    """Entry point of the ``ma-launch`` console script and ``python -m launcher``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in TYPER_SUBCOMMANDS:
        from launcher.cli.app import run

        sys.exit(run(args))
    from launcher.cli.options import wants_debug

    debug = wants_debug(args, os.environ)
    try:
        sys.exit(_launch(args))
    except LaunchError as error:
        if debug:
            import traceback

            traceback.print_exc()
        sys.stderr.write(error.line() + "\n")
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        if debug:
            raise
        say(f"error: internal error: {type(error).__name__}: {error} (hint: run again with --debug)")
        sys.exit(70)


def _launch(args: list[str]) -> int:
    from launcher.cli import options
    from launcher.core.build import build_plan
    from launcher.run.activate import run_scripts_in_bash
    from launcher.run.ldstore import user_store

    bake = bool(args) and args[0] == "bake"
    parsed = options.parse(args[1:] if bake else args, os.environ, options.BAKE_OPTIONS if bake else ())
    if parsed.flag("help"):
        sys.stdout.write(options.help_text() + "\n")
        return 0
    if parsed.flag("version"):
        from launcher import __version__

        sys.stdout.write(f"ma-launch {__version__}\n")
        return 0
    quiet = parsed.flag("quiet")
    verbose = parsed.flag("verbose") or parsed.flag("debug")
    if parsed.flag("ld_report"):
        return _ld_report(parsed)
    if parsed.flag("ld_save"):
        raise UsageError("--save goes with --ld-report", hint="ma-launch --ld-report -n ENV --save")
    plan = build_plan(
        _request(parsed),
        os.environ,
        _cwd(),
        script_runner=run_scripts_in_bash,
        ld_store=user_store(os.environ),
    )
    dry_run = parsed.flag("dry_run") or parsed.flag("json") or bake
    plan = _rank_table(plan, parsed, wait=not dry_run, quiet=quiet)
    if bake:
        return _bake(plan, parsed, args)
    if dry_run:
        return _dry_run(plan, parsed.text("shell"), as_json=parsed.flag("json"), quiet=quiet)
    from launcher.run.supervise import pid1_warnings

    init = parsed.text("init") or "auto"
    grace = _grace(parsed.text("grace"))
    if not quiet:
        from launcher.render.explain import explanation

        for warning in [*plan.warnings, *pid1_warnings(init)]:
            say(f"warning: {warning}")
        for line in explanation(plan, every_variable=verbose):
            say(line)
    from launcher.run.execute import run_plan

    return run_plan(plan, init=init, grace=grace, quiet=quiet)


def _request(parsed: Parsed) -> Request:
    """The plan request from parsed options."""
    from launcher.core.build import Request

    names = parsed.text("channel_names")
    extra = parsed.values.get("torchrun_arg")
    return Request(
        command=tuple(parsed.command),
        shell_line=parsed.text("shell_line"),
        name=parsed.text("name"),
        prefix=parsed.text("prefix"),
        workdir=parsed.text("workdir"),
        ld_mode=parsed.text("ld_library_path") or "auto",
        conda_run=parsed.flag("conda_run"),
        line_buffered=parsed.flag("line_buffered"),
        strict_activation=parsed.flag("strict_activation"),
        channel_args=parsed.text("channel_args") or "pass",
        channel_names=tuple(n.strip() for n in names.split(",") if n.strip())
        if names
        else ("data_url", "train_url"),
        dist_env=not parsed.flag("no_dist_env"),
        master_port=_number(parsed.text("master_port"), "--master-port", 6060, integer=True),
        world_per_node=parsed.flag("world_per_node"),
        torchrun=parsed.flag("torchrun"),
        torchrun_args=tuple(extra) if isinstance(extra, list) else (),
        strict_lint=parsed.flag("strict_lint"),
    )


def _ld_report(parsed: Parsed) -> int:
    """``--ld-report``: the targeted LD_LIBRARY_PATH analysis for a whole env (its executables too), on
    stdout; runs nothing. With ``--save``, also keep it in the env for the launches of an image."""
    import dataclasses
    import json

    from launcher.core.build import build_plan
    from launcher.run.activate import run_scripts_in_bash

    # Plan without LD changes (for the env, its activation and the program), then analyse the program
    # and every executable of the env as well: a report is for the whole env.
    request = dataclasses.replace(_request(parsed), ld_mode="off")
    if not request.command and request.shell_line is None:
        request = dataclasses.replace(request, command=("python",))
    plan = build_plan(request, os.environ, _cwd(), script_runner=run_scripts_in_bash)
    env = plan.choice.env
    if env is None:
        raise UsageError("--ld-report needs an env and none was found", hint="give -n ENV or -p PREFIX")
    analysis, saved = _ld_analysis(env.prefix, plan.program, plan.environ, save=parsed.flag("ld_save"))
    if parsed.flag("json"):
        report = {
            "env": {"name": env.name, "prefix": env.prefix},
            "program": plan.program,
            **analysis.to_json(),
            "saved": saved,
        }
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    lines = [f"env {env.name} ({env.prefix}); program {plan.program or plan.argv[0]}"]
    lines += analysis.report()
    if analysis.added:
        added = ":".join(analysis.directories)
        lines.append(
            f"the fix ma-launch applies: LD_LIBRARY_PATH={added}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"
        )
    if saved:
        lines.append(f"saved for the launches of this image: {saved}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _ld_analysis(
    prefix: str, program: Optional[str], environ: Mapping[str, str], *, save: bool
) -> tuple[LdAnalysis, Optional[str]]:
    """The whole-env analysis for ``--ld-report`` (through the user's cache), or with ``save`` a fresh
    one, kept in the env; then also (analysis, the directory it was saved in)."""
    from launcher.ld.analysis import analyze
    from launcher.run import ldstore

    if not save:
        return analyze(prefix, program, environ, store=ldstore.user_store(environ), reach=True), None
    from launcher.errors import AccessError
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


def _rank_table_active(parsed: Parsed) -> bool:
    if (parsed.text("rank_table") or "auto") == "off":
        return False
    return bool(os.environ.get("RANK_TABLE_FILE") or os.environ.get("RANK_TABLE_FILE_V_1_0"))


def _rank_table(plan: LaunchPlan, parsed: Parsed, *, wait: bool, quiet: bool) -> LaunchPlan:
    """Wait for and convert the Ascend rank table (real runs only) and export it to the program."""
    if not _rank_table_active(parsed):
        return plan
    if not wait:
        return plan.with_changes(
            [],
            "rank table: at launch, ma-launch waits for RANK_TABLE_FILE to be completed, converts it to "
            "template 1 and sets RANK_TABLE_FILE and RANK_SIZE (a dry run does not wait)",
        )
    from launcher.core.activation import Change
    from launcher.modelarts.ranktable import prepare_rank_table

    table = prepare_rank_table(
        os.environ,
        mode=parsed.text("rank_table") or "auto",
        timeout=_number(parsed.text("rank_table_timeout"), "--rank-table-timeout", 600.0),
        out_path=parsed.text("rank_table_out"),
        progress=(lambda _text: None) if quiet else say,
    )
    if table is None:
        return plan
    changes = [Change(name, value, "rank table") for name, value in table.env.items()]
    return plan.with_changes(
        changes,
        f"rank table: {table.source_path} (template {table.template}) → {table.path}, "
        f"RANK_SIZE={table.rank_size}",
    )


def _number(text: Optional[str], flag: str, default: float, *, integer: bool = False) -> Any:
    if text is None:
        return int(default) if integer else default
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not a number", hint=f"give {flag} {int(default)}") from None
    import math

    if value < 0 or not math.isfinite(value):
        raise UsageError(f"{flag} {text!r} is out of range", hint=f"give {flag} {int(default)}")
    return value


def _grace(text: Optional[str]) -> float:
    from launcher.run.supervise import DEFAULT_GRACE

    return float(_number(text, "--grace", DEFAULT_GRACE))


def _bake(plan: LaunchPlan, parsed: Parsed, args: Sequence[str]) -> int:
    from launcher import __version__
    from launcher.render.bake import bake_script, write_script

    if _rank_table_active(parsed):
        raise ConfigError(
            "a baked script cannot wait for and convert the Ascend rank table at boot",
            hint="boot with `exec ma-launch …` instead, or bake with --rank-table off",
        )

    text = bake_script(plan, version=__version__, command_line=args)
    output = parsed.text("output")
    if output is None:
        sys.stdout.buffer.write(os.fsencode(text))
        return 0
    write_script(output, text, force=parsed.flag("force"))
    if not parsed.flag("quiet"):
        for warning in plan.warnings:
            say(f"warning: {warning}")
        say(f"wrote {output}; boot command: sh {output}")
    return 0


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # the directory we were started in was removed
        return "/"


def _dry_run(plan: LaunchPlan, shell: Optional[str], *, as_json: bool, quiet: bool) -> int:
    from launcher.render.explain import dry_run_line, explanation, plan_json
    from launcher.render.shells import POSIX, SHELL_NAMES, detect_shell, dialect_for

    if shell is not None:
        dialect = dialect_for(shell)
        if dialect is None:
            raise UsageError(
                f"--shell {shell!r} is not supported", hint=f"choose one of {', '.join(SHELL_NAMES)}"
            )
        shell_name, shell_why = shell, "chosen with --shell"
    else:
        shell_name, shell_why = detect_shell()
        dialect = dialect_for(shell_name) or POSIX
    line = dry_run_line(plan, dialect)
    if as_json:
        sys.stdout.write(plan_json(plan, shell=shell_name, line=line) + "\n")
    else:
        if not quiet:
            for warning in plan.warnings:
                say(f"warning: {warning}")
            for text in explanation(plan, every_variable=True):
                say(text)
            say(f"the line below is for {shell_name} ({shell_why})")
        sys.stdout.flush()
        sys.stdout.buffer.write(os.fsencode(line) + b"\n")
        sys.stdout.flush()
    for problem in plan.problems:
        sys.stderr.write(problem.line() + "\n")
    return plan.problems[0].exit_code if plan.problems else 0
