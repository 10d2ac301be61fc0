"""The setuid/setgid files a base image may ship: doctor's built-in list, and reading ``--baseline FILE``."""

from __future__ import annotations

import os

from launcher.errors import DataError
from launcher.image.reading import TEXT_LIMIT, decode_text, read_error, read_regular

#: setuid/setgid programs that Debian and Ubuntu base images ship themselves.
BUILTIN_SETUID_BASELINE = frozenset(
    prefix + path
    for prefix in ("", "/usr")  # merged-/usr images list both spellings
    for path in (
        "/bin/passwd",
        "/bin/su",
        "/bin/mount",
        "/bin/umount",
        "/bin/newgrp",
        "/bin/chsh",
        "/bin/chfn",
        "/bin/gpasswd",
        "/bin/sudo",
        "/bin/sudoedit",
        "/bin/chage",
        "/bin/expiry",
        "/bin/wall",
        "/bin/write",
        "/bin/crontab",
        "/bin/ssh-agent",
        "/bin/fusermount",
        "/bin/fusermount3",
        "/bin/pkexec",
        "/bin/ping",
        "/sbin/unix_chkpwd",
        "/sbin/pam_extrausers_chkpwd",
        "/lib/openssh/ssh-keysign",
        "/lib/dbus-1.0/dbus-daemon-launch-helper",
        "/lib/policykit-1/polkit-agent-helper-1",
        "/libexec/polkit-agent-helper-1",
        "/lib/eject/dmcrypt-get-device",
        "/bin/at",
        "/bin/bsd-write",
        "/bin/dotlockfile",
        "/bin/mlocate",
        "/bin/plocate",
    )
)

_HINT = "give a text file with one absolute image path per line ('#' starts a comment)"


def parse_baseline(text: str, source: str) -> frozenset[str]:
    """The paths of a baseline text: one absolute image path per line; blank lines and ``#`` comments are
    skipped. A :class:`DataError` names the first line that is not an absolute path."""
    paths: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if not entry.startswith("/"):
            raise DataError(f"{source} line {number}: {entry!r} is not an absolute path", _HINT)
        paths.add(os.path.normpath(entry))
    return frozenset(paths)


def read_baseline(path: str) -> frozenset[str]:
    """The paths listed in the file ``path``. Raises the read's :class:`~launcher.errors.LaunchError`
    (66 missing or a directory, 77 unreadable, 65 binary or not a regular file)."""
    what = f"the baseline {path}"
    try:
        data = read_regular(path, TEXT_LIMIT)
    except OSError as exc:
        raise read_error(exc, what, _HINT) from None
    return parse_baseline(decode_text(data, what, _HINT), what)
