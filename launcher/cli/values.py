"""Parsed options turned into typed values: the planner's :class:`~launcher.core.request.Request` and the
run options (``--init``, ``--grace``, ``--stop-signal``, ``--summary``). Every value is checked here, before
anything is planned or run, so a dry run fails with the same usage error (exit 2) as the real run."""

from __future__ import annotations

from launcher.core.record import Record
from launcher.core.request import ACTIVATION_TIMEOUT, Request
from launcher.errors import AccessError, NotFoundError, UsageError
from launcher.modelarts.facts import CHANNEL_NAMES, MASTER_PORT
from launcher.modes import CANN_MODES, CHANNEL_MODES, INIT_MODES, LD_MODES, STOP_SIGNALS, parse_mode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional

    from launcher.cli.options import Parsed
    from launcher.modes import InitMode


#: Seconds between a stop signal and SIGKILL in supervise mode.
DEFAULT_GRACE = 25.0
#: Seconds to wait for the Ascend rank table.
DEFAULT_RANK_TABLE_TIMEOUT = 600.0


class RunOptions(Record):
    """How to run the plan: supervise (``init``), the stop grace period, the signal that asks the program
    to stop (``SIGTERM``…), where to write the summary, and whether a program that exits 0 after a stop
    request must end with the stop signal's status instead (``stop_fails``)."""

    __slots__ = ("grace", "init", "stop_fails", "stop_signal", "summary")

    def __init__(
        self,
        init: InitMode,
        grace: float,
        stop_signal: str = "SIGTERM",
        summary: Optional[str] = None,
        stop_fails: bool = False,
    ) -> None:
        self.init: InitMode = init
        self.grace = grace
        self.stop_signal = stop_signal
        self.summary = summary
        self.stop_fails = stop_fails


def request(parsed: Parsed) -> Request:
    """The plan request from parsed options (choices were checked by the parser)."""
    names = parsed.text("channel_names")
    extra = parsed.values.get("torchrun_arg")
    msrun_extra = parsed.values.get("msrun_arg")
    files = parsed.values.get("source")
    return Request(
        command=tuple(parsed.command),
        shell_line=parsed.text("shell_line"),
        name=parsed.text("name"),
        prefix=parsed.text("prefix"),
        workdir=parsed.text("workdir"),
        ld_mode=parse_mode(parsed.text("ld_library_path") or "auto", LD_MODES, "--ld-library-path"),
        conda_run=parsed.flag("conda_run"),
        line_buffered=parsed.flag("line_buffered"),
        strict_activation=parsed.flag("strict_activation"),
        activation_timeout=seconds(
            parsed.text("activation_timeout"), "--activation-timeout", ACTIVATION_TIMEOUT
        ),
        channel_args=parse_mode(parsed.text("channel_args") or "pass", CHANNEL_MODES, "--channel-args"),
        channel_names=tuple(n.strip() for n in names.split(",") if n.strip()) if names else CHANNEL_NAMES,
        dist_env=not parsed.flag("no_dist_env"),
        master_port=port(parsed.text("master_port"), "--master-port", MASTER_PORT),
        world_per_node=parsed.flag("world_per_node"),
        torchrun=parsed.flag("torchrun"),
        torchrun_args=tuple(extra) if isinstance(extra, list) else (),
        msrun=parsed.flag("msrun"),
        msrun_args=tuple(msrun_extra) if isinstance(msrun_extra, list) else (),
        sources=tuple(files) if isinstance(files, list) else (),
        cann=parse_mode(parsed.text("cann") or "auto", CANN_MODES, "--cann"),
        strict_lint=parsed.flag("strict_lint"),
    )


def run_options(parsed: Parsed) -> RunOptions:
    """``--init``, ``--grace``, ``--stop-signal`` and ``--summary``, checked. Under ``--init auto`` a summary
    file or a stop signal other than TERM needs the supervisor, so the program is supervised; ``--init
    never`` with either is a usage error (nothing would send the signal or write the file). ``--msrun``
    implies ``--init always`` (msrun's workers run in sessions of their own, and only the supervisor's stop
    of the whole tree ends them) and ``stop_fails`` (msrun exits 0 on SIGINT)."""
    msrun = parsed.flag("msrun")
    init = parse_mode(parsed.text("init") or ("always" if msrun else "auto"), INIT_MODES, "--init")
    grace = seconds(parsed.text("grace"), "--grace", DEFAULT_GRACE)
    stop_signal = "SIG" + parse_mode(parsed.text("stop_signal") or "TERM", STOP_SIGNALS, "--stop-signal")
    summary = _summary_path(parsed.text("summary") or None)  # empty (MA_LAUNCH_SUMMARY=): no summary
    needs = "--summary" if summary else ("--stop-signal" if stop_signal != "SIGTERM" else None)
    if needs and init == "never":
        raise UsageError(
            f"{needs} needs the supervisor, which --init never turns off", hint="use --init auto or always"
        )
    if needs and init == "auto":
        init = "always"
    return RunOptions(init, grace, stop_signal, summary, stop_fails=msrun)


def _summary_path(path: Optional[str]) -> Optional[str]:
    """``--summary FILE`` made absolute (the program runs in another directory), in a directory that exists
    and may be written: checked now rather than lost at the end of the job."""
    if path is None:
        return None
    import os

    absolute = os.path.abspath(path)
    directory = os.path.dirname(absolute)
    if not os.path.isdir(directory):
        raise NotFoundError(f"--summary {path}: {directory} is not a directory", hint="give a file in one")
    if not os.access(directory, os.W_OK):
        raise AccessError(f"--summary {path}: {directory} may not be written", hint="give a file elsewhere")
    return absolute


def rank_table_active(parsed: Parsed, environ: Mapping[str, str]) -> bool:
    """Whether the launch waits for an Ascend rank table (``--rank-table auto`` and one is announced)."""
    if (parsed.text("rank_table") or "auto") == "off":
        return False
    return bool(environ.get("RANK_TABLE_FILE") or environ.get("RANK_TABLE_FILE_V_1_0"))


def rank_table_timeout(parsed: Parsed) -> float:
    return seconds(parsed.text("rank_table_timeout"), "--rank-table-timeout", DEFAULT_RANK_TABLE_TIMEOUT)


def seconds(text: Optional[str], flag: str, default: float) -> float:
    """A non-negative, finite number of seconds; ``default`` when not given."""
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise UsageError(
            f"{flag} {text!r} is not a number of seconds", hint=f"give {flag} {default:g}"
        ) from None
    if not 0 <= value < float("inf"):  # also false for NaN
        raise UsageError(f"{flag} {text!r} is out of range", hint=f"give {flag} {default:g}")
    return value


def port(text: Optional[str], flag: str, default: int) -> int:
    """A TCP port, 1-65535; ``default`` when not given."""
    if text is None:
        return default
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 5:
        raise UsageError(f"{flag} {text!r} is not a port number", hint=f"give {flag} {default}")
    if not 1 <= int(value) <= 65535:
        raise UsageError(f"{flag} {value} is outside 1-65535", hint=f"give {flag} {default}")
    return int(value)
