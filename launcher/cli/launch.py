"""The launch verbs: run a command (exec or supervise), ``--dry-run``/``--json``, ``--ld-report`` and
``bake``. Each parses the options, builds the plan with the real activation runner and LD cache, and hands
it to a renderer or to :mod:`launcher.run`."""

from __future__ import annotations

import os
import sys

from launcher.cli import values
from launcher.cli.main import say
from launcher.errors import ConfigError, UsageError
from launcher.run.pid1 import should_supervise

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from launcher.cli.options import Parsed
    from launcher.cli.values import RunOptions
    from launcher.core.plan import LaunchPlan
    from launcher.core.request import Request
    from launcher.core.sourcing import ShellOutput


#: Why an msrun job needs the supervisor (its workers run in sessions of their own).
UNSUPERVISED_MSRUN = (
    "--msrun with --init never: a stop leaves msrun's workers running (they have sessions of their own); "
    "drop --init never"
)
BAKED_MSRUN = (
    "the baked msrun job has no supervisor: a stop leaves msrun's workers running (they have sessions of "
    "their own); boot with `exec ma-launch --msrun …` instead"
)


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # the directory we were started in was removed
        return "/"


def plan_for(request: Request) -> LaunchPlan:
    """The plan for ``request`` in the environment this process was started with, with the real
    activation runner and the user's LD cache."""
    from launcher.core.build import build_plan
    from launcher.run.ldstore import user_store

    environ = started_environ()
    return build_plan(request, environ, _cwd(), script_runner=_run_bash, ld_store=user_store(environ))


def _run_bash(program: str, environ: Mapping[str, str], cwd: str, timeout: float) -> ShellOutput:
    """The real activation runner (:func:`launcher.run.activate.run_bash_program`), imported only when
    there are scripts to source."""
    from launcher.run.activate import run_bash_program

    return run_bash_program(program, environ, cwd, timeout)


#: The values CPython's locale coercion (PEP 538) writes into LC_CTYPE.
_COERCED = ("C.UTF-8", "C.utf8", "UTF-8")


def started_environ() -> dict[str, str]:
    """``os.environ`` as it was when this process was started.

    Under a C or unset locale, CPython sets ``LC_CTYPE=C.UTF-8`` in its own environment before any Python
    code runs (PEP 538 locale coercion; skipped when LC_ALL is set). The launcher plans from, and passes
    on, the environment it was given: the program (a Python of its own, or not) decides its locale for
    itself. The kernel keeps the environment a process was started with in ``/proc/self/environ``
    (``setenv`` does not write there), which tells whether LC_CTYPE was set, and to what; without /proc
    nothing is changed.
    """
    environ = dict(os.environ)
    current = environ.get("LC_CTYPE")
    if current not in _COERCED or environ.get("LC_ALL"):
        return environ
    try:
        with open("/proc/self/environ", "rb") as handle:
            entries = handle.read().split(b"\0")
    except OSError:
        return environ
    original = next((e[len(b"LC_CTYPE=") :] for e in entries if e.startswith(b"LC_CTYPE=")), None)
    if original is None:
        del environ["LC_CTYPE"]
    else:
        environ["LC_CTYPE"] = os.fsdecode(original)
    return environ


def launch(args: Sequence[str]) -> int:
    """``ma-launch [OPTIONS] [--] COMMAND``: plan, then show (dry-run, JSON, report) or run."""
    from launcher.cli import options

    parsed = options.parse(args, os.environ)
    if parsed.flag("help"):
        sys.stdout.write(options.help_text() + "\n")
        return 0
    if parsed.flag("version"):
        from launcher import __version__

        sys.stdout.write(f"ma-launch {__version__}\n")
        return 0
    if parsed.flag("ld_report"):
        return ld_report(parsed)
    if parsed.flag("ld_save"):
        raise UsageError("--save goes with --ld-report", hint="ma-launch --ld-report -n ENV --save")
    run = values.run_options(parsed)  # checked before planning: a dry run fails as the real run would
    if parsed.flag("dry_run") or parsed.flag("json"):
        return dry_run(_rank_table(plan_for(values.request(parsed)), parsed, wait=False), parsed)
    late = _placement_warnings(run, parsed) if not parsed.flag("quiet") else []
    record = _supervise(run, parsed) if should_supervise(run.init) else None
    plan = plan_for(values.request(parsed))
    if not plan.problems:  # never wait for the rank table of a launch that cannot start
        plan = _rank_table(plan, parsed, wait=True)
    if not parsed.flag("quiet"):
        from launcher.render.explain import explanation

        for warning in [*plan.warnings, *late]:
            say(f"warning: {warning}")
        for line in explanation(plan, every_variable=parsed.flag("verbose") or parsed.flag("debug")):
            say(line, masked=True)
    from launcher.run.execute import exec_plan

    return exec_plan(plan, record)  # never returns: it execs, or raises the exec's error


def _placement_warnings(run: RunOptions, parsed: Parsed) -> list[str]:
    """Warnings about how the launch sits in the container (read before a supervisor forks)."""
    from launcher.run.pid1 import pid1_warnings

    late = pid1_warnings(run.init)
    if parsed.flag("msrun") and run.init == "never":
        late.append(UNSUPERVISED_MSRUN)
    return late


def _supervise(run: RunOptions, parsed: Parsed) -> int:
    """Fork: the parent supervises the child until the end (it never returns here); the child goes on to
    plan and exec the program, with the launch record to write before the exec."""
    from launcher.run.fork import fork_launch

    forked = fork_launch()
    if forked.pid:
        from launcher.run.supervise import adopt_launch  # only now: the program is starting meanwhile

        adopt_launch(
            forked,
            grace=run.grace,
            quiet=parsed.flag("quiet"),
            stop_signal=run.stop_signal,
            summary=run.summary,
            stop_fails=run.stop_fails,
        )
    return forked.record


def dry_run(plan: LaunchPlan, parsed: Parsed) -> int:
    """Print the one-line boot command (stdout) and the explanation (stderr), or the JSON plan; the exit
    status is the one the real run would have."""
    from launcher.cli.detect import choose_shell
    from launcher.render.line import dry_run_line

    shell_name, dialect, shell_why = choose_shell(parsed.text("shell"))
    line = dry_run_line(plan, dialect)
    if parsed.flag("json"):
        from launcher.render.planjson import plan_json

        sys.stdout.write(plan_json(plan, shell=shell_name, dialect=dialect) + "\n")  # its line is masked
    else:
        if not parsed.flag("quiet"):
            from launcher.render.explain import explanation

            for warning in plan.warnings:
                say(f"warning: {warning}")
            for text in explanation(plan, every_variable=True):
                say(text, masked=True)
            say(f"the line below is for {shell_name} ({shell_why})")
        sys.stdout.flush()
        sys.stdout.buffer.write(os.fsencode(line) + b"\n")
        sys.stdout.flush()
    for problem in plan.problems:
        sys.stderr.write(problem.line() + "\n")
    return plan.exit_code


def ld_report(parsed: Parsed) -> int:
    """``--ld-report``: the targeted LD_LIBRARY_PATH analysis for an env, on stdout; runs nothing."""
    from launcher.cli.ldreport import report

    request = values.request(parsed).replace(ld_mode="off")
    if not request.command and request.shell_line is None:
        request = request.replace(command=("python",))
    sys.stdout.write(report(plan_for(request), as_json=parsed.flag("json"), save=parsed.flag("ld_save")))
    return 0


def bake(args: Sequence[str]) -> int:
    """``ma-launch bake [-o FILE] [--force] [OPTIONS] [--] COMMAND``: the plan as a POSIX boot script."""
    from launcher import __version__
    from launcher.cli import options
    from launcher.render.bake import bake_script

    parsed = options.parse(args, os.environ, options.BAKE_OPTIONS)
    if parsed.flag("help"):
        sys.stdout.write(options.help_text() + "\n")
        return 0
    values.run_options(parsed)
    if values.rank_table_active(parsed, os.environ):
        raise ConfigError(
            "a baked script cannot wait for and convert the Ascend rank table at boot",
            hint="boot with `exec ma-launch …` instead, or bake with --rank-table off",
        )
    plan = plan_for(values.request(parsed))
    if plan.problems:
        raise plan.problems[0]
    text = bake_script(plan, version=__version__, command_line=["bake", *args])
    output = parsed.text("output")
    if output is None:
        sys.stdout.buffer.write(os.fsencode(text))
        return 0
    from launcher.run.files import write_script

    write_script(output, text, force=parsed.flag("force"))
    if not parsed.flag("quiet"):
        for warning in [*plan.warnings, *([BAKED_MSRUN] if parsed.flag("msrun") else [])]:
            say(f"warning: {warning}")
        say(f"wrote {output}; boot command: sh {output}")
    return 0


def _rank_table(plan: LaunchPlan, parsed: Parsed, *, wait: bool) -> LaunchPlan:
    """Wait for and convert the Ascend rank table (real runs only) and export it to the program."""
    if not values.rank_table_active(parsed, os.environ):
        return plan
    if not wait:
        return plan.with_changes(
            [],
            "rank table: at launch, ma-launch waits for RANK_TABLE_FILE to be completed, converts it to "
            "template 1 and sets RANK_TABLE_FILE and RANK_SIZE (a dry run does not wait)",
        )
    from launcher.core.plan import Change
    from launcher.modes import RANK_TABLE_MODES, parse_mode
    from launcher.run.ranktable import prepare_rank_table

    table = prepare_rank_table(
        os.environ,
        mode=parse_mode(parsed.text("rank_table") or "auto", RANK_TABLE_MODES, "--rank-table"),
        timeout=values.rank_table_timeout(parsed),
        out_path=parsed.text("rank_table_out"),
        progress=(lambda _text: None) if parsed.flag("quiet") else say,
    )
    if table is None:
        return plan
    changes = [Change(name, value, "rank table", "rank-table") for name, value in table.env.items()]
    return plan.with_changes(
        changes,
        f"rank table: {table.source_path} (template {table.template}) → {table.path}, "
        f"RANK_SIZE={table.rank_size}",
    )
