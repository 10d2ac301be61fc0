"""The argv a launch executes, and the program it resolves to.

A command is an argv (``-- COMMAND ARGS``), a ``-c`` shell line with words appended (run by bash, else
``sh``), or a training script handed to torchrun or msrun; ``--conda-run`` wraps it in ``conda run
--no-capture-output`` and ``--line-buffered`` in ``stdbuf -oL -eL``. Pure apart from reading the file
system.
"""

from __future__ import annotations

import errno
import os

from launcher.core import paths
from launcher.core.programs import read_shebang
from launcher.errors import CommandNotExecutable, CommandNotFound, UnavailableError, UsageError, exec_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Optional

    from launcher.core.conda import Env
    from launcher.core.request import Request
    from launcher.errors import LaunchError
    from launcher.modelarts.distributed import DistEnv


def first_word(request: Request) -> Optional[str]:
    """The program the command names first (for a ``-c`` line, its first shell word), if any."""
    if request.command:
        return request.command[0]
    if request.shell_line:
        import shlex

        try:
            words = shlex.split(request.shell_line)
        except ValueError:
            return None
        return words[0] if words else None
    return None


def resolve_program(
    name: str, path_value: Optional[str], cwd: str
) -> tuple[Optional[str], Optional[LaunchError]]:
    """Find ``name`` as ``execvpe`` will: directly when it has a ``/``, else on ``path_value`` (empty
    entries skipped; when PATH is unset, the C library's default). Returns the path, or the error the exec
    would end with (127 not found, 126 not executable).

    The real run and the ``--dry-run`` line exec the file found here (:attr:`LaunchPlan.exec_path`), so no
    later PATH search can pick another one."""
    if path_value is None:
        path_value = paths.DEFAULT_PATH
    if "/" in name:
        path = os.path.join(cwd, name)
        if not os.path.exists(path):
            return None, CommandNotFound(
                f"{name}: no such file (looked from {cwd})", hint=_relative_hint(name)
            )
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            return None, CommandNotExecutable(
                f"{name}: not executable", hint=f"chmod +x {name}, or run it with its interpreter"
            )
        return path, None
    found = paths.search_path(name, path_value, cwd)
    if found is not None:
        return found, None
    denied = paths.search_path(name, path_value, cwd, accept=os.path.isfile)
    if denied is not None:
        return None, CommandNotExecutable(f"{denied}: not executable", hint=f"chmod +x {denied}")
    return None, CommandNotFound(
        f"{name}: command not found on PATH", hint="check the spelling, or choose the env that provides it"
    )


def exec_problem(path: str, name: str, cwd: str) -> Optional[LaunchError]:
    """What exec will say about the file ``path`` (``name`` on the command line): ``None`` when it runs
    (an ELF object, or a ``#!`` script whose interpreter runs), else the error the real run ends with:
    127 when the ``#!`` interpreter does not exist, 126 when it cannot be executed.

    Raises CommandNotExecutable (126) for a file the kernel cannot run at all (no ``#!`` line, not ELF):
    the real run fails with ENOEXEC, but ``env`` in the ``--dry-run`` line (and ``sh``) would run it with
    ``/bin/sh``, so both refuse it here and no line is printed.
    """
    for _depth in range(4):  # the kernel follows at most a few #! interpreters in a row
        words = read_shebang(path)
        if words is None:
            if _is_elf(path) or _binfmt_handlers():
                return None
            raise exec_error(name, errno.ENOEXEC)
        interpreter = os.path.join(cwd, words[0])
        if not os.path.exists(interpreter):
            return CommandNotFound(
                f"{name}: its #! interpreter {words[0]} does not exist",
                hint=f"fix the #! line of {path}, or install {words[0]}",
            )
        if not paths.is_executable_file(interpreter):
            return CommandNotExecutable(
                f"{name}: its #! interpreter {words[0]} cannot be executed",
                hint=f"fix the #! line of {path}, or chmod +x {words[0]}",
            )
        path = interpreter
    return None


def too_long_for_exec(argv: Sequence[str], environ: Mapping[str, str]) -> Optional[LaunchError]:
    """The error exec ends with (E2BIG, 126) when one argument or ``NAME=VALUE`` string is longer than
    Linux passes to a program (32 pages, MAX_ARG_STRLEN; 128 KiB with 4 KiB pages), else ``None``."""
    limit = 32 * os.sysconf("SC_PAGESIZE")
    for name, value in environ.items():
        if 4 * (len(name) + len(value) + 2) <= limit:  # a character is at most 4 bytes
            continue
        size = len(os.fsencode(name)) + len(os.fsencode(value)) + 1  # NAME=VALUE
        if size + 1 > limit:  # and its NUL
            return CommandNotExecutable(
                f"{name}=… is {size} bytes long; Linux passes at most {limit - 1} bytes per variable to a "
                "program (E2BIG)",
                hint=f"keep large data in a file and put its path in {name}",
            )
    for word in argv:
        if 4 * (len(word) + 1) > limit and len(os.fsencode(word)) + 1 > limit:
            return CommandNotExecutable(
                f"an argument is {len(os.fsencode(word))} bytes long; Linux passes at most {limit - 1} bytes "
                "per argument to a program (E2BIG)",
                hint="pass large data in a file",
            )
    return None


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


def _binfmt_handlers() -> bool:
    """Whether the kernel has extra executable formats registered (binfmt_misc: Java, Wine, QEMU), in
    which case a file that is neither ELF nor ``#!`` may still run, and is not refused."""
    try:
        names = os.listdir("/proc/sys/fs/binfmt_misc")
    except OSError:
        return False
    return any(n not in ("register", "status") for n in names)


def _relative_hint(name: str) -> str:
    if not os.path.isabs(name):
        return "relative paths are looked up from the working directory; give an absolute path or --workdir"
    return "check the path"


def shell_line_argv(line: str, appended: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """``bash -c LINE`` (``sh`` without bash) with the appended words quoted onto the line, the way
    ModelArts appends its channel arguments."""
    if appended:
        import shlex

        line = line + " " + shlex.join(appended)
    return [paths.find_bash(environ.get("PATH")) or "/bin/sh", "-c", line]


def torchrun_command(
    command: Sequence[str], env: Optional[Env], dist: DistEnv, request: Request, environ: Mapping[str, str]
) -> list[str]:
    """The env's ``python -m torch.distributed.run`` composed for this node, then the training script."""
    from launcher.modelarts.torchrun import job_id, torchrun_argv

    if not command:
        raise UsageError("--torchrun needs a training script", hint="ma-launch --torchrun train.py ARGS...")
    python = os.path.join(env.prefix, "bin", "python") if env else "python"
    return torchrun_argv(python, command, dist, job_id=job_id(environ), extra=request.torchrun_args)


def msrun_command(
    command: Sequence[str],
    env: Optional[Env],
    dist: DistEnv,
    request: Request,
    environ: Mapping[str, str],
    workdir: str,
) -> tuple[list[str], str]:
    """The env's msrun composed for this node, then the training script; and a line saying how many
    workers run here, why, and where their full logs are.

    msrun is the env's ``bin/msrun`` when it is there, else ``python -m mindspore.parallel.cluster.run``
    with the env's python (the module the console script runs).
    """
    from launcher.modelarts import msrun

    if not command:
        raise UsageError("--msrun needs a training script", hint="ma-launch --msrun train.py ARGS...")
    script = os.path.join(env.prefix, "bin", "msrun") if env else None
    if script is not None and os.access(script, os.X_OK) and os.path.isfile(script):
        launcher = [script]
    else:
        python = os.path.join(env.prefix, "bin", "python") if env else "python"
        launcher = [python, "-m", msrun.MSRUN_MODULE]
    workers, why = msrun.local_workers(dist, environ)
    logs = msrun.log_dir(environ, workdir)
    argv = msrun.msrun_argv(launcher, command, dist, workers=workers, logs=logs, extra=request.msrun_args)
    note = (
        f"composed msrun for this node: {workers} worker(s) here ({why}), {dist.nnodes * workers} in all, "
        f"scheduler at {msrun.master_addr(dist)}:{dist.master_port}; worker output reaches stdout through "
        f"msrun (--join=True), the full logs are in {logs}"
    )
    return argv, note


def conda_run_command(argv: Sequence[str], env: Env) -> list[str]:
    """``<root>/bin/conda run --no-capture-output -n NAME|-p PREFIX ARGV``; UnavailableError (69) when the
    env's root has no conda."""
    conda = os.path.join(env.root, "bin", "conda") if env.root else None
    if conda is None or not os.access(conda, os.X_OK):
        where = f"{env.root}/bin/conda" if env.root else f"a conda root above {env.prefix}"
        raise UnavailableError(
            f"--conda-run needs conda, but there is none at {where}",
            hint="drop --conda-run: ma-launch activates the env itself",
        )
    selector = ["-n", env.name] if env.name == "base" or "/" not in env.name else ["-p", env.prefix]
    return [conda, "run", "--no-capture-output", *selector, *argv]


def stdbuf_command(argv: Sequence[str], environ: Mapping[str, str]) -> Optional[list[str]]:
    """``stdbuf -oL -eL ARGV``, or ``None`` when stdbuf is not installed."""
    stdbuf = paths.search_path("stdbuf", environ.get("PATH"))
    return None if stdbuf is None else [stdbuf, "-oL", "-eL", *argv]
