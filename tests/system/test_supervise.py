"""Supervisor mode, tested with real processes, real signals and real PID namespaces.

PID-1 tests run the supervisor as PID 1 of a new PID namespace (``unshare --pid --fork --mount-proc``, needs
root); without it they skip locally and fail under CI=true. The supervisor is driven through its debug entry
``python -m launcher.run.supervise``; the programs it runs are in ``supervise_progs.py``.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from launchkit import REPO
from needs import missing
from supervisekit import (  # the PID-namespace and process-table helpers
    PY,
    SUMMARY,
    _no_leftovers,  # noqa: F401 - autouse fixture: fail on leftover processes
    as_pid1,
    assert_clean,
    base_env,
    child_of,
    descendants,
    finish,
    proc_table,
    prog,
    start,
    supervisor,
    wait_file,
    wait_for,
    with_token,
)

from launcher.errors import UsageError
from launcher.modes import INIT_MODES, parse_mode
from launcher.run import outcome, pid1, proctree

# -- API --------------------------------------------------------------------------------------------------


def test_should_supervise_modes() -> None:
    assert pid1.should_supervise("always") is True
    assert pid1.should_supervise("never") is False
    assert pid1.should_supervise("auto") is (os.getpid() == 1)
    with pytest.raises(UsageError, match="--init 'sometimes' is not one of auto, always, never"):
        parse_mode("sometimes", INIT_MODES, "--init")


def test_no_warnings_for_an_ordinary_process() -> None:
    if os.getpid() == 1 or os.getppid() == 1:
        pytest.skip("runs as or under PID 1")
    assert pid1.pid1_warnings("never") == []
    assert pid1.pid1_warnings("auto") == []


def pid1_script(mode: str) -> str:
    return f"from launcher.run.pid1 import pid1_warnings; print(pid1_warnings({mode!r}))"


def test_never_at_pid1_warns_about_sigterm() -> None:
    out = subprocess.run(
        as_pid1([PY, "-c", pid1_script("never")]), env=base_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "SIGTERM will be ignored" in out.stdout
    auto = subprocess.run(
        as_pid1([PY, "-c", pid1_script("auto")]), env=base_env(), capture_output=True, text=True
    )
    assert auto.stdout.strip() == "[]"


@pytest.mark.parametrize(("shell", "warned"), [("dash", True), ("bash", False)])
def test_pid1_shell_parent_is_detected(shell: str, warned: bool) -> None:
    path = subprocess.run(["sh", "-c", f"command -v {shell}"], capture_output=True, text=True).stdout.strip()
    if not path:
        missing(f"{shell} is missing")
    line = f'{PY} -c "{pid1_script("always")}"; true'  # `; true`: the shell stays PID 1 and waits
    out = subprocess.run(as_pid1([path, "-c", line]), env=base_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert ("exec ma-launch" in out.stdout) is warned, out.stdout


# -- PID 1 and SIGTERM ------------------------------------------------------------------------------------


def test_pid1_sigterm_ends_a_handlerless_program_at_once(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    proc = start(as_pid1(supervisor(*prog("sleep", "60", str(ready)), grace=20)))
    wait_file(ready)
    pid1 = child_of(proc.pid)
    sent = time.monotonic()
    os.kill(pid1, signal.SIGTERM)
    code, err = finish(proc)
    elapsed = time.monotonic() - sent
    assert code == 143, err
    assert elapsed < 1.0, elapsed
    assert "killed by SIGTERM (status 143)" in err
    assert "SIGKILL" not in err
    assert_clean(err)


@pytest.mark.parametrize("pid1", [False, True], ids=["child", "pid1"])
def test_program_ignoring_sigterm_is_killed_after_grace(tmp_path: Path, pid1: bool) -> None:
    ready = tmp_path / "ready"
    command = supervisor(*prog("ignore-term", str(ready)), grace=1.0)
    proc = start(as_pid1(command) if pid1 else command)
    wait_file(ready)
    sent = time.monotonic()
    os.kill(child_of(proc.pid) if pid1 else proc.pid, signal.SIGTERM)
    code, err = finish(proc)
    elapsed = time.monotonic() - sent
    assert code == (137 if pid1 else -signal.SIGKILL), err
    assert 0.9 < elapsed < 3.0, elapsed
    assert "killed by SIGKILL (status 137)" in err
    assert "ma-launch sent SIGKILL after the 1 s grace period" in err
    assert "out of memory" not in err
    assert_clean(err)


def test_program_exiting_during_grace_keeps_its_code(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    proc = start(supervisor(*prog("slow-term", str(ready), "0.3", "7"), grace=10))
    wait_file(ready)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == 7, err
    assert time.monotonic() - sent < 2.0
    assert "exit code 7" in err
    assert "SIGKILL" not in err
    assert_clean(err)


@pytest.mark.parametrize("pid1", [False, True], ids=["child", "pid1"])
def test_stop_fails_turns_an_exit_0_after_a_stop_into_the_signals_status(tmp_path: Path, pid1: bool) -> None:
    """msrun exits 0 on SIGINT; with --stop-fails a stopped job ends with the stop signal's status."""
    ready = tmp_path / "ready"
    argv = supervisor(*prog("slow-term", str(ready), "0.1", "0"), grace=10)
    argv.insert(argv.index("--"), "--stop-fails")
    proc = start(as_pid1(argv) if pid1 else argv)
    wait_file(ready)
    os.kill(child_of(proc.pid) if pid1 else proc.pid, signal.SIGTERM)
    code, err = finish(proc)
    assert code == (143 if pid1 else -signal.SIGTERM), err
    assert "program ended: exit code 0" in err
    assert "it exited 0 after SIGTERM: ending with SIGTERM's status, as a stopped job" in err
    plain = start(supervisor(*prog("exit", "0"), grace=10))
    plain_code, plain_err = finish(plain)
    assert plain_code == 0 and "stopped job" not in plain_err  # no stop request: 0 stays 0


# -- forwarding -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pid1", [False, True], ids=["child", "pid1"])
@pytest.mark.parametrize("stop", [signal.SIGSTOP, signal.SIGTSTP])
def test_a_stopped_program_still_runs_its_term_handler(tmp_path: Path, pid1: bool, stop: int) -> None:
    """A program stopped (SIGSTOP, Ctrl-Z) when the stop request comes is continued after the forwarded
    SIGTERM, so its handler runs at once instead of a SIGKILL after the grace period."""
    ready, out = tmp_path / "ready", tmp_path / "out"
    command = supervisor(*prog("count-usr1", str(out), str(ready)), grace=6)
    proc = start(as_pid1(command) if pid1 else command)
    wait_file(ready)
    sup = child_of(proc.pid) if pid1 else proc.pid
    program = child_of(sup)
    os.kill(program, stop)
    wait_for(lambda: Path(f"/proc/{program}/stat").read_text().split(") ")[1][0] == "T", what="stopped")
    sent = time.monotonic()
    os.kill(sup, signal.SIGTERM)
    code, err = finish(proc)
    assert out.read_text() == "0", err  # the handler ran
    assert code == 0, err
    assert time.monotonic() - sent < 4.0  # not after the grace period
    assert "SIGKILL" not in err
    assert_clean(err)


@pytest.mark.parametrize("pid1", [False, True], ids=["child", "pid1"])
def test_forwarded_signals_reach_the_program(tmp_path: Path, pid1: bool) -> None:
    ready, out = tmp_path / "ready", tmp_path / "out"
    command = supervisor(*prog("record", str(out), str(ready)), grace=10)
    proc = start(as_pid1(command) if pid1 else command)
    wait_file(ready)
    target = child_of(proc.pid) if pid1 else proc.pid
    seen: list[str] = []
    forwarded = ("SIGUSR1", "SIGHUP", "SIGUSR2", "SIGINT", "SIGQUIT", "SIGWINCH", "SIGALRM", "SIGCONT")
    for sig in map(signal.Signals.__getitem__, forwarded):
        os.kill(target, sig)
        seen.append(sig.name)
        wait_for(lambda: out.exists() and out.read_text().split() == seen, what=f"{sig.name} recorded")
    os.kill(target, signal.SIGTERM)
    code, err = finish(proc)
    assert code == (143 if pid1 else -signal.SIGTERM), err
    assert_clean(err)


@pytest.mark.parametrize("pid1", [False, True], ids=["child", "pid1"])
def test_signal_storm(tmp_path: Path, pid1: bool) -> None:
    ready, out = tmp_path / "ready", tmp_path / "out"
    command = supervisor(*prog("count-usr1", str(out), str(ready)), grace=10)
    proc = start(as_pid1(command) if pid1 else command)
    wait_file(ready)
    target = child_of(proc.pid) if pid1 else proc.pid
    for _ in range(500):
        os.kill(target, signal.SIGUSR1)
    time.sleep(0.2)
    os.kill(target, signal.SIGTERM)
    code, err = finish(proc, timeout=10)
    assert code == 0, err
    count = int(out.read_text())
    assert 1 <= count <= 500
    assert_clean(err)


# -- exit statuses ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 2, 3, 42, 126, 127, 128, 130, 143, 255])
def test_exit_codes_pass_through(code: int) -> None:
    direct = subprocess.run(prog("exit", str(code)), env=base_env())
    proc = start(supervisor(*prog("exit", str(code))))
    got, err = finish(proc)
    assert got == direct.returncode == code
    assert f"exit code {code}" in err


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGKILL", "SIGSEGV", "SIGABRT"])
def test_signal_deaths_pass_through(name: str, tmp_path: Path) -> None:
    sig = signal.Signals[name]
    direct = subprocess.run(prog("die", name), env=base_env())
    assert direct.returncode == -sig
    # no memory cgroup to read: why a SIGKILL came is a guess (test_outcome.py has the measured cases)
    proc = start(supervisor(*prog("die", name)), env={**base_env(), "MA_LAUNCH_CGROUP_ROOT": str(tmp_path)})
    got, err = finish(proc)
    assert got == direct.returncode, err
    assert f"killed by {name} (status {128 + sig})" in err
    if sig == signal.SIGKILL:
        assert "killed by SIGKILL not sent by ma-launch — likely out of memory" in err
    assert_clean(err)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGKILL", "SIGSEGV"])
def test_signal_deaths_as_pid1_become_128_plus_n(name: str) -> None:
    sig = signal.Signals[name]
    proc = start(as_pid1(supervisor(*prog("die", name))))
    got, err = finish(proc)
    assert got == 128 + sig, err
    assert_clean(err)


def test_program_gets_a_clean_signal_state() -> None:
    """No blocked signals, SIGPIPE/SIGXFSZ not ignored: the same as when run directly."""
    command = ["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]
    direct = subprocess.run(command, env=base_env(), capture_output=True, text=True)
    proc = start(supervisor(*command, quiet=True))
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out == direct.stdout
    assert "SigBlk:\t0000000000000000" in out


def test_sigpipe_is_default_in_the_program() -> None:
    proc = start(supervisor("sh", "-c", "yes | head -n 1", quiet=True))
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert out == "y\n"
    assert err == ""  # no "yes: standard output: Broken pipe"


# -- cannot start -----------------------------------------------------------------------------------------


def test_missing_command_is_127_without_traceback() -> None:
    proc = start(supervisor("no-such-command-xyz"))
    code, err = finish(proc)
    assert code == 127
    assert err.startswith("ma-launch: error: no-such-command-xyz: not found")
    assert len(err.strip().splitlines()) == 1


def test_not_executable_is_126(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    proc = start(supervisor(str(script)))
    code, err = finish(proc)
    assert code == 126
    assert "permission denied" in err
    assert len(err.strip().splitlines()) == 1


def test_run_supervised_raises_launch_errors() -> None:
    from launcher.errors import CommandNotFound

    code = (
        "from launcher.run.supervise import run_supervised\n"
        "from launcher.errors import CommandNotFound\n"
        "import os, signal\n"
        "try:\n"
        "    run_supervised(['no-such-command-xyz'], os.environ)\n"
        "except CommandNotFound as e:\n"
        "    print(e.exit_code, sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))\n"
    )
    out = subprocess.run([PY, "-c", code], env=base_env(), capture_output=True, text=True, cwd=str(REPO))
    assert out.stdout.strip() == f"{CommandNotFound.exit_code} []", out.stderr


def test_command_is_looked_up_on_the_given_path(tmp_path: Path) -> None:
    tool = tmp_path / "only-here"
    tool.write_text("#!/bin/sh\nexit 5\n")
    tool.chmod(0o755)
    code = (
        "import os\nfrom launcher.run.supervise import run_supervised\n"
        f"env = dict(os.environ, PATH={str(tmp_path)!r} + ':/usr/bin:/bin')\n"
        "run_supervised(['only-here'], env, quiet=True)\n"
    )
    out = subprocess.run([PY, "-c", code], env=base_env(), capture_output=True, text=True, cwd=str(REPO))
    assert out.returncode == 5, out.stderr
    assert out.stderr == ""


# -- reaping and process trees ----------------------------------------------------------------------------


@pytest.mark.parametrize("pid1", [False, True], ids=["child", "pid1"])
def test_orphans_are_reaped(tmp_path: Path, pid1: bool) -> None:
    ready = tmp_path / "ready"
    command = supervisor(*prog("zombies", "5", str(ready)), grace=5)
    proc = start(as_pid1(command) if pid1 else command)
    wait_file(ready)
    sup = child_of(proc.pid) if pid1 else proc.pid
    program = child_of(sup)
    time.sleep(0.4)  # the double-forked orphans have exited by now
    for _ in range(10):
        table = proc_table()
        # zombies of the program itself are its own business while it lives; none may be ours
        ours = [pid for pid in descendants(sup, table) if table[pid][0] == "Z" and table[pid][1] != program]
        assert ours == []
        time.sleep(0.05)
    os.kill(sup, signal.SIGTERM)
    code, err = finish(proc)
    assert code == (143 if pid1 else -signal.SIGTERM), err
    assert_clean(err)


@pytest.mark.parametrize("pid1", [False, True], ids=["child", "pid1"])
@pytest.mark.parametrize("ending", ["stop", "exit"])
def test_torchrun_like_tree_leaves_nothing(tmp_path: Path, pid1: bool, ending: str) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    ready = tmp_path / "ready"
    mode = "wait" if ending == "stop" else "exit"
    command = supervisor(*prog("tree", token, str(ready), mode), grace=1.0)
    proc = start(as_pid1(command) if pid1 else command)
    wait_file(ready)
    if mode == "wait":
        wait_for(lambda: len(with_token(f"{token}-worker")) == 2, what="two workers")
    started = time.monotonic()
    if ending == "stop":
        os.kill(child_of(proc.pid) if pid1 else proc.pid, signal.SIGTERM)
    code, err = finish(proc)
    elapsed = time.monotonic() - started
    assert with_token(token) == []
    if ending == "stop":
        assert code == (143 if pid1 else -signal.SIGTERM), err
    else:
        assert code == 0, err
    assert 0.9 < elapsed < 4.0  # the worker ignoring SIGTERM needed the grace period, then SIGKILL
    assert re.search(r"; 2 leftover processes sent SIGTERM, then SIGKILL after the grace period$", err), err
    assert_clean(err)


def test_tree_without_subreaper_needs_no_pid_namespace(tmp_path: Path) -> None:
    """Not PID 1 and a normal exit: workers orphaned by the exit must still be found and stopped."""
    token = f"tok-{uuid.uuid4().hex}"
    ready = tmp_path / "ready"
    proc = start(supervisor(*prog("tree", token, str(ready), "exit"), grace=0.5, quiet=True))
    code, err = finish(proc)
    assert code == 0
    assert err == ""
    assert with_token(token) == []


# -- terminal ---------------------------------------------------------------------------------------------


class Terminal:
    """The master side of a pty, read up to a marker at a time (what is read past a marker is kept)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.seen = b""

    def read_until(self, needle: bytes, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{needle!r} not seen in {self.seen!r}")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.fd, 1024)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"EOF before {needle!r} in {self.seen!r}")
                self.seen += chunk
        end = self.seen.index(needle) + len(needle)
        upto, self.seen = self.seen[:end], self.seen[end:]
        return upto


def test_tty_interactive_input_and_ctrl_c() -> None:
    import pty

    env = base_env()
    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - child
        os.chdir(str(REPO))
        os.execve(PY, supervisor(*prog("interactive"), grace=5), env)
    term = Terminal(master)
    try:
        term.read_until(b"ready")
        os.write(master, b"hello\n")
        term.read_until(b"got hello")
        term.read_until(b"waiting")
        os.write(master, b"\x03")
        rest = term.read_until(b"program ended")
        assert b"sigint 1" in rest  # the terminal's SIGINT only; the supervisor did not send a second one
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT
        assert b"Traceback" not in rest
    finally:
        os.close(master)


# -- summary ----------------------------------------------------------------------------------------------


def test_summary_line_format_and_quiet() -> None:
    proc = start(supervisor(*prog("exit", "3")))
    code, err = finish(proc)
    assert code == 3
    lines = err.splitlines()
    assert len(lines) == 1
    assert SUMMARY.match(lines[0]), lines[0]
    quiet = start(supervisor(*prog("exit", "3"), quiet=True))
    code, err = finish(quiet)
    assert code == 3
    assert err == ""


def test_descendants_both_ways() -> None:
    outer = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        wait_for(lambda: len(proctree.descendants_by_scan(outer.pid)) == 2, what="two sleeps")
        scan = sorted(proctree.descendants_by_scan(os.getpid()))
        assert outer.pid in scan
        assert sorted(proctree.descendants(os.getpid())) == scan
        if Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists():
            assert sorted(proctree.descendants_by_children(os.getpid())) == scan
    finally:
        outer.kill()
        outer.wait()
        for pid in proctree.descendants_by_scan(outer.pid):
            os.kill(pid, signal.SIGKILL)


def test_summary_formats_sizes_and_durations() -> None:
    assert outcome.size(512) == "512 B"
    assert outcome.size(3 * 1024 * 1024) == "3.0 MiB"
    assert outcome.duration(1.25) == "1.2 s"
    assert outcome.duration(125) == "2m05s"
    assert outcome.duration(3725) == "1h02m05s"
