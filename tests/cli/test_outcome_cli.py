"""The job-outcome options through the real command: ``--summary`` and ``--stop-signal`` (which make ``--init
auto`` supervise), their bad values, the restart notice, and the accelerator preflight with
``--strict-lint``."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from launchkit import REPO, clean_env, launch
from supervisekit import (
    PY,
    _no_leftovers,  # noqa: F401 - autouse fixture: fail on leftover processes
    assert_clean,
    finish,
    prog,
    start,
    wait_file,
)


def test_summary_makes_auto_supervise_and_is_written_from_the_launch_directory(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = clean_env(tmp_path, MA_LAUNCH_SUMMARY="outcome.json")
    flags = ["--workdir", str(work), "--ld-library-path", "off"]
    command = [PY, "-m", "launcher", *flags, "--", *prog("exit", "3")]
    proc = start(command, env=env, cwd=str(tmp_path))
    code, err = finish(proc)
    assert code == 3, err
    assert "ma-launch: program ended: exit code 3" in err  # supervised: not PID 1, --init auto
    doc = json.loads((tmp_path / "outcome.json").read_text())  # relative to where ma-launch started
    assert (doc["reason"], doc["exit_code"], doc["started"]) == ("failure", 3, True)
    assert not (work / "outcome.json").exists()
    assert_clean(err)


def test_stop_signal_through_the_command(tmp_path: Path) -> None:
    ready, out = tmp_path / "ready", tmp_path / "out"
    flags = ["--stop-signal", "INT", "--grace", "10", "--workdir", str(REPO), "--ld-library-path", "off"]
    program = prog("checkpoint", "SIGINT", str(ready), str(out), "0.1", "0")
    proc = start([PY, "-m", "launcher", *flags, "--", *program])
    wait_file(ready)
    proc.send_signal(signal.SIGTERM)  # the platform's stop: to ma-launch (the supervisor, same PID)
    code, err = finish(proc)
    assert code == 0, err
    assert out.read_text() == "SIGINT\n"
    assert "stop requested by SIGTERM after " in err and "the program got SIGINT (--stop-signal)" in err


def test_bad_outcome_options_run_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    env = clean_env(tmp_path)
    cases = [
        (["--init", "never", "--summary", str(tmp_path / "s.json")], 2, "--summary needs the supervisor"),
        (["--init", "never", "--stop-signal", "USR1"], 2, "--stop-signal needs the supervisor"),
        (["--stop-signal", "KILL"], 2, "--stop-signal 'KILL' is not one of TERM, INT, HUP, QUIT, USR1, USR2"),
        (["--summary", str(tmp_path / "no" / "s.json")], 66, f"{tmp_path / 'no'} is not a directory"),
    ]
    for flags, code, text in cases:
        result = launch([*flags, "--", "touch", str(marker)], env)
        assert result.returncode == code, result.stderr
        assert result.stderr.startswith("ma-launch: error: ") and text in result.stderr
        assert len(result.stderr.splitlines()) == 1
        assert not marker.exists()
    dry = launch(["--dry-run", "--summary", str(tmp_path / "s.json"), "--", "true"], env)
    assert dry.returncode == 0 and not (tmp_path / "s.json").exists()


def test_restart_notice(tmp_path: Path) -> None:
    env = clean_env(tmp_path, MA_PROC_START_CNT="2", MA_SCHEDULE_CNT="1")
    result = launch(["--", "true"], env)
    assert result.returncode == 0
    notices = [line for line in result.stderr.splitlines() if "of this job" in line]
    assert notices == ["ma-launch: restart 1 of this job (MA_PROC_START_CNT=2, MA_SCHEDULE_CNT=1)"]
    first = launch(["--", "true"], clean_env(tmp_path, MA_PROC_START_CNT="1"))
    assert "ma-launch: first start of this job (MA_PROC_START_CNT=1)" in first.stderr
    assert "of this job" not in launch(["--", "true"], clean_env(tmp_path)).stderr


def test_preflight_warns_and_strict_lint_refuses(tmp_path: Path) -> None:
    devices = tmp_path / "dev"
    devices.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidiactl"):
        (devices / name).write_text("")
    marker = tmp_path / "ran"
    env = clean_env(tmp_path, MA_NUM_GPUS="8", MA_LAUNCH_DEVICE_ROOT=str(devices))
    warned = launch(["--", "touch", str(marker)], env)
    assert warned.returncode == 0 and marker.exists()
    warning = f"ma-launch: warning: [gpus-visible] MA_NUM_GPUS=8 but 2 GPUs visible ({devices}/nvidiaN nodes)"
    assert warning in warned.stderr
    marker.unlink()
    strict = launch(["--strict-lint", "--", "touch", str(marker)], env)
    assert strict.returncode == 78 and not marker.exists()
    assert "ma-launch: error: preflight [gpus-visible]: MA_NUM_GPUS=8 but 2 GPUs visible" in strict.stderr
    fine = launch(["--strict-lint", "--", "true"], {**env, "CUDA_VISIBLE_DEVICES": "0,1", "MA_NUM_GPUS": "2"})
    assert fine.returncode == 0, fine.stderr
