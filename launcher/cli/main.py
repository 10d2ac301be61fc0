"""The ``ma-launch`` command: the verb table and the one error guard.

Every verb (the launch itself, ``bake``, the typer subcommands ``doctor`` and ``pack``) runs inside
:func:`guarded`, which turns a :class:`~launcher.errors.LaunchError` into its one line and exit code, any
other exception into exit 70 (with the traceback only under ``--debug``), and Ctrl-C into 130. Only the
standard library is imported on the launch path; typer loads for the subcommands only.

Everything the launcher itself prints follows the one masking rule (:mod:`launcher.render.mask`): ``say``
applies it to every line, error lines apply it themselves, and a traceback (which can quote any value in
any form) is also scrubbed of every secret value found in the environment and the command line.
"""

from __future__ import annotations

import os
import sys

from launcher.errors import LaunchError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Callable, NoReturn, Optional

PREFIX = "ma-launch: "
#: Exit status of an internal error (EX_SOFTWARE): a bug in ma-launch.
INTERNAL_ERROR = 70


def say(message: str, *, masked: bool = False) -> None:
    """Write one of the launcher's own lines to stderr (stdout belongs to the program), through the
    masking rule unless it has been through it already (``masked``: the explanation's lines)."""
    if not masked:
        from launcher.render.mask import mask_text  # only when something is said (not under -q)

        message = mask_text(message)
    sys.stderr.write(PREFIX + message + "\n")


def _subcommand(args: list[str]) -> int:
    from launcher.cli.app import run

    return run(args)


def _bake(args: list[str]) -> int:
    from launcher.cli.launch import bake

    return bake(args[1:])


def _launch(args: list[str]) -> int:
    from launcher.cli.launch import launch

    return launch(args)


#: The first word of the arguments that selects a verb; anything else is a launch.
VERBS: dict[str, Callable[[list[str]], int]] = {"doctor": _subcommand, "pack": _subcommand, "bake": _bake}


def guarded(run: Callable[[], int], debug: bool, argv: Sequence[str] = ()) -> int:
    """Run a verb; its exit status, or the status of the error it raised (printed as one line). ``argv``
    (the command line) is where secrets in a traceback may come from, besides the environment."""
    try:
        return run()
    except LaunchError as error:
        if debug:
            _print_traceback(argv)
        sys.stdout.flush()
        sys.stderr.write(error.line() + "\n")
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if debug:
            _print_traceback(argv)
        from launcher.errors import one_line
        from launcher.render.mask import scrub, secrets_in

        text = scrub(one_line(str(error)), secrets_in(os.environ, argv))
        hint = "run again with --debug and report it"
        say(f"error: internal error: {type(error).__name__}: {text} (hint: {hint})")
        return INTERNAL_ERROR


def _print_traceback(argv: Sequence[str]) -> None:
    """The traceback of the error being handled, on stderr, with every secret masked: a traceback shows
    messages and reprs of values (never local variables), so the values the rule masks in the environment
    and the command line are searched for as well."""
    import traceback

    from launcher.render.mask import scrub, secrets_in

    sys.stderr.write(scrub(traceback.format_exc(), secrets_in(os.environ, argv)))


def wants_debug(args: Sequence[str]) -> bool:
    """Whether ``--debug`` (or ``MA_LAUNCH_DEBUG``) asks for tracebacks; never raises."""
    from launcher.cli.options import wants_debug as launch_wants_debug

    if args and args[0] in VERBS and args[0] != "bake":
        words = args[1 : args.index("--")] if "--" in args else args[1:]
        return "--debug" in words or launch_wants_debug([], os.environ)
    return launch_wants_debug(args[1:] if args and args[0] == "bake" else args, os.environ)


def run(argv: Sequence[str]) -> int:
    """Run the verb ``argv`` selects, guarded; its exit status."""
    args = list(argv)
    verb = VERBS.get(args[0], _launch) if args else _launch
    return guarded(lambda: verb(args), wants_debug(args), args)


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    """Entry point of the ``ma-launch`` console script and ``python -m launcher``."""
    sys.exit(run(sys.argv[1:] if argv is None else argv))
