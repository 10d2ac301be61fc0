"""``launcher.run.probe``: a probe never hangs its caller (deadline, a daemon holding the output, a
program that cannot start), and never switches to root."""

from __future__ import annotations

import time

import pytest
from needs import need, need_root

from launcher.run.probe import NOT_STARTED, TIMED_OUT, as_user, run_probe


def test_output_and_exit_code() -> None:
    result = run_probe(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    assert result.returncode == 3
    assert result.output.splitlines() == ["out", "err"]
    assert result.last_line == "err"


def test_deadline() -> None:
    start = time.monotonic()
    result = run_probe(["/bin/sh", "-c", "sleep 60"], timeout=1)
    assert time.monotonic() - start < 10
    assert result.returncode == TIMED_OUT
    assert "no answer within 1 s" in result.output


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper is not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_daemon_holding_the_output_neither_holds_the_caller_nor_survives() -> None:
    start = time.monotonic()
    result = run_probe(["/bin/sh", "-c", "sleep 60 & echo $!"], timeout=2)
    assert time.monotonic() - start < 10
    assert result.returncode == 0  # the probe itself answered and exited
    daemon = int(result.output)
    time.sleep(0.2)
    assert not running(daemon)


def test_a_program_that_cannot_start() -> None:
    result = run_probe(["/nonexistent/program"])
    assert result.returncode == NOT_STARTED
    assert not result.ok


def test_as_user_never_becomes_root() -> None:
    with pytest.raises(ValueError, match="refusing"):
        as_user(0, 0, ["id", "-u"])


def test_as_user_switches_for_real() -> None:
    need_root()
    need("setpriv")
    result = run_probe(as_user(1000, 100, ["/bin/sh", "-c", "id -u; id -g; id -G"]))
    assert result.output.splitlines() == ["1000", "100", "100"]  # no supplementary groups left
