"""doctor's checks of the default user: ``user`` (ma-user 1000:100, the old service's users) and ``home``
(exists, owned by and writable for that user)."""

from __future__ import annotations

import os
import stat
from typing import Optional

from launcher.image.check import FAIL, PASS, WARN, Check, Details
from launcher.image.context import Context
from launcher.image.users import Group, User, execution_method, path_reachable, read_groups, read_users
from launcher.modelarts import facts
from launcher.run.probe import probe_writable

ADD_USER = f"useradd -m -d {facts.HOME} -u {facts.UID} -g {facts.GID} {facts.USER}"


def user_details(user: User) -> Details:
    return {"name": user.name, "uid": user.uid, "gid": user.gid, "home": user.home}


def _without_the_default_uid(by_uid: dict[int, User], by_name: dict[str, User]) -> Check:
    migrated = by_name.get(facts.USER)
    if migrated is not None and migrated.uid == facts.MIGRATED_UID:
        return Check(
            "user",
            WARN,
            f"{facts.USER} has UID {facts.MIGRATED_UID} (an image migrated from the old service)",
            f"new-service jobs run as UID {facts.UID}:{facts.GID}; change {facts.USER} to "
            f"{facts.UID}:{facts.GID} and chown its files",
            user_details(migrated),
        )
    summary = f"no user with UID {facts.UID}"
    old = by_uid.get(facts.V1_UID) or by_name.get(facts.V1_USER)
    if old is not None:
        summary += f" (found the old service's user {old.name} UID {old.uid}, home {old.home})"
    return Check("user", FAIL, summary, f"add the v2 default user: {ADD_USER}")


def _problems(user: User, group: Optional[Group]) -> list[str]:
    problems = []
    if user.name != facts.USER:
        problems.append(f"UID {facts.UID} is named {user.name!r}, not {facts.USER}")
    if user.gid != facts.GID:
        problems.append(f"its primary group is {user.gid}, not {facts.GID}")
    elif group is None:
        problems.append(f"group {facts.GID} is missing from /etc/group")
    if user.home != facts.HOME:
        problems.append(f"its home is {user.home}, not {facts.HOME}")
    return problems


def check_user(ctx: Context) -> Check:
    """The image has the new service's default user, ma-user 1000:100 with home /home/ma-user."""
    users, unreadable = read_users(ctx)
    if unreadable is not None:
        return Check(
            "user", FAIL, f"cannot read /etc/passwd: {unreadable}", f"create the default user: {ADD_USER}"
        )
    if not users:
        return Check("user", FAIL, "/etc/passwd lists no users", f"create the default user: {ADD_USER}")
    by_uid = {u.uid: u for u in users}
    v2 = by_uid.get(facts.UID)
    if v2 is None:
        return _without_the_default_uid(by_uid, {u.name: u for u in users})
    group = read_groups(ctx).get(facts.GID)
    details = user_details(v2)
    details["group"] = group.name if group else None
    problems = _problems(v2, group)
    if problems:
        advice = f"the v2 service expects {facts.USER} {facts.UID}:{facts.GID} with home {facts.HOME}"
        return Check("user", WARN, "; ".join(problems), advice, details)
    return Check("user", PASS, f"{v2.name} {v2.uid}:{v2.gid}, home {v2.home}", "", details)


def _home_denied(ctx: Context, home: str, user: User, details: Details) -> Optional[str]:
    """Why ``user`` cannot create files in ``home`` (``None`` when it can), found out by the one rule of
    :func:`~launcher.image.users.execution_method`."""
    method = execution_method(ctx, user)
    details["method"] = method
    if method == "probe":
        result = probe_writable(home, user.uid, user.gid)
        if not result.ok:
            details["error"] = result.output
            return f"UID {user.uid} cannot create files in {home}: {result.output or 'denied'}"
        return None
    if method == "as-user":
        ok = os.access(home, os.W_OK | os.X_OK)
        return None if ok else f"{home} is not writable for UID {user.uid}"
    blocked = path_reachable(ctx, home, user, os.W_OK | os.X_OK)
    if blocked is None:
        return None
    what = "is not writable" if blocked == ctx.resolve(home) else f"is not reachable ({blocked})"
    return f"{home} {what} for UID {user.uid}"


def check_home(ctx: Context, user: User) -> Check:
    """The default user's home exists, is a directory, is owned by that user and writable for it."""
    home = user.home or facts.HOME
    details: Details = {"home": home, "uid": user.uid, "gid": user.gid}
    try:
        st = os.stat(ctx.host(home))
    except OSError:
        fix = f"create it: mkdir -p {home} && chown {user.uid}:{user.gid} {home}"
        return Check("home", FAIL, f"home {home} does not exist", fix, details)
    if not stat.S_ISDIR(st.st_mode):
        return Check("home", FAIL, f"home {home} is not a directory", "make it a directory", details)
    details["owner"] = st.st_uid
    details["mode"] = oct(stat.S_IMODE(st.st_mode))
    denied = _home_denied(ctx, home, user, details)
    if denied is not None:
        return Check(
            "home", FAIL, denied, f"chown {user.uid}:{user.gid} {home} && chmod u+rwx {home}", details
        )
    if st.st_uid != user.uid:
        summary = f"{home} is writable but owned by UID {st.st_uid}, not {user.uid}"
        return Check("home", WARN, summary, f"chown {user.uid}:{user.gid} {home}", details)
    return Check("home", PASS, f"{home} exists, owned by and writable for UID {user.uid}", "", details)
