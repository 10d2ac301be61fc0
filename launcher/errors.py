"""The one error hierarchy of ma-launch and its exit codes.

Every failure the user can fix is a :class:`LaunchError`: it is caught once at the top, printed as
``ma-launch: error: <message>`` plus a ``hint:`` line, and mapped to the documented exit code. The codes
follow sysexits.h where one fits, and the shell's 126/127 for commands that cannot run.

Standard library only, apart from the masking rule (:mod:`launcher.render.mask`, itself import-free),
which every printed error line follows: the supervisor prints these lines too.
"""

from __future__ import annotations


class LaunchError(Exception):
    """A failure with a message for the user, a hint naming the fix, and an exit code."""

    exit_code = 70  # EX_SOFTWARE: should not happen; a bug in ma-launch

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        """The one line ma-launch prints for it: ``ma-launch: error: <message> (hint: <fix>)``; line breaks
        and other control characters in either are escaped, and secrets in quoted values are masked."""
        from launcher.render.mask import mask_text

        hint = f" (hint: {one_line(self.hint)})" if self.hint else ""
        return mask_text(f"ma-launch: error: {one_line(self.message)}{hint}")


class UsageError(LaunchError):
    """Bad options or arguments on the command line or in MA_LAUNCH_* variables."""

    exit_code = 2


class DataError(LaunchError):
    """A file ma-launch must read is malformed (conda-meta/state, env_vars.d, a rank table)."""

    exit_code = 65  # EX_DATAERR


class NotFoundError(LaunchError):
    """Something that was asked for does not exist: an env, a conda root, the working directory."""

    exit_code = 66  # EX_NOINPUT


class UnavailableError(LaunchError):
    """A tool that is needed is missing (conda for --conda-run, bash for activate.d scripts)."""

    exit_code = 69  # EX_UNAVAILABLE


class TimeoutError_(LaunchError):
    """A wait ran out of time (the rank table never completed); retrying may work."""

    exit_code = 75  # EX_TEMPFAIL


class AccessError(LaunchError):
    """A path exists but the current user may not use it."""

    exit_code = 77  # EX_NOPERM


class ConfigError(LaunchError):
    """The setup is inconsistent: failing activation under --strict-activation, a lint under --strict-lint,
    distributed variables that contradict each other."""

    exit_code = 78  # EX_CONFIG


class CommandNotExecutable(LaunchError):
    """The command exists but cannot be executed."""

    exit_code = 126


class CommandNotFound(LaunchError):
    """The command is not on PATH or the file does not exist."""

    exit_code = 127


def one_line(text: str) -> str:
    """``text`` as it may appear in a one-line message: printable characters as they are, every other one
    (a line break, a tab, an escape, an undecodable byte) as its Python escape: ``\\n``, ``\\x1b``,
    ``\\udcff``."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def exec_error(name: str, code: int, strerror: str = "") -> LaunchError:
    """The error for a failed exec of ``name`` with errno ``code``, with the shell's exit codes: 127 when
    it is not found, 126 when it cannot run. The one errno mapping, for the executor and the supervisor."""
    import errno

    if code in (errno.ENOENT, errno.ENOTDIR):
        return CommandNotFound(f"{name}: not found", hint="check the command, or the #! line of the script")
    if code == errno.ENOEXEC:
        return CommandNotExecutable(
            f"{name}: not a program this system can run (no #! line, or another architecture)",
            hint="add a #! line, or run it with its interpreter",
        )
    if code in (errno.EACCES, errno.EPERM):
        return CommandNotExecutable(f"{name}: permission denied", hint=f"chmod +x {name}")
    import os

    reason = strerror or (os.strerror(code) if code else "unknown error")
    return CommandNotExecutable(f"{name}: cannot be executed: {reason}", hint="check the command")
