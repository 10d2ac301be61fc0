"""The real command, run as a subprocess: exit statuses, signals, bytes, buffering, errors."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from condakit import make_env, make_root, write_exe
from launchkit import LAUNCH, REPO
from needs import missing
from unprivileged import as_nobody, public_tmp


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no inherited PYTHONUNBUFFERED (it would hide buffering bugs), no conda."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "MA_", "PYTHON"))}
    env.pop("ANACONDA_DIR", None)
    env.pop("DEFAULT_CONDA_ENV_NAME", None)
    env["PYTHONPATH"] = str(REPO)
    env["MA_HOME"] = str(tmp_path)
    env.update(extra)
    return env


def launch(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[no-any-return]
        [*LAUNCH, *args],
        env=env or base_env(tmp_path),
        capture_output=True,
        timeout=60,
        **kw,  # type: ignore[call-overload]
    )


def assert_clean_error(result: subprocess.CompletedProcess[bytes], code: int, text: str) -> None:
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if line.startswith("ma-launch: error:")]
    assert len(error_lines) == 1, err
    assert text in error_lines[0]
    assert "hint:" in error_lines[0]
    assert result.stdout == b""


@pytest.mark.parametrize("code", [0, 1, 2, 3, 42, 126, 127, 128, 130, 137, 200, 255])
def test_exit_status_passes_through(tmp_path: Path, code: int) -> None:
    assert launch(tmp_path, "-q", "--", "sh", "-c", f"exit {code}").returncode == code


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT]
)
def test_signal_death_passes_through(tmp_path: Path, sig: signal.Signals) -> None:
    direct = subprocess.run(["sh", "-c", f"kill -{sig.name[3:]} $$"], check=False)
    result = launch(tmp_path, "-q", "--", "sh", "-c", f"kill -{sig.name[3:]} $$")
    assert result.returncode == direct.returncode == -sig


def test_argv_exact_including_non_utf8_and_argv0(tmp_path: Path) -> None:
    args = ["", "a b", "it's", "$(touch pwned)", "`x`", "line\nbreak", "\t", "ü", os.fsdecode(b"\xff\xfe")]
    code = (
        "import sys, json; print(json.dumps([a.encode('utf-8', 'surrogateescape').hex() for a in sys.argv]))"
    )
    result = launch(tmp_path, "-q", "--", "python3", "-c", code, *args)
    got = [bytes.fromhex(h) for h in json.loads(result.stdout)]
    assert got[1:] == [os.fsencode(a) for a in args]
    assert not (tmp_path / "pwned").exists()
    probe = write_exe(tmp_path / "argv0", '#!/bin/sh\necho "$0"\n')
    assert launch(tmp_path, "-q", "--", str(probe)).stdout.decode().strip() == str(probe)


def test_stdout_is_the_programs_alone(tmp_path: Path) -> None:
    result = launch(tmp_path, "-v", "--", "printf", "x")
    assert result.stdout == b"x"
    assert all(line.startswith("ma-launch: ") for line in result.stderr.decode().splitlines())


def test_workdir_and_pwd(tmp_path: Path) -> None:
    work = tmp_path / "w d"
    work.mkdir()
    result = launch(tmp_path, "-q", "--workdir", str(work), "--", "sh", "-c", 'pwd; echo "$PWD"')
    assert result.stdout.decode().split("\n")[:2] == [str(work), str(work)]
    env = base_env(tmp_path, MA_LAUNCH_WORKDIR=str(work))
    assert launch(tmp_path, "-q", "--", "pwd", env=env).stdout.decode().strip() == str(work)


def _first_line_delay(cmd: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    proc.stdout.readline()
    delay = time.monotonic() - start
    proc.kill()
    proc.wait()
    proc.stdout.close()
    return delay


def test_log_lines_arrive_at_once(tmp_path: Path) -> None:
    program = ["python3", "-c", "import time; print('step 1'); time.sleep(4); print('step 2')"]
    env = base_env(tmp_path)
    assert "PYTHONUNBUFFERED" not in env
    # Without ma-launch the line waits in the block buffer until exit: the test can fail.
    assert _first_line_delay(program, env) > 3
    assert _first_line_delay([*LAUNCH, "-q", "--", *program], env) < 1.5


def test_sigpipe_is_default_again(tmp_path: Path) -> None:
    result = subprocess.run(
        f"{' '.join(LAUNCH)} -q -- yes | head -n 1",
        shell=True,
        env=base_env(tmp_path),
        capture_output=True,
        timeout=30,
    )
    assert result.stdout == b"y\n"
    assert b"Broken pipe" not in result.stderr


def test_shell_line_mode(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    write_exe(tmp_path / "code" / "run.sh", 'printf "[%s]" "$@"\n')
    result = launch(tmp_path, "-q", "-c", "cd code && bash run.sh first", "--data_url=/a b", "x'y")
    assert result.stdout.decode() == "[first][--data_url=/a b][x'y]"


def test_env_activation_end_to_end(tmp_path: Path) -> None:
    root = make_root(tmp_path / "anaconda3", ("py",))
    make_env(root / "envs" / "py", state={"STAGE": "train"}, scripts={"x.sh": "export FROM_SCRIPT=1\n"})
    env = base_env(tmp_path, ANACONDA_DIR=str(root), DEFAULT_CONDA_ENV_NAME="py")
    code = (
        "import os,sys; e = os.environ;"
        "print(sys.executable, e['STAGE'], e['FROM_SCRIPT'], e['CONDA_DEFAULT_ENV'])"
    )
    result = launch(tmp_path, "--", "python", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == [
        str(root / "envs" / "py" / "bin" / "python"),
        "train",
        "1",
        "py",
    ]
    assert b"DEFAULT_CONDA_ENV_NAME=py" in result.stderr


def test_json_plan_and_dry_run_run_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result = launch(tmp_path, "--json", "--", "touch", str(marker))
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["argv"] == ["touch", str(marker)]
    assert data["workdir"] == str(tmp_path)
    assert {"version", "env", "set", "unset", "changes", "ld_library_path", "warnings", "line"} <= data.keys()
    result = launch(tmp_path, "--dry-run", "--shell", "sh", "--", "touch", str(marker))
    assert result.stdout.decode().count("\n") == 1
    assert not marker.exists()
    subprocess.run(["sh", "-c", result.stdout.decode()], env=base_env(tmp_path), check=True)
    assert marker.exists()


def test_dry_run_exits_like_the_real_run_would(tmp_path: Path) -> None:
    result = launch(tmp_path, "--dry-run", "--shell", "bash", "--", "no-such-cmd-xyz")
    assert result.returncode == 127
    assert b"no-such-cmd-xyz" in result.stdout
    assert b"command not found" in result.stderr


def test_secrets_are_not_printed(tmp_path: Path) -> None:
    env_dir = make_env(tmp_path / "e", state={"OBS_SECRET_KEY": "hunter2", "PLAIN": "visible"})
    result = launch(tmp_path, "-v", "-p", str(env_dir), "--", "true")
    assert b"hunter2" not in result.stderr and b"visible" in result.stderr
    data = json.loads(launch(tmp_path, "--json", "-p", str(env_dir), "--", "true").stdout)
    assert data["set"]["OBS_SECRET_KEY"] != "hunter2"


# --- bad input: one clean line, the documented code, nothing run ------------------------------


def test_unknown_env(tmp_path: Path) -> None:
    root = make_root(tmp_path / "anaconda3", ("python-3.7.10", "tf"))
    env = base_env(tmp_path, ANACONDA_DIR=str(root))
    result = launch(tmp_path, "-n", "python-3.7", "--", "touch", str(tmp_path / "ran"), env=env)
    assert_clean_error(result, 66, "conda env 'python-3.7' not found")
    assert "python-3.7.10" in result.stderr.decode()
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    ("args", "extra_env", "code", "text"),
    [
        (["-n", "../x", "true"], {}, 2, "is not an env name"),
        (["--workdir", "/nonexistent/dir", "true"], {}, 66, "does not exist"),
        (["no-such-command-xyz"], {}, 127, "no-such-command-xyz"),
        ([], {}, 2, "no command given"),
        (["--bogus", "true"], {}, 2, "unknown option --bogus"),
        (["-c", ""], {}, 2, "empty"),
        (["true"], {"MA_LAUNCH_QUIET": "perhaps"}, 2, "MA_LAUNCH_QUIET"),
        (["true"], {"ANACONDA_DIR": "anaconda3", "DEFAULT_CONDA_ENV_NAME": "x"}, 78, "not an absolute path"),
        (["--shell", "powershell", "--dry-run", "true"], {}, 2, "--shell"),
    ],
)
def test_bad_input(tmp_path: Path, args: list[str], extra_env: dict[str, str], code: int, text: str) -> None:
    assert_clean_error(launch(tmp_path, *args, env=base_env(tmp_path, **extra_env)), code, text)


def test_missing_anaconda_dir(tmp_path: Path) -> None:
    env = base_env(tmp_path, ANACONDA_DIR=str(tmp_path / "gone"), DEFAULT_CONDA_ENV_NAME="x")
    assert_clean_error(launch(tmp_path, "true", env=env), 78, "does not exist")


def test_non_executable_file(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("echo hi\n")
    assert_clean_error(launch(tmp_path, "./run.sh"), 126, "not executable")
    noexec = tmp_path / "noshebang"
    noexec.write_bytes(b"\x00\x01binary")
    noexec.chmod(0o755)
    assert_clean_error(launch(tmp_path, "./noshebang"), 126, "not a program")


def test_malformed_state(tmp_path: Path) -> None:
    env_dir = make_env(tmp_path / "e")
    (env_dir / "conda-meta" / "state").write_text("{broken")
    assert_clean_error(launch(tmp_path, "-p", str(env_dir), "true"), 65, "not valid JSON")


def test_failing_activation_script(tmp_path: Path) -> None:
    env_dir = make_env(tmp_path / "e", scripts={"bad.sh": "return 4\n"})
    result = launch(tmp_path, "-p", str(env_dir), "--", "echo", "ran")
    assert result.returncode == 0 and result.stdout == b"ran\n"
    assert b"warning: activation script" in result.stderr
    assert_clean_error(
        launch(tmp_path, "--strict-activation", "-p", str(env_dir), "echo"), 78, "bad.sh failed"
    )


def test_conda_run_without_conda(tmp_path: Path) -> None:
    root = make_root(tmp_path / "anaconda3", ("py",))
    env = base_env(tmp_path, ANACONDA_DIR=str(root))
    assert_clean_error(launch(tmp_path, "--conda-run", "-n", "py", "true", env=env), 69, "needs conda")


def test_conda_run_composed(tmp_path: Path) -> None:
    root = make_root(tmp_path / "anaconda3", ("py",), conda=True)
    env = base_env(tmp_path, ANACONDA_DIR=str(root))
    result = launch(tmp_path, "--conda-run", "-n", "py", "--", "echo", "hi", env=env)
    assert result.stdout == b"hi\n"
    assert b"conda-argv: run --no-capture-output -n py echo hi" in result.stderr


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = launch(tmp_path, "--debug", "--workdir", "/nonexistent", "true")
    assert result.returncode == 66 and b"Traceback" in result.stderr
    # The program's own --debug is not ours.
    result = launch(tmp_path, "--workdir", "/nonexistent", "true", "--debug")
    assert result.returncode == 66 and b"Traceback" not in result.stderr
    result = launch(tmp_path, "-n", "--debug", "true")
    assert b"Traceback" not in result.stderr


def test_version_help_and_module_entry(tmp_path: Path) -> None:
    from launcher import __version__

    assert launch(tmp_path, "--version").stdout.decode().strip() == f"ma-launch {__version__}"
    assert b"usage: ma-launch" in launch(tmp_path, "--help").stdout
    if sys.platform.startswith("linux"):
        assert launch(tmp_path, "-q", "--", "true").returncode == 0


def test_workdir_not_accessible_to_an_unprivileged_user(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to switch to another user")
    with public_tmp() as top:
        (top / "locked").mkdir(mode=0o700)
        (top / "locked" / "inner").mkdir()
        marker = top / "ran"
        for workdir, text in [
            (top / "locked", "not accessible to this user (uid 65534)"),
            (top / "locked" / "inner", "cannot be reached by this user (uid 65534)"),
        ]:
            result = subprocess.run(
                as_nobody([*LAUNCH, "--workdir", str(workdir), "--", "touch", str(marker)]),
                env=base_env(tmp_path),
                capture_output=True,
                timeout=60,
            )
            assert_clean_error(result, 77, text)
            assert "--workdir" in result.stderr.decode()
            assert not marker.exists()


def test_runs_on_the_oldest_supported_python(tmp_path: Path) -> None:
    """The launch path is stdlib only and must work on an image's Python 3.9."""
    import glob

    candidates = [
        # the user's real home: the session's HOME is private (conftest.py)
        *glob.glob(pwd.getpwuid(os.getuid()).pw_dir + "/.pyenv/versions/3.9*/bin/python3.9"),
        "/usr/bin/python3.9",
        "/usr/local/bin/python3.9",
    ]
    found = [c for c in candidates if os.access(c, os.X_OK)]
    if not found:
        missing("no Python 3.9 interpreter")
    python39 = found[0]
    env_dir = make_env(tmp_path / "e", state={"X": "y"}, scripts={"a.sh": "export S=1\n"})
    code = "import os, sys; print(os.environ['X'], os.environ['S'])"
    for extra in ([], ["--init", "always"], ["--dry-run", "--shell", "sh"]):
        result = subprocess.run(
            [python39, "-m", "launcher", "-q", *extra, "-p", str(env_dir), "--", "python", "-c", code],
            env=base_env(tmp_path),
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        if extra and extra[0] == "--dry-run":
            result = subprocess.run(["sh", "-c", result.stdout.decode()], capture_output=True, timeout=60)
        assert result.stdout == b"y 1\n", result.stderr
