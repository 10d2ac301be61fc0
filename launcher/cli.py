"""The ``ma-launch`` command: parse, plan, then show or execute. The one place errors are caught.

Only the standard library is imported on the launch path; typer loads for subcommands only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn, Optional

from launcher.errors import LaunchError, UsageError

if TYPE_CHECKING:
    from launcher.options import Parsed
    from launcher.plan import LaunchPlan

PREFIX = "ma-launch: "
#: Subcommands with their own options, run by the typer app; ``bake`` shares the launch options.
TYPER_SUBCOMMANDS = frozenset({"doctor", "pack"})


def say(message: str) -> None:
    """Write one of the launcher's own lines to stderr (stdout belongs to the program)."""
    sys.stderr.write(PREFIX + message + "\n")


def format_error(error: LaunchError) -> str:
    """The one-line form of an error: what went wrong, then the fix."""
    text = f"error: {error.message}"
    if error.hint:
        text += f" (hint: {error.hint})"
    return text


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    """Entry point of the ``ma-launch`` console script and ``python -m launcher``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in TYPER_SUBCOMMANDS:
        from launcher.app import run

        sys.exit(run(args))
    from launcher.options import wants_debug

    debug = wants_debug(args, os.environ)
    try:
        sys.exit(_launch(args))
    except LaunchError as error:
        if debug:
            import traceback

            traceback.print_exc()
        say(format_error(error))
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        if debug:
            raise
        say(f"error: internal error: {type(error).__name__}: {error} (hint: run again with --debug)")
        sys.exit(70)


def _launch(args: list[str]) -> int:
    from launcher import options
    from launcher.plan import Request, build_plan

    bake = bool(args) and args[0] == "bake"
    parsed = options.parse(args[1:] if bake else args, os.environ, options.BAKE_OPTIONS if bake else ())
    if parsed.flag("help"):
        sys.stdout.write(options.help_text() + "\n")
        return 0
    if parsed.flag("version"):
        from launcher import __version__

        sys.stdout.write(f"ma-launch {__version__}\n")
        return 0
    request = Request(
        command=tuple(parsed.command),
        shell_line=parsed.text("shell_line"),
        name=parsed.text("name"),
        prefix=parsed.text("prefix"),
        workdir=parsed.text("workdir"),
        ld_mode=parsed.text("ld_library_path") or "prefix",
        conda_run=parsed.flag("conda_run"),
        line_buffered=parsed.flag("line_buffered"),
        strict_activation=parsed.flag("strict_activation"),
    )
    quiet = parsed.flag("quiet")
    verbose = parsed.flag("verbose") or parsed.flag("debug")
    plan = build_plan(request, os.environ, _cwd())
    if bake:
        return _bake(plan, parsed, args)
    if parsed.flag("dry_run") or parsed.flag("json"):
        return _dry_run(plan, parsed.text("shell"), as_json=parsed.flag("json"), quiet=quiet)
    from launcher.supervise import pid1_warnings

    init = parsed.text("init") or "auto"
    grace = _grace(parsed.text("grace"))
    if not quiet:
        from launcher.explain import explanation

        for warning in [*plan.warnings, *pid1_warnings(init)]:
            say(f"warning: {warning}")
        for line in explanation(plan, every_variable=verbose):
            say(line)
    from launcher.execute import run_plan

    return run_plan(plan, init=init, grace=grace, quiet=quiet)


def _grace(text: Optional[str]) -> float:
    from launcher.supervise import DEFAULT_GRACE

    if text is None:
        return DEFAULT_GRACE
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise UsageError(f"--grace {text!r} is not a number of seconds", hint="give e.g. --grace 25")
    return value


def _bake(plan: LaunchPlan, parsed: Parsed, args: Sequence[str]) -> int:
    from launcher import __version__
    from launcher.bake import bake_script, write_script

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
    from launcher.explain import dry_run_line, explanation, plan_json
    from launcher.shells import POSIX, SHELL_NAMES, detect_shell, dialect_for

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
        say(format_error(problem))
    return plan.problems[0].exit_code if plan.problems else 0
