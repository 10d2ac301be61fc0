"""Supervisor mode through the real command (``ma-launch --init …``), which plans, then execs (same PID)
into the lean supervisor interpreter. The supervisor's own behaviour is covered in test_supervise.py."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from launchkit import REPO
from supervisekit import (  # the PID-namespace and process-table helpers
    PY,
    _no_leftovers,  # noqa: F401 - autouse fixture: fail on leftover processes
    as_pid1,
    assert_clean,
    child_of,
    finish,
    need_pid_namespace,
    prog,
    start,
    wait_file,
    wait_for,
    with_token,
)


def cli(*command: str, init: str = "always", grace: float = 5.0, quiet: bool = False) -> list[str]:
    flags = ["-q"] if quiet else []
    flags += ["--init", init, "--grace", str(grace), "--workdir", str(REPO), "--ld-library-path", "off"]
    return [PY, "-m", "launcher", *flags, "--", *command]


def test_pid1_sigterm_ends_a_handlerless_program_at_once(tmp_path: Path) -> None:
    need_pid_namespace()
    ready = tmp_path / "ready"
    proc = start(as_pid1(cli(*prog("sleep", "60", str(ready)), init="auto", grace=20)))
    wait_file(ready)
    pid1 = child_of(proc.pid)
    sent = time.monotonic()
    os.kill(pid1, signal.SIGTERM)
    code, err = finish(proc)
    assert code == 143, err
    assert time.monotonic() - sent < 1.0
    assert "killed by SIGTERM (status 143)" in err
    assert_clean(err)


def test_the_supervisor_is_the_launcher_and_the_program_its_child(tmp_path: Path) -> None:
    """A supervised launch forks before it plans: the process started stays as the supervisor (no second
    interpreter to start), the program is its direct child, and a stop reaches it through the supervisor."""
    ready = tmp_path / "ready"
    proc = start(cli(*prog("sleep", "60", str(ready)), quiet=True))
    wait_file(ready)
    program = int(ready.read_text())
    assert Path(f"/proc/{program}/stat").read_text().split(") ")[1].split()[1] == str(proc.pid)
    assert Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-m", b"launcher"]
    os.kill(proc.pid, signal.SIGTERM)
    code, err = finish(proc)
    assert code == -signal.SIGTERM and err == ""


@pytest.mark.parametrize("pid1", [False, True], ids=["child", "pid1"])
@pytest.mark.parametrize("ending", ["stop", "exit"])
def test_torchrun_like_tree_leaves_nothing(tmp_path: Path, pid1: bool, ending: str) -> None:
    if pid1:
        need_pid_namespace()
    token = f"tok-{uuid.uuid4().hex}"
    ready = tmp_path / "ready"
    mode = "wait" if ending == "stop" else "exit"
    command = cli(*prog("tree", token, str(ready), mode), init="auto" if pid1 else "always", grace=1.0)
    proc = start(as_pid1(command) if pid1 else command)
    wait_file(ready)
    if mode == "wait":
        wait_for(lambda: len(with_token(f"{token}-worker")) == 2, what="two workers")
        os.kill(child_of(proc.pid) if pid1 else proc.pid, signal.SIGTERM)
    code, err = finish(proc)
    assert with_token(token) == []
    assert code == ((143 if pid1 else -signal.SIGTERM) if ending == "stop" else 0), err
    assert "2 leftover processes sent SIGTERM, then SIGKILL" in err
    assert_clean(err)


@pytest.mark.parametrize(
    ("args", "expected"), [(("exit", "3"), 3), (("exit", "0"), 0), (("die", "SIGSEGV"), -11)]
)
def test_statuses_come_out_as_the_programs(args: tuple[str, str], expected: int) -> None:
    code, err = finish(start(cli(*prog(*args), quiet=True)))
    assert code == expected, err
    assert err == ""


def test_summary_line_and_never_at_pid1(tmp_path: Path) -> None:
    code, err = finish(start(cli(*prog("exit", "4"))))
    assert code == 4 and "ma-launch: program ended: exit code 4, wall" in err
    need_pid_namespace()
    code, err = finish(start(as_pid1(cli(*prog("exit", "0"), init="never"))))
    assert code == 0 and "SIGTERM will be ignored" in err


def test_a_command_that_cannot_start(tmp_path: Path) -> None:
    code, err = finish(start(cli("no-such-command-xyz")))
    assert code == 127 and "ma-launch: error: no-such-command-xyz" in err
    assert_clean(err)
