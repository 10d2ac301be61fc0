"""Running processes for the supervisor tests: real PID namespaces, the process table, and programs that
are always stopped at the end of a test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Callable, Optional

import pytest
from launchkit import REPO
from needs import missing

PROGS = str(REPO / "tests" / "supervise_progs.py")
PY = os.environ.get("MA_LAUNCH_TEST_PYTHON") or sys.executable  # the interpreter that runs the supervisor
SUMMARY = re.compile(
    r"^ma-launch: program ended: (exit code \d+|killed by SIG[A-Z0-9]+ \(status \d+\)), wall [0-9.]+ s, "
    r"CPU [0-9.]+ s \(process tree\), peak RSS [0-9.]+ (B|KiB|MiB|GiB) \(largest process\)(; .*)?$"
)


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)  # the supervisor must not depend on it
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def supervisor(
    *command: str, grace: float = 5.0, quiet: bool = False, options: Sequence[str] = ()
) -> list[str]:
    """The supervisor's debug entry running ``command``; ``options`` such as ``--summary FILE``."""
    args = [PY, "-m", "launcher.run.supervise", "--grace", str(grace), *options]
    if quiet:
        args.append("--quiet")
    return [*args, "--", *command]


def prog(*args: str) -> list[str]:
    return [PY, PROGS, *args]


_UNSHARE: Optional[bool] = None


def need_pid_namespace() -> None:
    global _UNSHARE  # noqa: PLW0603
    if _UNSHARE is None:
        try:
            result = subprocess.run(
                ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=10
            )
            _UNSHARE = result.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _UNSHARE = False
    if not _UNSHARE:
        missing("needs unshare --pid --fork --mount-proc (root, util-linux)")


def as_pid1(command: list[str]) -> list[str]:
    need_pid_namespace()
    return ["unshare", "--pid", "--fork", "--mount-proc", *command]


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """A failing test must not leave supervisors or programs running behind it."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def start(
    command: list[str], *, env: Optional[dict[str, str]] = None, cwd: Optional[str] = None, **kwargs: object
) -> subprocess.Popen[str]:
    """Start ``command`` (by default with :func:`base_env` in the repository), capturing its output; it is
    killed at the end of the test if it still runs."""
    proc = subprocess.Popen(  # type: ignore[call-overload]
        command,
        env=base_env() if env is None else env,
        cwd=str(REPO) if cwd is None else cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
    _STARTED.append(proc)
    return proc  # type: ignore[no-any-return]


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def wait_file(path: Path, timeout: float = 10.0) -> None:
    wait_for(path.exists, timeout, str(path))


def child_of(pid: int) -> int:
    """The first child of ``pid`` (the PID-1 supervisor under unshare), as seen from here."""

    def children() -> list[int]:
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return []
        return [int(x) for x in text.split()]

    wait_for(lambda: bool(children()), what=f"a child of {pid}")
    return children()[0]


def proc_table() -> dict[int, tuple[str, int, str]]:
    """pid -> (state, ppid, cmdline) for every process visible here."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        table[int(entry.name)] = (fields[0].decode(), int(fields[1]), cmdline)
    return table


def descendants(root: int, table: dict[int, tuple[str, int, str]]) -> list[int]:
    found, todo = [], [root]
    while todo:
        parent = todo.pop()
        for pid, (_, ppid, _) in table.items():
            if ppid == parent:
                found.append(pid)
                todo.append(pid)
    return found


def with_token(token: str) -> list[int]:
    return [pid for pid, (state, _, cmd) in proc_table().items() if token in cmd and state != "Z"]


def finish(proc: subprocess.Popen[str], timeout: float = 15.0) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def assert_clean(err: str) -> None:
    assert "Traceback" not in err, err
