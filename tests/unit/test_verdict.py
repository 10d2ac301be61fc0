"""Why a job ended (:mod:`launcher.run.verdict`): each case of the wording table, decided from observations
given as data, with the exact notes of the summary line and the summary document."""

from __future__ import annotations

import json
import os
import signal
from typing import Optional

import pytest

from launcher.run.devholders import Holder
from launcher.run.memcg import Memory
from launcher.run.report import document
from launcher.run.verdict import CRASH_ADVICE, Loader, Observed, Stop, notes, reason

MIB = 1 << 20
GIB = 1 << 30


def killed(sig: int) -> int:
    """A wait status for a process killed by ``sig``."""
    return sig


def exited(code: int) -> int:
    return code << 8


def memory(kills: Optional[int], hits: Optional[int] = 0, *, path: str = "/cg") -> Memory:
    return Memory("v2", path, kills, hits, limit=8 * GIB, peak=int(7.9 * GIB))


def seen(
    status: int, before: Optional[Memory] = None, after: Optional[Memory] = None, **kw: object
) -> Observed:
    return Observed(status, grace=25.0, memory_before=before, memory_after=after, **kw)  # type: ignore[arg-type]


def test_statuses_are_read_as_the_kernel_reports_them() -> None:
    assert os.WIFSIGNALED(killed(signal.SIGKILL)) and os.WEXITSTATUS(exited(3)) == 3
    assert seen(killed(signal.SIGKILL)).signal == "SIGKILL" and seen(killed(9)).exit_code is None
    assert seen(exited(3)).exit_code == 3 and seen(exited(3)).signal is None


def test_oom_measured() -> None:
    observed = seen(killed(signal.SIGKILL), memory(0), memory(1))
    assert reason(observed) == "oom"
    assert notes(observed) == ["killed by the kernel OOM killer: container limit 8.0 GiB, peak 7.9 GiB"]


def test_oom_of_a_worker_while_the_program_exits_non_zero() -> None:
    observed = seen(exited(1), memory(2), memory(4))
    assert reason(observed) == "oom"
    assert notes(observed) == [
        "the kernel OOM killer killed 2 processes of this container during the run: container limit 8.0 GiB, "
        "peak 7.9 GiB"
    ]


def test_an_oom_kill_that_did_not_end_the_job_is_noted_only() -> None:
    observed = seen(exited(0), memory(0), memory(1))
    assert reason(observed) == "success"
    assert notes(observed)[0].startswith("the kernel OOM killer killed 1 process of this container")


def test_no_limit_and_no_peak() -> None:
    after = Memory("v1", "/cg", 1, 0, limit=None, peak=None)
    observed = seen(killed(signal.SIGKILL), Memory("v1", "/cg", 0, 0, None, None), after)
    assert notes(observed) == ["killed by the kernel OOM killer: container limit none set"]


def test_killed_from_outside_when_the_counter_did_not_rise() -> None:
    observed = seen(killed(signal.SIGKILL), memory(3), memory(3))
    assert reason(observed) == "killed-from-outside"
    assert notes(observed) == [
        "killed from outside: not by ma-launch and not by the OOM killer (the platform's stop grace may have "
        "run out)"
    ]


def test_killed_from_outside_after_a_stop_request_names_the_platform_grace() -> None:
    stop = Stop("SIGTERM", "SIGTERM", at=600.0, ended_after=10.0)
    observed = seen(killed(signal.SIGKILL), memory(0), memory(0), stop=stop)
    assert reason(observed) == "killed-from-outside"
    assert notes(observed) == [
        "killed from outside 10.0 s after the stop request, before ma-launch's 25 s grace ran out: the "
        "platform's stop grace is probably shorter (hint: a smaller --grace)",
        "stop requested by SIGTERM after 10m00s: the program got SIGTERM and ended 10.0 s later (40% of the "
        "25 s grace)",
    ]


def test_likely_wording_only_without_a_counter() -> None:
    for before, after in [(None, None), (memory(None, None), memory(None, None)), (memory(0), None)]:
        observed = seen(killed(signal.SIGKILL), before, after)
        assert reason(observed) == "oom-likely"
        assert notes(observed) == [
            "killed by SIGKILL not sent by ma-launch — likely out of memory (no cgroup OOM counter to check)"
        ]


def test_counters_of_another_cgroup_are_not_compared() -> None:
    observed = seen(killed(signal.SIGKILL), memory(0, path="/a"), memory(5, path="/b"))
    assert reason(observed) == "oom-likely"


def test_old_v1_kernel_counts_only_limit_hits() -> None:
    before, after = memory(None, 10), memory(None, 12)
    observed = seen(killed(signal.SIGKILL), before, after)
    assert reason(observed) == "oom-likely"
    assert notes(observed) == [
        "killed by SIGKILL after the container's memory reached its limit — likely the kernel OOM killer: "
        "container limit 8.0 GiB, peak 7.9 GiB"
    ]
    never_reached = seen(killed(signal.SIGKILL), memory(None, 10), memory(None, 10))
    assert reason(never_reached) == "killed-from-outside"


def test_ma_launch_killed_it_after_the_grace() -> None:
    stop = Stop("SIGTERM", "SIGUSR1", at=5.0, ended_after=None)
    observed = seen(killed(signal.SIGKILL), memory(0), memory(0), sent_kill=True, stop=stop)
    assert reason(observed) == "killed-by-ma-launch"
    assert notes(observed) == [
        "ma-launch sent SIGKILL after the 25 s grace period",
        "stop requested by SIGTERM after 5.0 s: the program got SIGUSR1 (--stop-signal) and had not ended "
        "when the 25 s grace ran out",
    ]


def test_stopped_within_the_grace() -> None:
    stop = Stop("SIGTERM", "SIGINT", at=3725.0, ended_after=2.5)
    observed = seen(exited(0), stop=stop)
    assert reason(observed) == "stopped"
    assert notes(observed) == [
        "stop requested by SIGTERM after 1h02m05s: the program got SIGINT (--stop-signal) and ended 2.5 s "
        "later (10% of the 25 s grace)"
    ]
    zero_grace = Observed(exited(0), grace=0.0, stop=stop)
    assert notes(zero_grace)[0].endswith("ended 2.5 s later (after the 0 s grace)")


@pytest.mark.parametrize("name", sorted(CRASH_ADVICE))
def test_crashes_by_name(name: str) -> None:
    observed = seen(killed(signal.Signals[name]))
    assert reason(observed) == "crash"
    assert notes(observed) == [f"{name}: {CRASH_ADVICE[name]}"]
    shell = seen(exited(128 + signal.Signals[name]))
    assert reason(shell) == "failure"
    assert notes(shell) == [
        f"exit code {128 + signal.Signals[name]} is how a shell reports a process killed by {name}: "
        f"{CRASH_ADVICE[name]}"
    ]


def test_other_signals_and_exit_codes() -> None:
    assert reason(seen(killed(signal.SIGTERM))) == "signal" and notes(seen(killed(signal.SIGTERM))) == []
    assert reason(seen(exited(3))) == "failure" and notes(seen(exited(3))) == []
    assert reason(seen(exited(0))) == "success"
    assert notes(seen(exited(143))) == []  # SIGTERM is no crash


def test_loader_failure() -> None:
    loader = Loader(["exit code 127 from a program that started: the loader could not find libx.so.1"], True)
    observed = seen(exited(127), loader=loader)
    assert reason(observed) == "loader"
    assert notes(observed) == list(loader.lines)
    nothing = seen(exited(127), loader=Loader(["no library is missing"], False))
    assert reason(nothing) == "failure" and notes(nothing) == ["no library is missing"]


def test_leftovers_and_device_holders() -> None:
    holders = [Holder(40 + i, "pt_data_worker", ("/dev/nvidia0", "/dev/nvidiactl")) for i in range(5)]
    observed = seen(exited(0), leftovers=5, leftovers_killed=True, holders=holders)
    assert notes(observed) == [
        "still holding accelerator devices after the program ended: 40 pt_data_worker (/dev/nvidia0, "
        "/dev/nvidiactl), 41 pt_data_worker (/dev/nvidia0, /dev/nvidiactl), 42 pt_data_worker (/dev/nvidia0, "
        "/dev/nvidiactl) and 2 more",
        "5 leftover processes sent SIGTERM, then SIGKILL after the grace period",
    ]
    assert notes(seen(exited(0), leftovers=1)) == ["1 leftover process stopped with SIGTERM"]
    killed_ones = seen(killed(9), sent_kill=True, leftovers=2)
    assert notes(killed_ones)[-1] == "2 leftover processes killed with SIGKILL"


def test_the_document() -> None:
    stop = Stop("SIGTERM", "SIGUSR1", at=5.0, ended_after=1.25)
    observed = seen(
        killed(signal.SIGKILL),
        memory(0),
        memory(1),
        stop=stop,
        leftovers=2,
        holders=[Holder(7, "python", ("/dev/davinci0",))],
    )
    doc = document(observed, line="program ended: …", wall=12.34567, cpu=1.5, peak_rss=MIB,
                   restart={"start_count": 2, "schedule_count": 1})  # fmt: skip
    assert json.loads(json.dumps(doc)) == doc
    assert doc == {
        "version": 1,
        "reason": "oom",
        "line": "program ended: …",
        "started": True,
        "exit_code": None,
        "signal": "SIGKILL",
        "status": 137,
        "wall_seconds": 12.346,
        "cpu_seconds": 1.5,
        "peak_rss_bytes": MIB,
        "killed_by_ma_launch": False,
        "memory": {
            "cgroup": "v2",
            "path": "/cg",
            "oom_kills": 1,
            "limit_reached": 0,
            "limit_bytes": 8 * GIB,
            "peak_bytes": int(7.9 * GIB),
        },
        "stop": {
            "received": "SIGTERM",
            "sent": "SIGUSR1",
            "at_seconds": 5.0,
            "ended_after_seconds": 1.25,
            "grace_seconds": 25.0,
        },
        "device_holders": [{"pid": 7, "name": "python", "devices": ["/dev/davinci0"]}],
        "leftovers": {"count": 2, "stopped_with": "SIGTERM"},
        "loader": None,
        "restart": {"start_count": 2, "schedule_count": 1},
        "notes": notes(observed),
    }
    plain = document(seen(exited(3)), line="x", wall=0, cpu=0, peak_rss=0, restart={})
    assert (plain["status"], plain["exit_code"], plain["memory"], plain["stop"]) == (3, 3, None, None)
    assert plain["restart"] == {}
