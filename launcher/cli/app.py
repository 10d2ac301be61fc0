"""The subcommands of ma-launch (``ma-launch doctor …``, ``ma-launch pack …``), built with typer.

``launcher.cli.main`` hands argv here when its first word names a subcommand; the launch path never imports
this module. :func:`run` returns the exit code instead of exiting; errors reach the one error guard of
:mod:`launcher.cli.main` (one line, the documented code, 70 for internal errors, ``--debug`` tracebacks).

Exit codes: 0 success; 1 ``doctor`` found a failing check; 2 bad usage; the LaunchError codes
(65 data, 66 not found, 69 unavailable, …) for the other failures.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="ma-launch",
    help="Check and prepare ModelArts custom images.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,  # help texts hold paths and [brackets], not markup
    pretty_exceptions_enable=False,  # never show locals: jobs carry credentials in their environment
)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@app.command()
def doctor(
    root: Annotated[
        str,
        typer.Option("--root", metavar="DIR", help="Check an unpacked image root instead of this system."),
    ] = "/",
    image_env: Annotated[
        Optional[list[str]],
        typer.Option(
            "--image-env",
            metavar="KEY=VAL",
            help="A variable the image sets (ENV); repeatable. docker export drops ENV: give them here.",
        ),
    ] = None,
    baseline: Annotated[
        Optional[str],
        typer.Option(
            "--baseline",
            metavar="FILE",
            help="Setuid/setgid files the base image ships, one path per line (default: a built-in list).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report (schema version 1).")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of unexpected errors (also MA_LAUNCH_DEBUG=1).")
    ] = False,
) -> None:
    """Check an image against the ModelArts custom-image rules.

    Checks the default user and its home, conda roots and envs, ANACONDA_DIR/DEFAULT_CONDA_ENV_NAME,
    each env's bin/python, missing shared libraries, added setuid/setgid files, baked GPU driver
    libraries, the image size, /bin/sh, PYTHONUNBUFFERED and ma-launch itself.

    On the running image, bin/python -V and ma-launch --version are run as the default user (never as
    root). The files of an unpacked root (--root DIR) are never executed: they are checked by reading
    them (mode bits, #! lines, ELF headers, conda-meta records).

    --json prints {"version": 1, "root": ..., "checks": [{"id", "status": "pass|warn|fail", "summary",
    "advice", "details": {...}}], "counts": {"pass", "warn", "fail"}, "ok": true|false}.

    Exit status: 0 when no check fails (warnings allowed), 1 when a check fails, 2 for bad usage.
    """
    from launcher.image import doctor as doc

    ctx = doc.make_context(root, image_env or (), baseline, progress=not as_json and _stderr_is_terminal())
    checks = doc.run_checks(ctx)
    if as_json:
        sys.stdout.write(doc.to_json(ctx, checks) + "\n")
    else:
        doc.render_table(ctx, checks, sys.stdout.write)
    sys.stdout.flush()
    raise typer.Exit(doc.exit_code(checks))


@app.command()
def pack(
    name: Annotated[
        Optional[str],
        typer.Option("-n", "--name", metavar="NAME", help="The env to pack, by name (base = the root)."),
    ] = None,
    prefix: Annotated[
        Optional[str], typer.Option("-p", "--prefix", metavar="PREFIX", help="The env to pack, by path.")
    ] = None,
    output: Annotated[
        Optional[str],
        typer.Option("-o", "--output", metavar="FILE", help="Archive to write (default: NAME.tar.gz)."),
    ] = None,
    dest_prefix: Annotated[
        Optional[str],
        typer.Option(
            "--dest-prefix",
            metavar="PATH",
            help="Where the env will live in the image (default: /home/ma-user/anaconda3/envs/NAME).",
        ),
    ] = None,
    archive_format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="auto (from -o), tar.gz, tgz, tar.bz2, tbz2, tar.xz, txz, tar, zip, tar.zst, tzst.",
        ),
    ] = "auto",
    exclude: Annotated[
        Optional[list[str]], typer.Option("--exclude", metavar="GLOB", help="Leave matching files out.")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, metavar="N", help="Compression threads.")] = 1,
    ignore_missing_files: Annotated[
        bool, typer.Option("--ignore-missing-files", help="Pack even if pip changed conda's files.")
    ] = False,
    ignore_editable_packages: Annotated[
        bool, typer.Option("--ignore-editable-packages", help="Pack even with editable installs.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output file.")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of unexpected errors (also MA_LAUNCH_DEBUG=1).")
    ] = False,
) -> None:
    """Pack a conda env for a custom image (conda-pack with the image's final path) and print the
    Dockerfile lines that install it."""
    from launcher.image import pack as packing
    from launcher.image.dockerfile import dockerfile_lines

    request = packing.PackRequest(
        name=name,
        prefix=prefix,
        output=output,
        dest_prefix=dest_prefix,
        format=archive_format,
        excludes=tuple(exclude or ()),
        threads=threads,
        ignore_missing_files=ignore_missing_files,
        ignore_editable_packages=ignore_editable_packages,
        force=force,
    )
    result = packing.pack_env(request, progress=_stderr_is_terminal())
    sys.stdout.write(dockerfile_lines(result))
    sys.stdout.flush()


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def run(argv: list[str]) -> int:
    """Run a subcommand; its exit code. Errors propagate to the CLI's one error guard."""
    command = typer.main.get_command(app)
    try:
        command.main(args=list(argv), prog_name="ma-launch", standalone_mode=True)
    except SystemExit as exc:
        return _exit_status(exc.code)
    return 0
