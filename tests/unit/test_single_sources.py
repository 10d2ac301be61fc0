"""Facts that used to exist in several copies that drifted apart, each now in one place: the error guard
of every verb, "is this Python?", the errno mapping, the atomic write, and what a dry run prints."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from pathlib import Path

import pytest
from condakit import REAL_PYTHON, write_exe
from launchkit import REPO

from launcher.cli import main as cli
from launcher.core.programs import is_python_name, runs_python
from launcher.errors import CommandNotExecutable, CommandNotFound, exec_error
from launcher.run.files import write_atomic


def _run_cli(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MA_", "CONDA", "PYTHON"))}
    environ.update(PYTHONPATH=str(REPO), MA_HOME=str(tmp_path), **env)
    return subprocess.run(
        [REAL_PYTHON, "-m", "launcher", *args], env=environ, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("verb", ["doctor", "pack", "launch"])
def test_an_internal_error_is_one_line_and_70_in_every_verb(
    verb: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def boom(*_args: object, **_kw: object) -> None:
        raise RuntimeError("a bug\nsecond line")

    if verb == "doctor":
        from launcher.image import doctor

        monkeypatch.setattr(doctor, "run_checks", boom)
        args = ["doctor", "--root", str(tmp_path)]
    elif verb == "pack":
        from launcher.image import pack

        monkeypatch.setattr(pack, "pack_env", boom)
        args = ["pack", "-p", str(tmp_path)]
    else:
        from launcher.cli import launch

        monkeypatch.setattr(launch, "plan_for", boom)
        args = ["--", "true"]
    assert cli.run(args) == 70
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("ma-launch: error: internal error: RuntimeError: a bug\\n")
    assert cli.run([*args[:1], "--debug", *args[1:]] if verb != "launch" else ["--debug", *args]) == 70
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("MA_LAUNCH_DEBUG", "1")
    assert cli.run(args) == 70
    assert "Traceback" in capsys.readouterr().err


def test_dry_run_with_strict_lint_prints_its_line_then_fails_like_the_real_run(tmp_path: Path) -> None:
    env = {"MA_VJ_NAME": "ma-job-1"}
    line = "conda activate py && true"
    dry = _run_cli(["--dry-run", "--shell", "sh", "--strict-lint", "-c", line], tmp_path, **env)
    assert dry.returncode == 78, dry.stderr
    assert dry.stdout.startswith("cd ") and "conda activate py" in dry.stdout
    assert "ma-launch: error: boot-line lint [conda-activate]" in dry.stderr
    real = _run_cli(["-q", "--strict-lint", "-c", line], tmp_path, **env)
    assert real.returncode == 78 and real.stdout == ""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("python", True),
        ("python3", True),
        ("python3.11", True),
        ("/env/bin/python3.7m", True),  # an ABI letter: one regex took it, the other did not
        ("pypy3", True),
        ("python3-config", False),  # a prefix test took it
        ("pythonw", False),
        ("python3.11-dbg", False),
        ("ipython", False),
        ("jython", False),
        ("py", False),
    ],
)
def test_one_answer_to_is_this_python(name: str, expected: bool) -> None:
    assert is_python_name(name) is expected


def test_a_script_runs_python_through_its_shebang(tmp_path: Path) -> None:
    script = write_exe(tmp_path / "entry", "#!/usr/bin/env -S python3.11 -u\nprint()\n")
    assert runs_python(str(script), "entry")
    script.write_text("#!/opt/env/bin/python3-config\n")
    assert not runs_python(str(script), "entry")


@pytest.mark.parametrize(
    ("code", "kind", "status"),
    [
        (errno.ENOENT, CommandNotFound, 127),
        (errno.ENOTDIR, CommandNotFound, 127),
        (errno.ENOEXEC, CommandNotExecutable, 126),
        (errno.EACCES, CommandNotExecutable, 126),
        (errno.E2BIG, CommandNotExecutable, 126),
    ],
)
def test_one_errno_mapping(code: int, kind: type, status: int) -> None:
    error = exec_error("prog", code)
    assert isinstance(error, kind) and error.exit_code == status and error.hint


def test_exec_and_supervisor_report_a_failed_exec_alike(tmp_path: Path) -> None:
    """A script without #! (ENOEXEC at exec) fails the same way in both modes."""
    script = write_exe(tmp_path / "nobang", "echo hi\n")
    lines = []
    for init in ("never", "always"):
        result = _run_cli(["-q", "--init", init, "--workdir", str(tmp_path), "--", str(script)], tmp_path)
        assert result.returncode == 126, result.stderr
        lines.append(result.stderr.strip().splitlines()[-1])
    assert lines[0] == lines[1]
    assert "no #! line" in lines[0]


def test_atomic_write_replaces_whole_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "out"
    write_atomic(str(target), b"one", mode=0o600)
    write_atomic(str(target), b"two", mode=0o755)
    assert target.read_bytes() == b"two" and stat.S_IMODE(target.stat().st_mode) == 0o755
    with pytest.raises(FileExistsError):
        write_atomic(str(target), b"three", replace=False)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        write_atomic(str(tmp_path / "dangling"), b"x", replace=False)
    assert not (tmp_path / "nowhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "out"]


def test_a_failed_atomic_write_removes_its_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomic(str(tmp_path / "dir"), b"x")  # rename over a directory fails after the write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]
    assert list((tmp_path / "dir").iterdir()) == []
