"""``ma-launch doctor``: check a ModelArts custom image against the platform's rules.

The image is either the running system (root ``/``) or an unpacked image root (``docker export``
extracted into a directory). Every check returns a :class:`Check`; :func:`run_checks` runs them all
and :func:`render_table` / :func:`to_json` present the result. Exit status (see ``launcher.cli.app``):
0 when no check fails, 1 when any check fails, 2 for bad usage.

Nothing here changes the checked image. On the live image, checks about permissions run a real
probe as the default user (``setpriv --reuid --regid --clear-groups``) when ma-launch runs as root;
elsewhere they read the owner and mode bits.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional

from launcher.errors import NotFoundError, UsageError
from launcher.ld.shebang import read_shebang
from launcher.ld.sonames import is_driver_soname
from launcher.modelarts.facts import CONDA_ROOTS as DEFAULT_ROOTS

PASS, WARN, FAIL = "pass", "warn", "fail"
STATUSES = (PASS, WARN, FAIL)

#: JSON output format version; bumped on incompatible changes.
JSON_VERSION = 1

V2_UID, V2_GID, V2_USER, V2_HOME = 1000, 100, "ma-user", "/home/ma-user"
V1_UID, V1_USER = 1101, "work"
MIGRATED_UID = 1102

GB = 1000**3
SIZE_LIMIT = 30 * GB
SIZE_RECOMMENDED = 15 * GB

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MA_LAUNCH_LOCATIONS = ("/opt/ma-launch/bin/ma-launch", "/home/ma-user/.local/bin/ma-launch")
SKIPPED_TREES = ("/proc", "/sys", "/dev")
PYTHON_TIMEOUT = 30.0

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


@dataclass(frozen=True)
class Check:
    """The outcome of one check: a stable id, a status, one line each of summary and advice."""

    id: str
    status: str
    summary: str
    advice: str = ""
    details: Mapping[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "status": self.status,
            "summary": self.summary,
            "advice": self.advice,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str
    shell: str = "/bin/sh"


@dataclass(frozen=True)
class Context:
    """What the checks need: the image root, the image's variables, the setuid baseline, and how to
    report progress. ``root == "/"`` means the live image."""

    root: str
    environ: Mapping[str, str]
    baseline: frozenset[str] = BUILTIN_SETUID_BASELINE
    progress: bool = False

    @property
    def live(self) -> bool:
        return self.root == "/"

    def host(self, image_path: str) -> str:
        """The path on this machine of an absolute path inside the image."""
        if self.live:
            return image_path
        return os.path.join(self.root, image_path.lstrip("/"))

    def image(self, host_path: str) -> str:
        """The path inside the image of a path on this machine below the root."""
        if self.live:
            return host_path
        rel = os.path.relpath(host_path, self.root)
        return "/" if rel == "." else "/" + rel

    def resolve(self, image_path: str) -> str:
        """Follow symlinks inside the image (absolute targets stay below the root); an image path."""
        if self.live:
            return os.path.realpath(image_path)
        parts = [p for p in image_path.split("/") if p]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            host = self.host("/" + "/".join([*done, part]))
            if os.path.islink(host):
                hops += 1
                if hops > 40:
                    break
                target = os.readlink(host)
                if target.startswith("/"):
                    done = []
                parts = [p for p in target.split("/") if p] + parts
            else:
                done.append(part)
        return "/" + "/".join(done)


# ---------------------------------------------------------------- helpers


def _can_switch_user() -> bool:
    return os.geteuid() == 0 and shutil.which("setpriv") is not None


def as_user_argv(uid: int, gid: int, argv: Sequence[str]) -> list[str]:
    """``argv`` prefixed so that it runs as ``uid:gid`` with no supplementary groups.

    setpriv still holds root's capabilities while it execs, so its own exec would find paths the user
    cannot; a shell started as the user does the final exec instead."""
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--",
        "/bin/sh",
        "-c",
        'exec "$@"',
        "sh",
        *argv,
    ]


def _run(argv: Sequence[str], timeout: float = PYTHON_TIMEOUT) -> tuple[int, str]:
    """Run a probe; ``(returncode, combined output)``; 127 with the reason when it cannot start."""
    try:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            cwd="/",
        )
    except subprocess.TimeoutExpired:
        return 124, f"no answer within {timeout:.0f} s"
    except OSError as exc:
        return 127, exc.strerror or str(exc)
    return proc.returncode, proc.stdout.decode("utf-8", "replace").strip()


def read_passwd(path: str) -> list[User]:
    users: list[User] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return users
    for line in lines:
        fields = line.split(":")
        if len(fields) < 7 or line.startswith("#"):
            continue
        try:
            users.append(User(fields[0], int(fields[2]), int(fields[3]), fields[5], fields[6]))
        except ValueError:
            continue
    return users


def read_groups(path: str) -> dict[int, tuple[str, tuple[str, ...]]]:
    """``gid -> (name, member names)`` from a group file."""
    groups: dict[int, tuple[str, tuple[str, ...]]] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return groups
    for line in lines:
        fields = line.split(":")
        if len(fields) < 4:
            continue
        try:
            gid = int(fields[2])
        except ValueError:
            continue
        groups[gid] = (fields[0], tuple(m for m in fields[3].split(",") if m))
    return groups


def default_user(ctx: Context) -> User:
    """The user jobs run as: UID 1000, else ``ma-user`` by name, else the v2 convention."""
    users = read_passwd(ctx.host("/etc/passwd"))
    for user in users:
        if user.uid == V2_UID:
            return user
    for user in users:
        if user.name == V2_USER:
            return user
    return User(V2_USER, V2_UID, V2_GID, V2_HOME)


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


def _user_gids(ctx: Context, user: User) -> set[int]:
    gids = {user.gid}
    for gid, (_name, members) in read_groups(ctx.host("/etc/group")).items():
        if user.name in members:
            gids.add(gid)
    return gids


def path_reachable(ctx: Context, image_path: str, user: User, want: int) -> Optional[str]:
    """``None`` when ``user`` can reach ``image_path`` (search on each parent directory) and has ``want``
    on it, judged by mode bits; else the first path that stops it."""
    gids = _user_gids(ctx, user)
    resolved = ctx.resolve(image_path)
    parts = [p for p in resolved.split("/") if p]
    current = "/"
    for part in parts[:-1]:
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


# ---------------------------------------------------------------- the default user


def check_user(ctx: Context) -> Check:
    users = read_passwd(ctx.host("/etc/passwd"))
    if not users:
        return Check(
            "user",
            FAIL,
            "no readable /etc/passwd in the image",
            "create the default user: useradd -m -d /home/ma-user -u 1000 -g 100 ma-user",
        )
    groups = read_groups(ctx.host("/etc/group"))
    by_uid = {u.uid: u for u in users}
    by_name = {u.name: u for u in users}
    details: dict[str, object] = {}
    v2 = by_uid.get(V2_UID)
    if v2 is None:
        migrated = by_name.get(V2_USER)
        old = by_uid.get(V1_UID) or by_name.get(V1_USER)
        if migrated is not None and migrated.uid == MIGRATED_UID:
            return Check(
                "user",
                WARN,
                f"ma-user has UID {MIGRATED_UID} (an image migrated from the old service)",
                "new-service jobs run as UID 1000:100; change ma-user to 1000:100 and chown its files",
                {"name": migrated.name, "uid": migrated.uid, "gid": migrated.gid, "home": migrated.home},
            )
        summary = "no user with UID 1000"
        if old is not None:
            summary += f" (found the old service's user {old.name} UID {old.uid}, home {old.home})"
        return Check(
            "user",
            FAIL,
            summary,
            "add the v2 default user: useradd -m -d /home/ma-user -u 1000 -g 100 ma-user",
        )
    details = {"name": v2.name, "uid": v2.uid, "gid": v2.gid, "home": v2.home}
    group = groups.get(V2_GID)
    details["group"] = group[0] if group else None
    problems = []
    if v2.name != V2_USER:
        problems.append(f"UID 1000 is named {v2.name!r}, not ma-user")
    if v2.gid != V2_GID:
        problems.append(f"its primary group is {v2.gid}, not 100")
    elif group is None:
        problems.append("group 100 is missing from /etc/group")
    if v2.home != V2_HOME:
        problems.append(f"its home is {v2.home}, not /home/ma-user")
    if problems:
        return Check(
            "user",
            WARN,
            "; ".join(problems),
            "the v2 service expects ma-user 1000:100 with home /home/ma-user",
            details,
        )
    return Check("user", PASS, f"{v2.name} {v2.uid}:{v2.gid}, home {v2.home}", "", details)


def probe_writable(directory: str, uid: int, gid: int) -> tuple[bool, str]:
    """Create and remove a file in ``directory`` as ``uid:gid`` for real (needs root and setpriv)."""
    script = 'f=$(mktemp -p "$1" .ma-launch-doctor.XXXXXX) && rm -f "$f"'
    code, out = _run(as_user_argv(uid, gid, ["/bin/sh", "-c", script, "sh", directory]), timeout=20)
    return code == 0, out


def check_home(ctx: Context, user: User) -> Check:
    home = user.home or V2_HOME
    host = ctx.host(ctx.resolve(home))
    details: dict[str, object] = {"home": home, "uid": user.uid, "gid": user.gid}
    try:
        st = os.stat(host)
    except OSError:
        return Check(
            "home",
            FAIL,
            f"home {home} does not exist",
            f"create it: mkdir -p {home} && chown {user.uid}:{user.gid} {home}",
            details,
        )
    if not stat.S_ISDIR(st.st_mode):
        return Check("home", FAIL, f"home {home} is not a directory", "make it a directory", details)
    details["owner"] = st.st_uid
    details["mode"] = oct(stat.S_IMODE(st.st_mode))
    fix = f"chown {user.uid}:{user.gid} {home} && chmod u+rwx {home}"
    if ctx.live and _can_switch_user():
        ok, out = probe_writable(home, user.uid, user.gid)
        details["method"] = "probe"
        if not ok:
            details["error"] = out
            return Check(
                "home", FAIL, f"UID {user.uid} cannot create files in {home}: {out or 'denied'}", fix, details
            )
    elif ctx.live and os.geteuid() == user.uid:
        details["method"] = "access"
        if not os.access(home, os.W_OK | os.X_OK):
            return Check("home", FAIL, f"{home} is not writable for UID {user.uid}", fix, details)
    else:
        details["method"] = "mode-bits"
        blocked = path_reachable(ctx, home, user, os.W_OK | os.X_OK)
        if blocked is not None:
            what = "is not writable" if blocked == ctx.resolve(home) else f"is not reachable ({blocked})"
            return Check("home", FAIL, f"{home} {what} for UID {user.uid}", fix, details)
    if st.st_uid != user.uid:
        return Check(
            "home",
            WARN,
            f"{home} is writable but owned by UID {st.st_uid}, not {user.uid}",
            f"chown {user.uid}:{user.gid} {home}",
            details,
        )
    return Check("home", PASS, f"{home} exists, owned by and writable for UID {user.uid}", "", details)


# ---------------------------------------------------------------- conda


@dataclass(frozen=True)
class FoundEnv:
    name: str
    prefix: str  # image path
    root: str  # image path


def _is_env(ctx: Context, image_path: str) -> bool:
    return os.path.isdir(ctx.host(os.path.join(image_path, "conda-meta")))


def conda_roots(ctx: Context) -> list[str]:
    """Conda roots in the image (image paths): ANACONDA_DIR first, then the usual places."""
    roots: list[str] = []
    candidates = [ctx.environ.get("ANACONDA_DIR", ""), *DEFAULT_ROOTS]
    for candidate in candidates:
        if not candidate or not candidate.startswith("/"):
            continue
        path = os.path.normpath(candidate)
        if path not in roots and _is_env(ctx, path):
            roots.append(path)
    return roots


def conda_envs(ctx: Context, roots: Sequence[str]) -> list[FoundEnv]:
    envs: list[FoundEnv] = []
    for root in roots:
        envs.append(FoundEnv("base", root, root))
        try:
            names = sorted(os.listdir(ctx.host(os.path.join(root, "envs"))))
        except OSError:
            continue
        for name in names:
            prefix = os.path.join(root, "envs", name)
            if _is_env(ctx, prefix):
                envs.append(FoundEnv(name, prefix, root))
    return envs


def check_conda(ctx: Context, roots: Sequence[str], envs: Sequence[FoundEnv]) -> Check:
    details: dict[str, object] = {
        "roots": list(roots),
        "envs": [{"name": e.name, "prefix": e.prefix} for e in envs],
    }
    if not roots:
        return Check(
            "conda",
            WARN,
            "no conda installation found (ANACONDA_DIR, " + ", ".join(DEFAULT_ROOTS) + ")",
            "install conda under /home/ma-user/anaconda3 or set ANACONDA_DIR",
            details,
        )
    names = ", ".join(e.name for e in envs)
    return Check("conda", PASS, f"{len(roots)} conda root(s): {', '.join(roots)}; envs: {names}", "", details)


def check_python(ctx: Context, env: FoundEnv, user: User) -> Check:
    cid = f"python:{env.prefix}"
    image_python = os.path.join(env.prefix, "bin", "python")
    details: dict[str, object] = {"env": env.name, "prefix": env.prefix, "python": image_python}
    resolved = ctx.resolve(image_python)
    host = ctx.host(resolved)
    if not os.path.lexists(ctx.host(image_python)):
        return Check(
            cid, WARN, f"env {env.name} has no bin/python", "fine for a non-Python env; else reinstall python"
        )
    if not os.path.isfile(host):
        return Check(
            cid,
            FAIL,
            f"env {env.name}: bin/python points at {resolved}, which does not exist",
            f"reinstall python in the env: conda install -p {env.prefix} python",
            details,
        )
    # The live image runs bin/python as jobs do; an unpacked root runs the file its links lead to.
    argv: list[str] = [image_python if ctx.live else host, "-V"]
    if ctx.live and _can_switch_user():
        argv = as_user_argv(user.uid, user.gid, argv)
        details["as_uid"] = user.uid
    elif not ctx.live:
        blocked = path_reachable(ctx, resolved, user, os.R_OK | os.X_OK)
        if blocked is not None:
            details["blocked"] = blocked
            return Check(
                cid,
                FAIL,
                f"env {env.name}: UID {user.uid} cannot run bin/python ({blocked} denies it)",
                f"chown -R {user.uid}:{user.gid} {env.root} or chmod -R a+rX {env.prefix}",
                details,
            )
    code, out = _run(argv)
    details["returncode"] = code
    details["output"] = out
    if code != 0:
        return Check(
            cid,
            FAIL,
            f"env {env.name}: bin/python does not start ({out.splitlines()[-1] if out else f'exit {code}'})",
            "run it by hand to see why; a broken or foreign-architecture interpreter needs a reinstall",
            details,
        )
    version = out.splitlines()[-1] if out else "?"
    details["version"] = version
    return Check(cid, PASS, f"env {env.name}: {version}", "", details)


def check_default_env(ctx: Context, roots: Sequence[str]) -> Check:
    anaconda = ctx.environ.get("ANACONDA_DIR", "")
    name = ctx.environ.get("DEFAULT_CONDA_ENV_NAME", "")
    details: dict[str, object] = {"ANACONDA_DIR": anaconda or None, "DEFAULT_CONDA_ENV_NAME": name or None}
    source = "the environment" if ctx.live else "--image-env"
    if not anaconda and not name:
        return Check(
            "default-env",
            WARN,
            f"ANACONDA_DIR and DEFAULT_CONDA_ENV_NAME are not set (in {source})",
            "set them in the Dockerfile (ENV ANACONDA_DIR=… DEFAULT_CONDA_ENV_NAME=…)",
            details,
        )
    if anaconda and (not anaconda.startswith("/") or not _is_env(ctx, anaconda)):
        return Check(
            "default-env",
            FAIL,
            f"ANACONDA_DIR={anaconda} is not a conda installation (no conda-meta/)",
            "point ANACONDA_DIR at the conda root, e.g. /home/ma-user/anaconda3",
            details,
        )
    if not name:
        return Check(
            "default-env",
            WARN,
            f"ANACONDA_DIR={anaconda} is set but DEFAULT_CONDA_ENV_NAME is not",
            "set DEFAULT_CONDA_ENV_NAME to the env jobs should run in (base for the root)",
            details,
        )
    search = [os.path.normpath(anaconda)] if anaconda else list(roots)
    for root in search:
        prefix = root if name == "base" else os.path.join(root, "envs", name)
        if _is_env(ctx, prefix):
            details["prefix"] = prefix
            return Check("default-env", PASS, f"DEFAULT_CONDA_ENV_NAME={name} is {prefix}", "", details)
    where = ", ".join(search) or "no conda root"
    return Check(
        "default-env",
        FAIL,
        f"DEFAULT_CONDA_ENV_NAME={name} is not an env in {where}",
        "fix the name or ANACONDA_DIR; envs live in $ANACONDA_DIR/envs/<name>",
        details,
    )


# ---------------------------------------------------------------- shared libraries


def _ld_environ(ctx: Context) -> dict[str, str]:
    environ = dict(ctx.environ)
    if not ctx.live and environ.get("LD_LIBRARY_PATH"):
        environ["LD_LIBRARY_PATH"] = ":".join(
            ctx.host(p) if p.startswith("/") else p for p in environ["LD_LIBRARY_PATH"].split(":") if p
        )
    return environ


def check_ld(ctx: Context, env: FoundEnv) -> Check:
    """Sonames the env's programs and libraries need that nothing provides."""
    cid = f"ld:{env.prefix}"
    host_prefix = ctx.host(env.prefix)
    from launcher.ld.analysis import analyze
    from launcher.ld.store import NullStore

    missing: dict[str, list[str]] = {}
    details: dict[str, object] = {"env": env.name, "prefix": env.prefix}
    # The whole env, its executables too; no cache: doctor leaves nothing behind.
    analysis = analyze(host_prefix, None, _ld_environ(ctx), store=NullStore(), reach=True)
    image_dirs = [ctx.host(d) for d in (*SYSTEM_LIB_DIRS, *_ld_conf_dirs(ctx))] if not ctx.live else []
    for item in analysis.unresolved:
        if any(os.path.exists(os.path.join(d, item.soname)) for d in image_dirs):
            continue  # the image's own system libraries provide it
        missing[item.soname] = sorted(ctx.image(n) if n.startswith("/") else n for n in item.needers)
    details["added"] = [
        {"directory": ctx.image(a.directory), "provides": list(a.provides)} for a in analysis.added
    ]
    if not ctx.live:
        details["note"] = "libraries outside the env were looked up on this machine, not in the image"
    details["unresolved"] = dict(sorted(missing.items()))
    drivers = sorted(s for s in missing if is_driver_soname(s))
    others = sorted(s for s in missing if not is_driver_soname(s))
    if others:
        first = others[0]
        needers = missing[first]
        return Check(
            cid,
            FAIL,
            f"env {env.name}: nothing provides {', '.join(others)}"
            + (f" (needed by {needers[0]})" if needers else ""),
            "install the package that ships it into the env (conda install …) or add its directory with "
            "LD_LIBRARY_PATH",
            details,
        )
    if drivers:
        return Check(
            cid,
            WARN,
            f"env {env.name}: {', '.join(drivers)} not in the image",
            "expected: the platform mounts the GPU driver at /usr/local/nvidia at run time",
            details,
        )
    return Check(cid, PASS, f"env {env.name}: every needed shared library is found", "", details)


SYSTEM_LIB_DIRS = (
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
)


def _ld_conf_dirs(ctx: Context) -> list[str]:
    dirs: list[str] = []
    conf_d = ctx.host("/etc/ld.so.conf.d")
    try:
        names = sorted(os.listdir(conf_d))
    except OSError:
        names = []
    for name in names:
        if not name.endswith(".conf"):
            continue
        try:
            with open(os.path.join(conf_d, name), encoding="utf-8", errors="replace") as fh:
                dirs.extend(line.strip() for line in fh if line.strip().startswith("/"))
        except OSError:
            continue
    return dirs


# ---------------------------------------------------------------- the one walk


@dataclass
class TreeScan:
    total_bytes: int = 0
    files: int = 0
    setuid: list[tuple[str, int]] = field(default_factory=list)  # (image path, mode)
    drivers: list[str] = field(default_factory=list)
    errors: int = 0


class _Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last = 0.0
        self.width = 0

    def show(self, scan: TreeScan, where: str) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        line = f"scanning: {scan.files} files, {scan.total_bytes / GB:.2f} GB  {where}"[:100]
        sys.stderr.write("\r" + line.ljust(self.width))
        sys.stderr.flush()
        self.width = len(line)

    def done(self) -> None:
        if self.enabled and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def scan_tree(ctx: Context) -> TreeScan:
    """Walk the image once: size, root-owned setuid/setgid files and baked GPU driver libraries.
    Skips /proc, /sys, /dev; on the live image stays on the root file system's device."""
    scan = TreeScan()
    progress = _Progress(ctx.progress)
    top = ctx.host("/")
    root_dev = os.lstat(top).st_dev
    seen_inodes: set[tuple[int, int]] = set()
    stack = [top]
    skipped = {os.path.normpath(ctx.host(p)) for p in SKIPPED_TREES}
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            scan.errors += 1
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                scan.errors += 1
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.path in skipped or (ctx.live and st.st_dev != root_dev):
                    continue
                stack.append(entry.path)
                continue
            scan.files += 1
            if stat.S_ISREG(st.st_mode):
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen_inodes:
                        continue
                    seen_inodes.add(key)
                scan.total_bytes += st.st_size
                if st.st_uid == 0 and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                    scan.setuid.append((ctx.image(entry.path), stat.S_IMODE(st.st_mode)))
            if is_driver_soname(entry.name):
                image_path = ctx.image(entry.path)
                if not image_path.startswith("/usr/local/nvidia/") and "/stubs/" not in image_path:
                    scan.drivers.append(image_path)
        progress.show(scan, ctx.image(directory))
    progress.done()
    scan.setuid.sort()
    scan.drivers.sort()
    return scan


def check_setuid(ctx: Context, scan: TreeScan) -> Check:
    unexpected = [(p, m) for p, m in scan.setuid if p not in ctx.baseline]
    details: dict[str, object] = {
        "unexpected": [{"path": p, "mode": oct(m)} for p, m in unexpected],
        "known": [p for p, _m in scan.setuid if p in ctx.baseline],
    }
    if unexpected:
        paths = [p for p, _m in unexpected]
        shown = ", ".join(paths[:5]) + (f" (+{len(paths) - 5} more)" if len(paths) > 5 else "")
        return Check(
            "setuid",
            FAIL,
            f"{len(paths)} added root-owned setuid/setgid file(s): {shown}",
            f"remove the bits (chmod u-s,g-s {paths[0]}) or list base-image files with --baseline FILE",
            details,
        )
    return Check(
        "setuid", PASS, f"no added setuid/setgid files ({len(scan.setuid)} known from the base)", "", details
    )


def check_drivers(scan: TreeScan) -> Check:
    details: dict[str, object] = {"files": list(scan.drivers)}
    if not scan.drivers:
        return Check("gpu-driver", PASS, "no GPU driver libraries baked into the image", "", details)
    compat = [p for p in scan.drivers if "/compat/" in p]
    baked = [p for p in scan.drivers if "/compat/" not in p]
    if not baked:
        return Check(
            "gpu-driver",
            WARN,
            f"CUDA forward-compatibility driver libraries: {', '.join(compat[:3])}",
            "fine only if the node's driver is older; they take effect when on LD_LIBRARY_PATH",
            details,
        )
    return Check(
        "gpu-driver",
        FAIL,
        f"{len(baked)} GPU driver file(s) in the image: {', '.join(baked[:3])}"
        + (" …" if len(baked) > 3 else ""),
        "remove them: the platform mounts the node's driver at /usr/local/nvidia",
        details,
    )


def check_size(scan: TreeScan) -> Check:
    size = scan.total_bytes
    details: dict[str, object] = {"bytes": size, "files": scan.files, "unreadable": scan.errors}
    text = f"{size / GB:.2f} GB in {scan.files} files"
    if size > SIZE_LIMIT:
        return Check(
            "size",
            FAIL,
            f"{text}: above the 30 GB limit",
            "shrink the image: conda clean -afy, pip cache purge, multi-stage builds",
            details,
        )
    if size > SIZE_RECOMMENDED:
        return Check(
            "size",
            WARN,
            f"{text}: above the recommended 15 GB",
            "smaller images start faster (the old training service allowed only 9.5 GB)",
            details,
        )
    note = " (above the old service's 9.5 GB)" if size > 9.5 * GB else ""
    return Check("size", PASS, text + note, "", details)


# ---------------------------------------------------------------- shell, buffering, ma-launch


def check_sh(ctx: Context) -> Check:
    resolved = ctx.resolve("/bin/sh")
    details: dict[str, object] = {"sh": resolved}
    if not os.path.isfile(ctx.host(resolved)):
        return Check("sh", FAIL, "/bin/sh is missing", "install a POSIX shell (dash or bash)", details)
    name = os.path.basename(resolved)
    if name.startswith("dash"):
        return Check(
            "sh",
            WARN,
            "/bin/sh is dash: it does not exec the last command of a boot line",
            "start boot lines with 'exec ma-launch …' so signals reach the job",
            details,
        )
    return Check("sh", PASS, f"/bin/sh is {name}", "", details)


def check_unbuffered(ctx: Context) -> Check:
    value = ctx.environ.get("PYTHONUNBUFFERED", "")
    details: dict[str, object] = {"PYTHONUNBUFFERED": value or None}
    if value:
        return Check("unbuffered", PASS, f"PYTHONUNBUFFERED={value} is baked in", "", details)
    where = "" if ctx.live else " (docker export drops ENV: pass --image-env PYTHONUNBUFFERED=1 if it is set)"
    return Check(
        "unbuffered",
        WARN,
        "PYTHONUNBUFFERED is not set" + where,
        "add ENV PYTHONUNBUFFERED=1 so Python logs reach the job log on time",
        details,
    )


def find_ma_launch(ctx: Context) -> Optional[str]:
    """The ma-launch the default user would run (an image path), or ``None``."""
    path = ctx.environ.get("PATH") or DEFAULT_PATH
    for entry in [*path.split(":"), *(os.path.dirname(p) for p in MA_LAUNCH_LOCATIONS)]:
        if not entry.startswith("/"):
            continue
        candidate = os.path.join(entry, "ma-launch")
        if os.path.isfile(ctx.host(ctx.resolve(candidate))):
            return candidate
    if ctx.live and os.path.basename(sys.argv[0]) == "ma-launch" and os.path.isabs(sys.argv[0]):
        return sys.argv[0]
    return None


def check_ma_launch(ctx: Context, user: User, program: Optional[str] = None) -> Check:
    program = program or find_ma_launch(ctx)
    if program is None:
        return Check(
            "ma-launch",
            FAIL,
            "ma-launch is not on the image's PATH nor in /opt/ma-launch/bin",
            "install it (python -m venv /opt/ma-launch && /opt/ma-launch/bin/pip install ma-launch) and link "
            "/opt/ma-launch/bin/ma-launch into /usr/local/bin",
            {},
        )
    details: dict[str, object] = {"path": program, "uid": user.uid}
    fix = f"make it usable by UID {user.uid}: chmod -R a+rX the install directory"
    if ctx.live and _can_switch_user():
        code, out = _run(as_user_argv(user.uid, user.gid, [program, "--version"]), timeout=30)
        details.update(method="probe", returncode=code, output=out)
        if code != 0:
            return Check(
                "ma-launch",
                FAIL,
                f"UID {user.uid} cannot run {program} --version: {out.splitlines()[-1] if out else code}",
                fix,
                details,
            )
        return Check("ma-launch", PASS, f"{program} runs as UID {user.uid}: {out}", "", details)
    if ctx.live and os.geteuid() == user.uid:
        code, out = _run([program, "--version"], timeout=30)
        details.update(method="run", returncode=code, output=out)
        if code != 0:
            return Check("ma-launch", FAIL, f"{program} --version failed: {out}", fix, details)
        return Check("ma-launch", PASS, f"{program}: {out}", "", details)
    details["method"] = "mode-bits"
    chain = [program]
    words = read_shebang(ctx.host(ctx.resolve(program)))
    interpreter = words[0] if words else None
    if interpreter and interpreter.startswith("/") and os.path.basename(interpreter) != "env":
        chain.append(interpreter)
        details["interpreter"] = interpreter
    for item in chain:
        if not os.path.isfile(ctx.host(ctx.resolve(item))):
            return Check("ma-launch", FAIL, f"{program} needs {item}, which is missing", fix, details)
        blocked = path_reachable(ctx, item, user, os.R_OK | os.X_OK)
        if blocked is not None:
            return Check(
                "ma-launch", FAIL, f"UID {user.uid} cannot run {item} ({blocked} denies it)", fix, details
            )
    return Check("ma-launch", PASS, f"{program} is executable by UID {user.uid}", "", details)


# ---------------------------------------------------------------- running and presenting


def read_baseline(path: str) -> frozenset[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise NotFoundError(
            f"cannot read the baseline {path}: {exc.strerror}", hint="give a file with one path per line"
        ) from None
    return frozenset(
        os.path.normpath(line.strip()) for line in lines if line.strip() and not line.startswith("#")
    )


def parse_image_env(items: Sequence[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise UsageError(
                f"--image-env {item!r} is not KEY=VALUE", hint="e.g. --image-env PYTHONUNBUFFERED=1"
            )
        result[key] = value
    return result


def make_context(
    root: str,
    image_env: Sequence[str] = (),
    baseline: Optional[str] = None,
    progress: bool = False,
    environ: Optional[Mapping[str, str]] = None,
) -> Context:
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise NotFoundError(
            f"image root {root} is not a directory",
            hint="give the directory a 'docker export' was unpacked in",
        )
    variables: dict[str, str] = {}
    if root == "/":
        variables.update(os.environ if environ is None else environ)
    variables.update(parse_image_env(image_env))
    known = read_baseline(baseline) if baseline else BUILTIN_SETUID_BASELINE
    return Context(root=root, environ=variables, baseline=known, progress=progress)


def run_checks(ctx: Context) -> list[Check]:
    """Every check, in a stable order."""
    checks: list[Check] = []
    user = default_user(ctx)
    checks.append(check_user(ctx))
    checks.append(check_home(ctx, user))
    roots = conda_roots(ctx)
    envs = conda_envs(ctx, roots)
    checks.append(check_conda(ctx, roots, envs))
    checks.append(check_default_env(ctx, roots))
    for env in envs:
        checks.append(check_python(ctx, env, user))
    for env in envs:
        checks.append(check_ld(ctx, env))
    scan = scan_tree(ctx)
    checks.append(check_setuid(ctx, scan))
    checks.append(check_drivers(scan))
    checks.append(check_size(scan))
    checks.append(check_sh(ctx))
    checks.append(check_unbuffered(ctx))
    checks.append(check_ma_launch(ctx, user))
    return checks


def counts(checks: Sequence[Check]) -> dict[str, int]:
    return {s: sum(1 for c in checks if c.status == s) for s in STATUSES}


def exit_code(checks: Sequence[Check]) -> int:
    """0 when no check fails, 1 otherwise."""
    return 1 if any(c.status == FAIL for c in checks) else 0


def to_json(ctx: Context, checks: Sequence[Check]) -> str:
    """The documented JSON report::

    {"version": 1, "root": "/", "checks": [{"id", "status": "pass|warn|fail", "summary", "advice",
      "details": {...}}], "counts": {"pass": n, "warn": n, "fail": n}, "ok": true}
    """
    report = {
        "version": JSON_VERSION,
        "root": ctx.root,
        "checks": [c.as_dict() for c in checks],
        "counts": counts(checks),
        "ok": exit_code(checks) == 0,
    }
    return json.dumps(report, indent=2, sort_keys=False)


def render_table(ctx: Context, checks: Sequence[Check], write: Callable[[str], object]) -> None:
    width = max([len(c.id) for c in checks] + [5])
    write(f"ma-launch doctor: {'the running image' if ctx.live else ctx.root}\n")
    for c in checks:
        write(f"{c.status.upper():<4}  {c.id:<{width}}  {c.summary}\n")
        if c.advice and c.status != PASS:
            write(f"{'':<4}  {'':<{width}}  -> {c.advice}\n")
    n = counts(checks)
    write(f"{n[PASS]} passed, {n[WARN]} warnings, {n[FAIL]} failed\n")
