"""Why a supervised job ended, through the real supervisor (its debug entry ``python -m
launcher.run.supervise``) and real processes: OOM measured (a fake cgroup tree whose counter the program
raises as the kernel would, and a real OOM kill in a child memory cgroup), SIGKILL from outside, crashes by
name, a loader failure with its fix, ``--stop-signal`` and the grace used, processes still holding
accelerator devices, and the JSON summary (written atomically, also when the program never started)."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
from cgroupkit import HOG, ROOT, child_memory_cgroup, fake_tree, in_cgroup
from condakit import make_env
from elfkit import build_exe, build_lib
from supervisekit import (
    PY,
    _no_leftovers,  # noqa: F401 - autouse fixture: fail on leftover processes
    as_pid1,
    assert_clean,
    base_env,
    child_of,
    finish,
    prog,
    start,
    supervisor,
    wait_file,
)

from launcher.run.verdict import CRASH_ADVICE

GIB = 1 << 30
MIB = 1 << 20


def summary_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("ma-launch: program ended: ")]
    assert len(lines) == 1, err
    return lines[0]


def cgroup_tree(tmp_path: Path, kills: int = 0) -> Path:
    """A fake cgroup v2 tree for a process whose cgroup path is not in it (found at the top)."""
    return fake_tree(
        tmp_path / "cgroup",
        {
            "memory.events": f"low 0\nhigh 0\nmax 0\noom 0\noom_kill {kills}\n",
            "memory.max": str(2 * GIB),
            "memory.peak": str(int(1.5 * GIB)),
        },
    )


def run(command: list[str], tmp_path: Path, **env: str) -> tuple[int, str, dict[str, object]]:
    """Run the supervisor with a summary file; its exit code, stderr and summary."""
    summary = tmp_path / "summary.json"
    options = ["--summary", str(summary)]
    proc = start(supervisor(*command, options=options), env={**base_env(), **env})
    code, err = finish(proc, timeout=60)
    assert_clean(err)
    return code, err, json.loads(summary.read_text())


def test_oom_measured_by_the_counter(tmp_path: Path) -> None:
    root = cgroup_tree(tmp_path)
    program = prog("fake-oom", str(root / "memory.events"))
    code, err, doc = run(program, tmp_path, MA_LAUNCH_CGROUP_ROOT=str(root))
    assert code == -signal.SIGKILL
    assert summary_line(err).endswith(
        "; killed by the kernel OOM killer: container limit 2.0 GiB, peak 1.5 GiB"
    )
    assert doc["reason"] == "oom" and doc["status"] == 137 and doc["signal"] == "SIGKILL"
    assert doc["memory"] == {
        "cgroup": "v2",
        "path": str(root),
        "oom_kills": 1,
        "limit_reached": 0,
        "limit_bytes": 2 * GIB,
        "peak_bytes": int(1.5 * GIB),
    }


def test_sigkill_from_outside_when_the_counter_did_not_rise(tmp_path: Path) -> None:
    root = cgroup_tree(tmp_path, kills=4)  # OOM kills before this run do not count
    code, err, doc = run(prog("die", "SIGKILL"), tmp_path, MA_LAUNCH_CGROUP_ROOT=str(root))
    assert code == -signal.SIGKILL
    assert summary_line(err).endswith(
        "; killed from outside: not by ma-launch and not by the OOM killer (the platform's stop grace may "
        "have run out)"
    )
    assert doc["reason"] == "killed-from-outside"
    assert doc["memory"]["oom_kills"] == 0  # type: ignore[index]


def test_a_real_oom_kill(tmp_path: Path) -> None:
    """The supervisor and the program in a child memory cgroup of 96 MiB; the program allocates until the
    kernel's OOM killer kills it."""
    with child_memory_cgroup(96 * MIB) as child:
        summary = tmp_path / "summary.json"
        command = supervisor(sys.executable, "-c", HOG, options=["--summary", str(summary)])
        proc = start(in_cgroup(child, command), env={**base_env(), "MA_LAUNCH_CGROUP_ROOT": str(ROOT)})
        code, err = finish(proc, timeout=60)
    assert code == -signal.SIGKILL, err
    line = summary_line(err)
    assert "; killed by the kernel OOM killer: container limit 96.0 MiB, peak " in line, line
    doc = json.loads(summary.read_text())
    assert doc["reason"] == "oom" and doc["memory"]["oom_kills"] == 1
    assert doc["memory"]["limit_bytes"] == 96 * MIB


@pytest.mark.parametrize("name", sorted(CRASH_ADVICE))
def test_crashes_by_name(tmp_path: Path, name: str) -> None:
    code, err, doc = run(prog("die", name), tmp_path)
    assert code == -signal.Signals[name]
    assert summary_line(err).endswith(f"; {name}: {CRASH_ADVICE[name]}")
    assert doc["reason"] == "crash" and doc["signal"] == name


def test_a_loader_failure_names_the_library_and_the_fix(tmp_path: Path) -> None:
    prefix = make_env(tmp_path / "env")
    lib = build_lib(str(prefix / "lib" / "plugins" / "libstep.so.2"), "libstep.so.2", exports=["step"])
    build_exe(str(tmp_path / "bin" / "trainer"), calls=["step"], needs=[lib])
    path = f"{tmp_path / 'bin'}:{os.environ['PATH']}"
    code, err, doc = run(["trainer"], tmp_path, PATH=path, CONDA_PREFIX=str(prefix))
    assert code == 127
    assert "error while loading shared libraries: libstep.so.2" in err  # the loader's own line
    directory = prefix / "lib" / "plugins"
    assert summary_line(err).endswith(
        f"; exit code 127 from a program that started: the loader could not find libstep.so.2 (needed by "
        f"{tmp_path / 'bin' / 'trainer'}); the env has it in {directory} (fix: --ld-library-path auto, or "
        f"LD_LIBRARY_PATH={directory}:$LD_LIBRARY_PATH)"
    )
    assert doc["reason"] == "loader"
    trainer = str(tmp_path / "bin" / "trainer")
    assert doc["loader"]["provided"] == [  # type: ignore[index]
        {"soname": "libstep.so.2", "needed_by": trainer, "directory": str(directory)},
    ]


def test_exit_127_of_a_shell_is_not_blamed_on_the_loader(tmp_path: Path) -> None:
    code, err, doc = run(["sh", "-c", "no-such-tool-xyz"], tmp_path)
    assert code == 127
    assert summary_line(err).endswith(": a command it ran was probably not found (a shell's exit code 127)")
    assert doc["reason"] == "failure"


@pytest.mark.parametrize("pid1", [False, True], ids=["child", "pid1"])
def test_stop_signal_and_the_grace_used(tmp_path: Path, pid1: bool) -> None:
    ready, out, summary = tmp_path / "ready", tmp_path / "out", tmp_path / "summary.json"
    options = ["--stop-signal", "SIGUSR1", "--summary", str(summary)]
    program = prog("checkpoint", "SIGUSR1", str(ready), str(out), "0.5", "0")
    command = supervisor(*program, grace=10, options=options)
    proc = start(as_pid1(command) if pid1 else command)
    wait_file(ready)
    sent = time.monotonic()
    os.kill(child_of(proc.pid) if pid1 else proc.pid, signal.SIGTERM)
    code, err = finish(proc)
    assert code == 0 and time.monotonic() - sent < 5
    assert out.read_text() == "SIGUSR1\n"  # the program got the stop signal, not SIGTERM
    arrival = [line for line in err.splitlines() if "stop requested" in line and "program ended" not in line]
    assert len(arrival) == 1 and arrival[0].startswith("ma-launch: stop requested by SIGTERM after ")
    assert arrival[0].endswith(
        ": sent SIGUSR1 to the program, which has 10 s (--grace) to end before the whole tree is killed"
    )
    used = re.search(
        r"; stop requested by SIGTERM after [0-9.]+ s: the program got SIGUSR1 \(--stop-signal\) "
        r"and ended ([0-9.]+) s later \(([0-9]+)% of the 10 s grace\)$",
        summary_line(err),
    )
    assert used is not None, err
    assert 0.5 <= float(used[1]) < 2.0 and int(used[2]) == round(float(used[1]) * 10)
    doc = json.loads(summary.read_text())
    stop = doc["stop"]
    assert (doc["reason"], stop["received"], stop["sent"], stop["grace_seconds"]) == (
        "stopped",
        "SIGTERM",
        "SIGUSR1",
        10.0,
    )
    assert 0.45 < stop["ended_after_seconds"] < 2.0


def test_a_program_that_outlives_the_grace(tmp_path: Path) -> None:
    ready, out = tmp_path / "ready", tmp_path / "out"
    proc = start(supervisor(*prog("checkpoint", "SIGUSR1", str(ready), str(out), "30", "0"), grace=0.5,
                            options=["--stop-signal", "SIGUSR1"]))  # fmt: skip
    wait_file(ready)
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == -signal.SIGKILL
    assert re.search(
        r"; ma-launch sent SIGKILL after the 0.5 s grace period; stop requested by SIGTERM after [0-9.]+ s: "
        r"the program got SIGUSR1 \(--stop-signal\) and had not ended when the 0.5 s grace ran out$",
        summary_line(err),
    ), err


def test_processes_still_holding_accelerators_are_named(tmp_path: Path) -> None:
    devices = tmp_path / "dev"
    devices.mkdir()
    (devices / "nvidia0").write_text("")
    ready = tmp_path / "ready"
    program = prog("device-holder", str(devices / "nvidia0"), str(ready))
    code, err, doc = run(program, tmp_path, MA_LAUNCH_DEVICE_ROOT=str(devices))
    assert code == 0
    worker = int(ready.read_text())
    name = os.path.basename(PY)[:15]  # the worker's command name: its interpreter's file name
    assert summary_line(err).endswith(
        f"; still holding accelerator devices after the program ended: {worker} {name} "
        f"({devices / 'nvidia0'}); 1 leftover process stopped with SIGTERM"
    )
    assert doc["device_holders"] == [{"pid": worker, "name": name, "devices": [str(devices / "nvidia0")]}]
    assert doc["leftovers"] == {"count": 1, "stopped_with": "SIGTERM"}


def test_restart_counts_and_the_summary_of_a_program_that_never_ran(tmp_path: Path) -> None:
    code, err, doc = run(["no-such-command-xyz"], tmp_path, MA_PROC_START_CNT="3", MA_SCHEDULE_CNT="1")
    assert code == 127 and err.startswith("ma-launch: error: no-such-command-xyz: not found")
    assert doc["reason"] == "not-started" and doc["started"] is False and doc["status"] == 127
    assert doc["line"] == err.strip()
    assert doc["restart"] == {"start_count": 3, "schedule_count": 1, "restart": 2}
    code, err, doc = run(prog("exit", "0"), tmp_path)
    assert doc["restart"] is None and doc["reason"] == "success" and doc["started"] is True


def test_a_summary_that_cannot_be_written_is_a_warning(tmp_path: Path) -> None:
    target = tmp_path / "gone" / "summary.json"
    proc = start(supervisor(*prog("exit", "3"), options=["--summary", str(target)]))
    code, err = finish(proc)
    assert code == 3
    warning = f"ma-launch: warning: the summary could not be written to {target}: "
    assert err.splitlines()[-1].startswith(warning)
    assert_clean(err)
