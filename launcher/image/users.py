"""The image's users and groups (``/etc/passwd``, ``/etc/group``), its default user, and what that user may
do to a path judged by owners and mode bits; and how doctor may find out what the user can run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, Optional

from launcher.image.check import Method
from launcher.image.context import Context
from launcher.image.reading import reason
from launcher.modelarts import facts
from launcher.run.probe import can_switch_user

#: The largest valid user or group ID ((uid_t) -1 means "no change" to the kernel).
MAX_ID = 2**32 - 2


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str
    shell: str = "/bin/sh"


class Group(NamedTuple):
    name: str
    members: tuple[str, ...]


def _id(text: str) -> Optional[int]:
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def _fields(line: str, count: int) -> Optional[list[str]]:
    """The ``:``-separated fields of an entry line, or ``None`` for comments, NIS ``+``/``-`` lines,
    NUL bytes and lines with the wrong number of fields."""
    if not line or line.startswith(("#", "+", "-")) or "\0" in line:
        return None
    fields = line.split(":")
    return fields if len(fields) == count and fields[0] else None


def parse_passwd(text: str) -> list[User]:
    """The entries of a passwd file; lines that are not valid entries are skipped."""
    users: list[User] = []
    for line in text.splitlines():
        fields = _fields(line, 7)
        if fields is None:
            continue
        uid, gid = _id(fields[2]), _id(fields[3])
        if uid is not None and gid is not None:
            users.append(User(fields[0], uid, gid, fields[5], fields[6]))
    return users


def parse_group(text: str) -> dict[int, Group]:
    """``gid -> Group`` from a group file; lines that are not valid entries are skipped."""
    groups: dict[int, Group] = {}
    for line in text.splitlines():
        fields = _fields(line, 4)
        gid = _id(fields[2]) if fields else None
        if fields is not None and gid is not None:
            groups[gid] = Group(fields[0], tuple(m for m in fields[3].split(",") if m))
    return groups


def read_users(ctx: Context) -> tuple[list[User], Optional[str]]:
    """The image's users, and why ``/etc/passwd`` could not be read (``None`` when it could)."""
    try:
        return parse_passwd(ctx.read_text("/etc/passwd")), None
    except OSError as exc:
        return [], reason(exc)


def read_groups(ctx: Context) -> dict[int, Group]:
    """The image's groups (none when ``/etc/group`` cannot be read)."""
    try:
        return parse_group(ctx.read_text("/etc/group"))
    except OSError:
        return {}


def pick_default(users: Iterable[User]) -> User:
    """The user jobs run as: UID 1000, else ``ma-user`` by name, else the platform's convention."""
    users = list(users)
    for user in users:
        if user.uid == facts.UID:
            return user
    for user in users:
        if user.name == facts.USER:
            return user
    return User(facts.USER, facts.UID, facts.GID, facts.HOME)


def default_user(ctx: Context) -> User:
    """The image's default user (see :func:`pick_default`)."""
    return pick_default(read_users(ctx)[0])


def user_gids(ctx: Context, user: User) -> set[int]:
    """The user's primary group and the groups that list it as a member."""
    gids = {user.gid}
    gids.update(gid for gid, group in read_groups(ctx).items() if user.name in group.members)
    return gids


def mode_allows(st: os.stat_result, uid: int, gids: Iterable[int], want: int) -> bool:
    """Whether the mode bits give ``uid`` (in groups ``gids``) the access ``want`` (an os.R_OK|W_OK|X_OK
    mask). UID 0 is not special here: the image's default user is never root."""
    if st.st_uid == uid:
        shift = 6
    elif st.st_gid in set(gids):
        shift = 3
    else:
        shift = 0
    bits = (st.st_mode >> shift) & 0o7
    return bits & want == want


def path_reachable(ctx: Context, image_path: str, user: User, want: int) -> Optional[str]:
    """``None`` when ``user`` can reach ``image_path`` (search on each parent directory) and has ``want``
    on it, judged by mode bits; else the first image path that stops it."""
    gids = user_gids(ctx, user)
    try:
        resolved = ctx.resolve(image_path)
    except OSError:
        return image_path
    current = "/"
    for part in [p for p in resolved.split("/") if p][:-1]:
        current = os.path.join(current, part)
        try:
            st = os.stat(ctx.host(current))
        except OSError:
            return current
        if not mode_allows(st, user.uid, gids, os.X_OK):
            return current
    try:
        st = os.stat(ctx.host(resolved))
    except OSError:
        return resolved
    return None if mode_allows(st, user.uid, gids, want) else resolved


def execution_method(ctx: Context, user: User) -> Method:
    """How doctor may learn whether ``user`` can run an image file, by the one rule for executing image
    files: only on the live image (an unpacked root's files would run on this machine, not in their
    image), only as ``user`` and never as root — ``probe`` through setpriv when doctor is root,
    ``as-user`` when doctor already is that user, else ``static`` (nothing is executed)."""
    if not ctx.live or user.uid == 0:
        return "static"
    euid = os.geteuid()
    if euid == 0:
        return "probe" if can_switch_user() else "static"
    return "as-user" if euid == user.uid else "static"


def why_not_executed(ctx: Context, user: User) -> str:
    """Why :func:`execution_method` is ``static``, in words (a check's ``details``)."""
    if not ctx.live:
        return (
            "doctor never executes an unpacked image's files: they would run on this machine, not in the "
            "image, and the default UID may be a real account here"
        )
    if user.uid == 0:
        return "the default user is root, and doctor never executes an image's files as root"
    if os.geteuid() == 0:
        return "setpriv is missing to switch to the default user, and doctor never executes as root"
    return f"doctor runs as UID {os.geteuid()}, not as the default user, and cannot switch users"
