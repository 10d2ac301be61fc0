"""Where the launcher sits in the container: whether it supervises the program (``--init``), and what
about its place is worth a warning. Launcher side: the resident supervisor does not need it."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from launcher.modes import InitMode


def should_supervise(mode: InitMode) -> bool:
    """Whether to run the program under the supervisor: ``auto`` means "when this process is PID 1"."""
    return mode == "always" or (mode == "auto" and os.getpid() == 1)


def pid1_warnings(mode: str) -> list[str]:
    """Warnings about how this process sits in the container, without the ``ma-launch: warning:`` prefix."""
    warnings: list[str] = []
    pid = os.getpid()
    if pid == 1 and mode == "never":
        warnings.append(
            "running as PID 1 without the supervisor: SIGTERM will be ignored unless the program handles it, "
            "and orphaned processes are never reaped (hint: use --init auto)"
        )
    if pid != 1 and os.getppid() == 1 and _pid1_is_dash():
        warnings.append(
            "the parent is PID 1 /bin/sh (dash): it swallows SIGTERM and waits instead of exec'ing, so a "
            "stop ends in SIGKILL after the platform's timeout (hint: write `exec ma-launch …` in the boot "
            "command)"
        )
    return warnings


def _pid1_is_dash() -> bool:
    """Whether PID 1 runs dash; /proc/1/exe when we may read it, else argv[0] of PID 1 resolved on disk."""
    try:
        exe = os.readlink("/proc/1/exe")
    except OSError:
        exe = ""
    if exe:
        if exe.endswith(" (deleted)"):
            exe = exe[: -len(" (deleted)")]
        return os.path.basename(exe) == "dash"
    try:
        with open("/proc/1/cmdline", "rb") as handle:
            argv0 = handle.read().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return False
    name = os.path.basename(argv0.lstrip("-"))
    if name == "dash":
        return True
    if name != "sh":
        return False
    path = argv0.lstrip("-") if "/" in argv0 else "/bin/sh"
    return os.path.basename(os.path.realpath(path)) == "dash"
