"""The launch command's options: one table that the parser, the MA_LAUNCH_* variables and ``--help`` read.

The launch path parses with this small stdlib-only parser instead of typer: importing typer costs more
than the whole start-up budget of a launch. Subcommands (``doctor``, ``pack``…) use typer.

Options stop at the first word that is not an option (or at ``--``): everything after it is the command,
passed on exactly.

Over 300 lines because half of it is the table itself (one entry per option, its help text included):
the parser and ``--help`` are short.
"""

from __future__ import annotations

from launcher.core.record import Record
from launcher.errors import UsageError
from launcher.modes import (
    CANN_MODES,
    CHANNEL_MODES,
    INIT_MODES,
    LD_MODES,
    RANK_TABLE_MODES,
    STOP_SIGNALS,
    env_yes,
    yes_no,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Optional


class Option(Record):
    """One option: its flags, where its value goes, its help line, the metavar of its value (``None`` for
    a flag without a value), the values it accepts, whether it repeats (and what separates the values in
    its variable), and whether ``MA_LAUNCH_<DEST>`` sets it."""

    __slots__ = ("choices", "dest", "env", "flags", "help", "metavar", "repeat", "separator")

    def __init__(
        self,
        flags: tuple[str, ...],
        dest: str,
        help: str,
        metavar: Optional[str] = None,
        choices: tuple[str, ...] = (),
        repeat: bool = False,
        env: bool = True,
        separator: str = ",",
    ) -> None:
        self.flags = flags
        self.separator = separator
        self.dest = dest
        self.help = help
        self.metavar = metavar
        self.choices = choices
        self.repeat = repeat
        self.env = env

    @property
    def env_name(self) -> str:
        return "MA_LAUNCH_" + self.dest.upper()


OPTIONS: tuple[Option, ...] = (
    Option(("-n", "--name"), "name", "run in the conda env called ENV (base = the root prefix)", "ENV"),
    Option(("-p", "--prefix"), "prefix", "run in the conda env at PATH", "PATH"),
    Option(
        ("-c",), "shell_line", "run LINE with bash -c; ARGS are appended to it, quoted", "LINE", env=False
    ),
    Option(("--workdir",), "workdir", "working directory (default: $MA_HOME, else /home/ma-user)", "DIR"),
    Option(
        ("--ld-library-path",),
        "ld_library_path",
        "auto: add exactly the env dirs that provide missing libraries; prefix: the env's lib first "
        "(the documented fix); off: leave it alone",
        "MODE",
        choices=LD_MODES,
    ),
    Option(("--conda-run",), "conda_run", "run through `conda run --no-capture-output` instead"),
    Option(("--line-buffered",), "line_buffered", "run non-Python programs under stdbuf -oL -eL"),
    Option(("--strict-activation",), "strict_activation", "fail when an activate.d script fails"),
    Option(
        ("--activation-timeout",),
        "activation_timeout",
        "seconds the activation scripts (activate.d, CANN's, --source) may take together (60; 0: no "
        "limit); past it they are stopped and the launch fails (75)",
        "SECONDS",
    ),
    Option(
        ("--source",),
        "source",
        "source the bash script FILE after the env's activation, as activate.d scripts are (repeatable; "
        "the variable takes a :-separated list)",
        "FILE",
        repeat=True,
        separator=":",
    ),
    Option(
        ("--cann",),
        "cann",
        "auto: source the Ascend CANN toolkit's set_env.sh (and ATB's) when the image has them and they "
        "are not active yet; off: never",
        "MODE",
        choices=CANN_MODES,
    ),
    Option(
        ("--init",),
        "init",
        "supervise the program (forward signals, reap, stop the whole tree, say why it ended); auto: when "
        "PID 1, or when --summary or a --stop-signal other than TERM needs it",
        "MODE",
        choices=INIT_MODES,
    ),
    Option(
        ("--grace",), "grace", "seconds between a stop signal and SIGKILL in supervise mode (25)", "SECONDS"
    ),
    Option(
        ("--stop-signal",),
        "stop_signal",
        "the signal the program gets first when the job is asked to stop (the platform's SIGTERM is "
        "forwarded as it), then --grace, then SIGKILL; USR1 or INT for code that checkpoints on them",
        "SIG",
        choices=STOP_SIGNALS,
    ),
    Option(
        ("--summary",),
        "summary",
        "also write why the program ended to FILE, as JSON (supervise mode)",
        "FILE",
    ),
    Option(("--torchrun",), "torchrun", "run COMMAND (train.py ARGS) under torchrun composed for this node"),
    Option(("--torchrun-arg",), "torchrun_arg", "pass ARG on to torchrun (repeatable)", "ARG", repeat=True),
    Option(
        ("--msrun",),
        "msrun",
        "run COMMAND (train.py ARGS) under MindSpore's msrun composed for this node (implies --init always)",
    ),
    Option(("--msrun-arg",), "msrun_arg", "pass ARG on to msrun (repeatable)", "ARG", repeat=True),
    Option(("--master-port",), "master_port", "MASTER_PORT for distributed training (6060)", "PORT"),
    Option(("--no-dist-env",), "no_dist_env", "do not derive MASTER_ADDR, NNODES, NODE_RANK, …"),
    Option(("--world-per-node",), "world_per_node", "also set WORLD_SIZE/RANK: one process per node"),
    Option(
        ("--rank-table",),
        "rank_table",
        "wait for the Ascend rank table and convert it (auto: when RANK_TABLE_FILE is set)",
        "MODE",
        choices=RANK_TABLE_MODES,
    ),
    Option(
        ("--rank-table-timeout",), "rank_table_timeout", "seconds to wait for the rank table (600)", "SECONDS"
    ),
    Option(("--rank-table-out",), "rank_table_out", "where to write the converted rank table", "FILE"),
    Option(
        ("--channel-args",),
        "channel_args",
        "arguments the platform appends (--data_url=…): pass them, turn them into variables, or drop them",
        "MODE",
        choices=CHANNEL_MODES,
    ),
    Option(
        ("--channel-names",), "channel_names", "channel names when MA_INPUTS/MA_OUTPUTS are unset", "LIST"
    ),
    Option(
        ("--strict-lint",), "strict_lint", "make boot-line lint and accelerator preflight warnings errors"
    ),
    Option(
        ("--ld-report",),
        "ld_report",
        "print which shared libraries the env's programs would miss, and the fix; run nothing",
        env=False,
    ),
    Option(
        ("--save",),
        "ld_save",
        "with --ld-report: keep the analysis in the env, so that the image's first launch need not scan "
        "it (run while building the image, as the env's owner)",
        env=False,
    ),
    Option(
        ("--dry-run",),
        "dry_run",
        "print the equivalent one-line boot command; run nothing but the env's activate.d scripts, which "
        "are sourced (as in a real run) to learn what they change",
    ),
    Option(("--shell",), "shell", "shell for --dry-run (default: detected, else sh)", "NAME"),
    Option(("--json",), "json", "print the plan as JSON (implies --dry-run)"),
    Option(("-q", "--quiet"), "quiet", "print nothing but errors"),
    Option(("-v", "--verbose"), "verbose", "explain every variable that changes"),
    Option(("--debug",), "debug", "show tracebacks of unexpected errors"),
    Option(("--version",), "version", "print the version and exit", env=False),
    Option(("-h", "--help"), "help", "show this help and exit", env=False),
)

BAKE_OPTIONS: tuple[Option, ...] = (
    Option(("-o", "--output"), "output", "write the boot script to FILE (else stdout)", "FILE", env=False),
    Option(("--force",), "force", "replace FILE if it exists", env=False),
)

_BY_FLAG = {flag: option for option in OPTIONS for flag in option.flags}


class Parsed:
    """Option values by ``dest`` (flags are bools), and the command words after the options."""

    def __init__(self, values: dict[str, object], command: list[str]) -> None:
        self.values = values
        self.command = command

    def flag(self, dest: str) -> bool:
        return bool(self.values.get(dest, False))

    def text(self, dest: str) -> Optional[str]:
        value = self.values.get(dest)
        return value if isinstance(value, str) else None


def _env_defaults(environ: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for option in OPTIONS:
        if not option.env or option.env_name not in environ:
            continue
        raw = environ[option.env_name]
        if option.metavar is None:
            values[option.dest] = yes_no(raw, option.env_name)
        elif option.repeat:
            values[option.dest] = [item for item in raw.split(option.separator) if item]
        else:
            values[option.dest] = _check_choice(option, raw, option.env_name)
    return values


def _check_choice(option: Option, value: str, where: str) -> str:
    if option.choices and value not in option.choices:
        raise UsageError(
            f"{where} {value!r} is not one of {', '.join(option.choices)}",
            hint=f"use {option.flags[-1]} {option.choices[0]}",
        )
    return value


def parse(argv: Sequence[str], environ: Mapping[str, str], extra: Sequence[Option] = ()) -> Parsed:
    """Parse launch options (and ``extra`` ones) from ``argv`` over defaults from MA_LAUNCH_* variables;
    flags win."""
    by_flag = {**_BY_FLAG, **{flag: option for option in extra for flag in option.flags}}
    values = _env_defaults(environ)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return Parsed(values, list(argv[i + 1 :]))
        if not arg.startswith("-") or arg == "-":
            return Parsed(values, list(argv[i:]))
        if arg.startswith("--"):
            flag, eq, inline = arg.partition("=")
            option = _lookup(by_flag, flag)
            if option.metavar is None:
                if eq:
                    raise UsageError(f"{flag} takes no value", hint=f"write {flag} alone")
                values[option.dest] = True
                i += 1
                continue
            if eq:
                value = inline
                i += 1
            else:
                value, i = _next_value(argv, i, flag)
        else:
            # Short options: -q, -qv, -n ENV, -nENV.
            j = 1
            option = _lookup(by_flag, arg[:2])
            while option.metavar is None:
                values[option.dest] = True
                j += 1
                if j >= len(arg):
                    break
                option = _lookup(by_flag, "-" + arg[j])
            if option.metavar is None:
                i += 1
                continue
            if j + 1 < len(arg):
                value = arg[j + 1 :]
                i += 1
            else:
                value, i = _next_value(argv, i, "-" + arg[j])
        value = _check_choice(option, value, option.flags[-1])
        if option.dest == "shell_line":
            values[option.dest] = value
            return Parsed(values, list(argv[i:]))
        if option.repeat:
            existing = values.get(option.dest)
            values[option.dest] = [*(existing if isinstance(existing, list) else []), value]
        else:
            values[option.dest] = value
    return Parsed(values, [])


def wants_debug(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether ``--debug`` is among the launcher's own options (not the program's); never raises, so it
    works even for argument lists the parser rejects."""
    if env_yes(environ, "MA_LAUNCH_DEBUG"):
        return True
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            return False
        if arg == "--debug":
            return True
        option = _BY_FLAG.get(arg.partition("=")[0] if arg.startswith("--") else arg[:2])
        if option is not None and option.dest == "shell_line":
            return False
        takes_value = option is not None and option.metavar is not None
        inline = "=" in arg if arg.startswith("--") else len(arg) > 2
        i += 2 if takes_value and not inline else 1
    return False


def _lookup(by_flag: Mapping[str, Option], flag: str) -> Option:
    option = by_flag.get(flag)
    if option is None:
        raise UsageError(
            f"unknown option {flag}",
            hint="see ma-launch --help; to run a command that starts with '-', put -- before it",
        )
    return option


def _next_value(argv: Sequence[str], i: int, flag: str) -> tuple[str, int]:
    if i + 1 >= len(argv):
        raise UsageError(f"{flag} needs a value", hint=f"write {flag} VALUE")
    return argv[i + 1], i + 2


def help_text(prog: str = "ma-launch") -> str:
    """The ``--help`` text, made from the option table."""
    lines = [
        f"usage: {prog} [OPTIONS] [--] COMMAND [ARGS...]",
        f"       {prog} [OPTIONS] -c 'SHELL COMMAND LINE' [ARGS...]",
        f"       {prog} --ld-report [-n ENV | -p PREFIX] [--json] [--save] [--] [COMMAND]",
        f"       {prog} bake [-o FILE] [--force] [OPTIONS] [--] COMMAND [ARGS...]",
        f"       {prog} doctor|pack --help",
        "",
        "Run COMMAND in the right conda env, from /home/ma-user, with every log line on time.",
        "",
        "options:",
    ]
    import textwrap

    for option in (*OPTIONS, *BAKE_OPTIONS):
        names = ", ".join(option.flags)
        if option.metavar:
            names += f" {option.metavar}"
        extra = f" [{'|'.join(option.choices)}]" if option.choices else ""
        env = f" (${option.env_name})" if option.env else ""
        if option in BAKE_OPTIONS:
            env = " (bake)"
        text = textwrap.wrap(option.help + extra + env, width=72)
        if len(names) > 26:
            lines.append(f"  {names}")
            lines += [" " * 29 + piece for piece in text]
        else:
            lines.append(f"  {names:<26} {text[0]}")
            lines += [" " * 29 + piece for piece in text[1:]]
    lines += [
        "",
        "Every option can also be set by its MA_LAUNCH_* variable (baked into an image); flags win.",
        "MA_LAUNCH_DEVICE_ROOT (/dev) and MA_LAUNCH_CGROUP_ROOT (/sys/fs/cgroup) say where the accelerator",
        "device nodes and the memory cgroup are read.",
        "Exit status: the program's own; 2 usage, 65 bad data, 66 not found, 69 tool missing,",
        "75 a deadline passed (rank table, activation), 77 no permission, 78 bad configuration,",
        "126 cannot execute, 127 command not found.",
    ]
    return "\n".join(lines)
