"""What the user asked for, after the flags and the ``MA_LAUNCH_*`` variables were read: the planner's input.

Modes are ``Literal`` types (checked by mypy, free at run time); the CLI has validated every value before a
:class:`Request` is made.
"""

from __future__ import annotations

from launcher.core.record import Record
from launcher.errors import UsageError
from launcher.modelarts.facts import CHANNEL_NAMES, MASTER_PORT
from launcher.modes import LD_MODES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from launcher.modes import CannMode, ChannelMode, LdMode


#: Seconds the activation scripts may take together by default. They set variables and take
#: milliseconds (conda's own, CANN's set_env.sh, Intel's setvars.sh: well under 5 s); a minute is far
#: above that, yet a hung boot (a script waiting for a prompt, a lock or the network) fails within a
#: minute with the script's name instead of holding a paid job for hours.
ACTIVATION_TIMEOUT = 60.0


class Request(Record):
    """The launch request: the command (argv words, or a ``-c`` shell line with appended words), how to
    choose the env, the working directory, and the mode of every planning step. ``activation_timeout``
    is the seconds the activation scripts may take together (0: no limit)."""

    __slots__ = (
        "activation_timeout",
        "cann",
        "channel_args",
        "channel_names",
        "command",
        "conda_run",
        "dist_env",
        "ld_mode",
        "line_buffered",
        "master_port",
        "msrun",
        "msrun_args",
        "name",
        "prefix",
        "shell_line",
        "sources",
        "strict_activation",
        "strict_lint",
        "torchrun",
        "torchrun_args",
        "workdir",
        "world_per_node",
    )

    def __init__(
        self,
        *,
        command: tuple[str, ...] = (),
        shell_line: Optional[str] = None,
        name: Optional[str] = None,
        prefix: Optional[str] = None,
        workdir: Optional[str] = None,
        ld_mode: LdMode = "auto",
        conda_run: bool = False,
        line_buffered: bool = False,
        strict_activation: bool = False,
        activation_timeout: float = ACTIVATION_TIMEOUT,
        channel_args: ChannelMode = "pass",
        channel_names: tuple[str, ...] = CHANNEL_NAMES,
        dist_env: bool = True,
        master_port: int = MASTER_PORT,
        world_per_node: bool = False,
        torchrun: bool = False,
        torchrun_args: tuple[str, ...] = (),
        msrun: bool = False,
        msrun_args: tuple[str, ...] = (),
        sources: tuple[str, ...] = (),
        cann: CannMode = "auto",
        strict_lint: bool = False,
    ) -> None:
        self.command = command
        self.shell_line = shell_line
        self.name = name
        self.prefix = prefix
        self.workdir = workdir
        self.ld_mode: LdMode = ld_mode
        self.conda_run = conda_run
        self.line_buffered = line_buffered
        self.strict_activation = strict_activation
        self.activation_timeout = activation_timeout
        self.channel_args: ChannelMode = channel_args
        self.channel_names = channel_names
        self.dist_env = dist_env
        self.master_port = master_port
        self.world_per_node = world_per_node
        self.torchrun = torchrun
        self.torchrun_args = torchrun_args
        self.msrun = msrun
        self.msrun_args = msrun_args
        self.sources = sources
        self.cann: CannMode = cann
        self.strict_lint = strict_lint

    def replace(self, **changes: object) -> Request:
        """A copy with some fields changed."""
        fields: dict[str, object] = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return Request(**fields)  # type: ignore[arg-type]

    def check(self) -> None:
        """Reject a request that leaves nothing to plan or contradicts itself (UsageError, exit 2)."""
        if not self.command and self.shell_line is None:
            raise UsageError(
                "no command given",
                hint="usage: ma-launch [OPTIONS] [--] COMMAND [ARGS...]; ma-launch --help lists the options "
                "and the bake, doctor and pack commands",
            )
        if self.shell_line is not None and not self.shell_line.strip() and not self.command:
            raise UsageError("the -c command line is empty", hint="give -c 'cd code && bash run.sh'")
        if self.shell_line is None and self.command and not self.command[0]:
            what = "the training script" if self.torchrun else "the command"
            raise UsageError(f"{what} is an empty word ('')", hint="check the quoting of the boot command")
        if self.ld_mode not in LD_MODES:
            raise UsageError(
                f"--ld-library-path {self.ld_mode!r} is not one of {', '.join(LD_MODES)}",
                hint=f"use --ld-library-path {LD_MODES[0]}",
            )
        launcher = "--torchrun" if self.torchrun else "--msrun" if self.msrun else None
        if launcher and self.shell_line is not None:
            raise UsageError(
                f"{launcher} and -c do not go together", hint=f"give the training script after {launcher}"
            )
        if self.torchrun and self.msrun:
            raise UsageError(
                "--torchrun and --msrun do not go together", hint="choose the launcher your framework uses"
            )
