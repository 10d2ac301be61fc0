"""activate.d scripts sourced by a real bash: whatever a script does, the job's environment is never lost,
the boot never hangs, and a script that does not finish fails the launch with its name."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from condakit import make_env, write_exe
from launchkit import clean_env, launch

from launcher.core.build import build_plan
from launcher.core.plan import LaunchPlan
from launcher.core.request import Request
from launcher.core.sourcing import Script, ShellOutput, bash_program, parse_records, script_changes
from launcher.errors import CommandNotExecutable, ConfigError, TimeoutError_
from launcher.run.activate import run_bash_program

#: What the job's environment holds before activation; none of it may be lost.
INHERITED = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/home/ma-user", "KEEP_ME": "kept"}


def plan_with(tmp_path: Path, scripts: dict[str, str], **kw: object) -> LaunchPlan:
    env = make_env(tmp_path / "env", scripts=scripts)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    request = Request(command=("true",), prefix=str(env), workdir=str(work), **kw)  # type: ignore[arg-type]
    return build_plan(request, dict(INHERITED), str(tmp_path), script_runner=run_bash_program)


def assert_kept(plan: LaunchPlan) -> None:
    """The inherited variables and the conda ones are all there."""
    assert plan.environ["HOME"] == "/home/ma-user"
    assert plan.environ["KEEP_ME"] == "kept"
    assert plan.environ["CONDA_PREFIX"].endswith("/env")
    assert plan.environ["CONDA_SHLVL"] == "1"


# --- the environment is never wiped ----------------------------------------------------------------


@pytest.mark.parametrize(
    "trick",
    [
        "unset PATH",
        'PATH="$CONDA_PREFIX/bin"',
        "env() { echo not env; }",
        "printf() { :; }; compgen() { :; }; declare() { :; }; command() { :; }",
        "set -euo pipefail; IFS=:",
        "shopt -s expand_aliases; alias builtin=false; alias printf=false",
        "exec 3>/dev/null",
        "trap 'sleep 100' EXIT",
    ],
)
def test_a_script_cannot_wipe_the_environment(tmp_path: Path, trick: str) -> None:
    plan = plan_with(tmp_path, {"a.sh": f"export CUDA_HOME=/usr/local/cuda\n{trick}\n"})
    assert_kept(plan)
    assert plan.environ["CUDA_HOME"] == "/usr/local/cuda"
    # Only what the script changed is attributed to it.
    by_script = {c.name for c in plan.changes if c.kind == "script"}
    assert by_script <= {"CUDA_HOME", "PATH"}, by_script
    if trick == "unset PATH":
        assert "PATH" not in plan.environ
    elif trick.startswith("PATH="):
        assert plan.environ["PATH"] == plan.environ["CONDA_PREFIX"] + "/bin"
    else:
        assert plan.environ["PATH"].endswith(INHERITED["PATH"])


def test_a_later_script_still_counts_after_tricks(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path,
        {"a.sh": "unset PATH\nenv() { :; }\n", "b.sh": 'export B="after a: ${PATH-unset}"\n'},
    )
    assert_kept(plan)
    assert plan.environ["B"] == "after a: unset"
    assert plan.source_of("B").endswith("b.sh")


def test_names_bash_cannot_hold_pass_unchanged(tmp_path: Path) -> None:
    env = make_env(tmp_path / "env", scripts={"a.sh": "export A=1\n"})
    inherited = {**INHERITED, "BATCH_job.0_HOSTS": "host-0:6666", "weird-name": "w"}
    plan = build_plan(
        Request(command=("true",), prefix=str(env), workdir=str(tmp_path)),
        inherited,
        str(tmp_path),
        script_runner=run_bash_program,
    )
    assert plan.environ["BATCH_job.0_HOSTS"] == "host-0:6666"
    assert plan.environ["weird-name"] == "w"
    assert plan.environ["A"] == "1"


def test_exported_functions_reach_the_program(tmp_path: Path) -> None:
    scripts = {"a.sh": 'greet() { echo "hello $1"; }\nexport -f greet\nhidden() { :; }\n'}
    env_dir = make_env(tmp_path / "env", scripts=scripts)
    result = launch(["-q", "-p", str(env_dir), "--", "bash", "-c", "greet world"], clean_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello world\n"
    plan = plan_with(tmp_path, scripts)
    assert "BASH_FUNC_greet%%" in plan.environ and "BASH_FUNC_hidden%%" not in plan.environ


def test_a_value_too_long_for_exec_is_a_clear_error_in_both_runs(tmp_path: Path) -> None:
    scripts = {"a.sh": 'printf -v BIG "%0140000d" 0; export BIG\n'}
    plan = plan_with(tmp_path, scripts)
    assert_kept(plan)
    assert len(plan.environ["BIG"]) == 140000
    assert isinstance(plan.problems[0], CommandNotExecutable) and "BIG" in plan.problems[0].message
    env_dir = tmp_path / "env"
    for extra in ([], ["--dry-run"]):
        result = launch(["-q", *extra, "-p", str(env_dir), "--", "true"], clean_env(tmp_path))
        assert result.returncode == 126, result.stderr
        assert "BIG=… is 140004 bytes long" in result.stderr


def test_values_of_any_size_below_the_limit_pass(tmp_path: Path) -> None:
    scripts = {"a.sh": 'printf -v BIG "%0100000d" 0; export BIG\n'}
    env_dir = make_env(tmp_path / "env", scripts=scripts)
    code = "import os; print(len(os.environ['BIG']), os.environ['HOME'])"
    env = clean_env(tmp_path, HOME="/home/ma-user")
    result = launch(["-q", "-p", str(env_dir), "--", "python3", "-c", code], env)
    assert result.stdout == "100000 /home/ma-user\n", result.stderr


def test_a_trace_left_on_never_shows_values(tmp_path: Path) -> None:
    env_dir = make_env(tmp_path / "env", scripts={"a.sh": "set -x\n", "b.sh": "export B=1\n"})
    env = clean_env(tmp_path, MY_TOKEN="hunter2-secret")  # noqa: S106 - a made-up secret
    result = launch(["-q", "-p", str(env_dir), "--", "true"], env)
    assert result.returncode == 0
    assert "hunter2-secret" not in result.stderr


# --- when the dump cannot be read: an error naming the script, never an empty environment ---------


def test_records_are_trusted_only_when_complete() -> None:
    scripts = [Script("/e/a.sh"), Script("/e/b.sh")]
    whole = b"@dump start\0A=1\0B=2\0@end start 2\0@begin 0\0@status 0 0\0@dump 0\0A=1\0"
    start, stages = parse_records(whole, 2)
    assert start.env == {"A": "1", "B": "2"}
    assert stages[0].began and stages[0].status == "0" and stages[0].env is None
    # A wrong count is an incomplete dump too.
    start, _ = parse_records(b"@dump start\0A=1\0@end start 2\0", 2)
    assert start.env is None

    def fake(data: bytes, timed_out: bool = False):  # type: ignore[no-untyped-def]
        return lambda *_args: ShellOutput(data, timed_out)

    with pytest.raises(ConfigError, match=r"after activation script /e/a\.sh could not be read"):
        script_changes(scripts, {}, "/", strict=False, timeout=60, runner=fake(whole))
    with pytest.raises(TimeoutError_, match=r"/e/a\.sh"):
        script_changes(scripts, {}, "/", strict=False, timeout=60, runner=fake(whole, True))


@pytest.mark.parametrize(
    "posix",
    ["unset() { :; }\n", "set -o posix\n", "export POSIXLY_CORRECT=kept\n"],  # POSIX mode refuses unset()
)
def test_a_script_that_redefines_builtin_still_counts(tmp_path: Path, posix: str) -> None:
    mode = '"$(shopt -qo posix && echo posix || echo normal) ${POSIXLY_CORRECT-none}"'
    scripts = {
        "a.sh": "export A=1\n",
        "b.sh": f"{posix}builtin() {{ :; }}\nexport B=2\n",
        "c.sh": f"export C={mode}\n",
    }
    plan = plan_with(tmp_path, scripts)
    assert_kept(plan)
    assert plan.environ["A"] == "1" and plan.environ["B"] == "2"
    # The shell's mode and POSIXLY_CORRECT are as b.sh left them.
    left_by_b = subprocess.run(
        ["bash", "--norc", "-c", f"{posix}echo {mode}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    assert plan.environ["C"] == left_by_b
    assert plan.warnings == ()


def test_the_program_is_one_that_bash_runs(tmp_path: Path) -> None:
    program = bash_program([Script("/it's/a.sh")])
    assert ". '/it'\\''s/a.sh' 3>&-" in program
    assert program.startswith("{\n") and program.endswith("}\n")


# --- the boot never hangs --------------------------------------------------------------------------


def _kill_pids(path: Path) -> None:
    for pid in path.read_text().split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def test_a_daemon_started_by_a_script_does_not_hold_the_launch(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (
        f"sleep 60 >/dev/null 2>&1 & echo $! > {pids}\n"
        f"( while :; do sleep 1; done ) >/dev/null 2>&1 & echo $! >> {pids}\n"
        "export STARTED=1\n"
    )
    try:
        start = time.monotonic()
        plan = plan_with(tmp_path, {"agent.sh": script})
        assert time.monotonic() - start < 10
        assert plan.environ["STARTED"] == "1"
        daemon = pids.read_text().split()[0]
        # The daemon holds no descriptor of ours: the channel was closed for the script's children.
        assert sorted(os.listdir(f"/proc/{daemon}/fd")) == ["0", "1", "2"]
    finally:
        _kill_pids(pids)
    env_dir = tmp_path / "env"
    try:
        start = time.monotonic()
        result = subprocess.run(
            [*launch_cmd(), "-q", "--dry-run", "--shell", "sh", "-p", str(env_dir), "--", "true"],
            env=clean_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        assert time.monotonic() - start < 10
        assert result.returncode == 0 and b"STARTED=1" in result.stdout
    finally:
        _kill_pids(pids)


def launch_cmd() -> list[str]:
    from launchkit import LAUNCH

    return list(LAUNCH)


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_a_script_that_never_ends_meets_the_deadline(tmp_path: Path, how: str) -> None:
    pids = tmp_path / "pids"
    env_dir = make_env(
        tmp_path / "env",
        scripts={"a.sh": "export A=1\n", "b-wait.sh": f"sleep 1000 & echo $! > {pids}\nwait\n"},
    )
    env = clean_env(tmp_path)
    args = ["-p", str(env_dir), "--", "touch", str(tmp_path / "ran")]
    if how == "flag":
        args = ["--activation-timeout", "1", *args]
    else:
        env["MA_LAUNCH_ACTIVATION_TIMEOUT"] = "1"
    try:
        for extra in ([], ["--dry-run"]):
            start = time.monotonic()
            result = launch([*extra, *args], env, timeout=30)
            assert time.monotonic() - start < 10
            assert result.returncode == 75, result.stderr
            errors = [line for line in result.stderr.splitlines() if "error:" in line]
            assert len(errors) == 1
            assert "b-wait.sh did not finish within --activation-timeout 1 s" in errors[0]
            assert not (tmp_path / "ran").exists()
            # The whole process group of the activation shell was killed.
            sleeper = int(pids.read_text())
            assert not _alive(sleeper)
    finally:
        _kill_pids(pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_no_deadline_with_zero(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, {"a.sh": "sleep 0.3\nexport A=1\n"}, activation_timeout=0)
    assert plan.environ["A"] == "1"


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf", ""])
def test_a_bad_deadline_is_a_usage_error(tmp_path: Path, value: str) -> None:
    env_dir = make_env(tmp_path / "env", scripts={"a.sh": "export A=1\n"})
    for args in (["--activation-timeout", value], ["--dry-run", "--activation-timeout", value]):
        result = launch([*args, "-p", str(env_dir), "--", "true"], clean_env(tmp_path))
        assert result.returncode == 2, result.stderr
        assert "--activation-timeout" in result.stderr
    env = clean_env(tmp_path, MA_LAUNCH_ACTIVATION_TIMEOUT=value)
    assert launch(["-p", str(env_dir), "--", "true"], env).returncode == 2


def test_help_says_what_a_dry_run_runs(tmp_path: Path) -> None:
    text = launch(["--help"], clean_env(tmp_path)).stdout
    assert "--activation-timeout SECONDS" in text and "$MA_LAUNCH_ACTIVATION_TIMEOUT" in text
    dry = text[text.index("--dry-run") :]
    assert "activate.d scripts" in " ".join(dry.split()[:40])


def test_bash_env_is_not_sourced(tmp_path: Path) -> None:
    marker = tmp_path / "bash_env_ran"
    bash_env = write_exe(tmp_path / "bash_env.sh", f"touch {marker}\nexport FROM_BASH_ENV=1\n")
    env = make_env(tmp_path / "env", scripts={"a.sh": "export A=1\n"})
    plan = build_plan(
        Request(command=("true",), prefix=str(env), workdir=str(tmp_path)),
        {**INHERITED, "BASH_ENV": str(bash_env)},
        str(tmp_path),
        script_runner=run_bash_program,
    )
    assert plan.environ["A"] == "1" and "FROM_BASH_ENV" not in plan.environ
    assert plan.environ["BASH_ENV"] == str(bash_env)
    assert not marker.exists()
