"""A dry run exits as the real run does, and its line, run by each real shell, never runs what the real run
refuses: a file with no ``#!`` line (``env`` would hand it to /bin/sh), a program found through an empty
PATH entry or past a script whose interpreter is missing; and inherited variables reach the program
whatever their names (``-x``, fish's ``status`` and ``argv``)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from condakit import REAL_PYTHON, make_env, need, write_exe
from launchkit import LAUNCH, SHELL_RUNNERS, clean_env

from launcher.render.shells import CSH, FISH, Dialect

SHELLS = SHELL_RUNNERS
RECORDER = (
    f"#!{REAL_PYTHON}\n"
    "import json, os, sys\n"
    "json.dump({'argv': sys.argv[1:], 'env': dict(os.environ)}, open(os.environ['REC_OUT'], 'w'))\n"
)


def run(args: list[str], env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [*LAUNCH, *args], env=env, capture_output=True, timeout=60, **kw
    )


def in_shell(shell: str, line: bytes, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    command = SHELLS[shell]
    return subprocess.run(
        [need(command[0]), *command[1:], os.fsdecode(line.rstrip(b"\n"))],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )


def error_lines(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    return [line for line in result.stderr.decode().splitlines() if line.startswith("ma-launch: error:")]


# --- files exec cannot run ------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"touch ran\n", b"", b"#!\ntouch ran\n"])
def test_a_file_without_interpreter_line_is_refused_by_both(tmp_path: Path, content: bytes) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    job = bin_dir / "job"
    job.write_bytes(content)
    job.chmod(0o755)
    env = clean_env(tmp_path, PATH=f"{bin_dir}:{os.environ['PATH']}")
    for word in ("job", str(job)):
        real = run(["-q", "--", word], env)
        dry = run(["-q", "--dry-run", "--shell", "sh", "--", word], env)
        assert real.returncode == dry.returncode == 126, (real.stderr, dry.stderr)
        assert dry.stdout == b"", "no line: env would run the file with /bin/sh"
        assert len(error_lines(dry)) == 1 and "not a program this system can run" in error_lines(dry)[0]
        assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("shell", list(SHELLS))
def test_a_missing_interpreter_fails_alike_and_nothing_else_runs(tmp_path: Path, shell: str) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_exe(first / "tool", "#!/nonexistent/python\nprint('x')\n")
    write_exe(second / "tool", f"#!/bin/sh\ntouch {tmp_path}/second-ran\n")
    env = clean_env(tmp_path, PATH=f"{first}:{second}:{os.environ['PATH']}")
    real = run(["-q", "--", "tool"], env)
    dry = run(["-q", "--dry-run", "--shell", shell, "--", "tool"], env)
    assert real.returncode == dry.returncode == 127, (real.stderr, dry.stderr)
    assert "#! interpreter /nonexistent/python does not exist" in error_lines(real)[0]
    assert str(first / "tool").encode() in dry.stdout
    line = in_shell(shell, dry.stdout, env)
    assert line.returncode == 127, line.stderr
    assert not (tmp_path / "second-ran").exists()


@pytest.mark.parametrize("shell", list(SHELLS))
def test_a_program_only_in_the_working_directory_is_not_found_by_either(tmp_path: Path, shell: str) -> None:
    work = tmp_path / "work"
    write_exe(work / "tool", f"#!/bin/sh\ntouch {tmp_path}/cwd-ran\n")
    for path in (f"{os.environ['PATH']}:", f"::{os.environ['PATH']}"):
        env = clean_env(tmp_path, PATH=path)
        real = run(["-q", "--workdir", str(work), "--", "tool"], env)
        dry = run(["-q", "--dry-run", "--shell", shell, "--workdir", str(work), "--", "tool"], env)
        assert real.returncode == dry.returncode == 127, (real.stderr, dry.stderr)
        line = in_shell(shell, dry.stdout, env)
        assert line.returncode == 127, line.stderr
        assert not (tmp_path / "cwd-ran").exists()


@pytest.mark.parametrize("shell", list(SHELLS))
def test_an_empty_path_entry_never_picks_the_working_directory(tmp_path: Path, shell: str) -> None:
    work, bin_dir = tmp_path / "work", tmp_path / "bin"
    write_exe(work / "tool", f"#!/bin/sh\ntouch {tmp_path}/cwd-ran\n")
    write_exe(bin_dir / "tool", f"#!/bin/sh\ntouch {tmp_path}/bin-ran\n")
    env = clean_env(tmp_path, PATH=f":{bin_dir}:{os.environ['PATH']}")
    for init in ("never", "always"):
        real = run(["-q", "--init", init, "--workdir", str(work), "--", "tool"], env)
        assert real.returncode == 0, real.stderr
        assert (tmp_path / "bin-ran").exists() and not (tmp_path / "cwd-ran").exists()
        (tmp_path / "bin-ran").unlink()
    dry = run(["-q", "--dry-run", "--shell", shell, "--workdir", str(work), "--", "tool"], env)
    assert dry.returncode == 0, dry.stderr
    assert in_shell(shell, dry.stdout, env).returncode == 0
    assert (tmp_path / "bin-ran").exists() and not (tmp_path / "cwd-ran").exists()


# --- bad values fail at planning, alike ------------------------------------------------------------


@pytest.mark.parametrize("where", ["state", "env_vars.d"])
def test_a_nul_in_a_value_is_a_data_error_in_both(tmp_path: Path, where: str) -> None:
    values = {"X": "a\0b"}
    env_dir = make_env(
        tmp_path / "e",
        state=values if where == "state" else None,
        env_vars_d={"x.json": values} if where == "env_vars.d" else None,
    )
    for extra in ([], ["--dry-run"], ["--json"]):
        result = run(["-q", *extra, "-p", str(env_dir), "--", "true"], clean_env(tmp_path))
        assert result.returncode == 65, result.stderr
        assert result.stdout == b""
        assert len(error_lines(result)) == 1
        assert "sets X to a value no program can receive" in error_lines(result)[0]


# --- inherited variables whatever their names -----------------------------------------------------


def _recorded(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize("shell", list(SHELLS))
def test_inherited_names_that_look_like_options_or_belong_to_the_shell(tmp_path: Path, shell: str) -> None:
    env_dir = make_env(tmp_path / "e", state={"FROM_ENV": "1"})
    write_exe(env_dir / "bin" / "rec", RECORDER)
    odd = {"-x": "dash", "--weird": "two=dashes", "-u": "u"}
    reserved = {name: f"inherited {name}" for name in (FISH.reserved | CSH.reserved)}
    env = clean_env(tmp_path, **odd, **reserved, REC_OUT=str(tmp_path / "real.json"))
    real = run(["-q", "-p", str(env_dir), "--", "rec", "a"], env)
    assert real.returncode == 0, real.stderr
    seen = _recorded(tmp_path / "real.json")["env"]
    assert isinstance(seen, dict)
    assert {k: seen.get(k) for k in [*odd, *reserved]} == {**odd, **reserved}
    dry = run(["-q", "--dry-run", "--shell", shell, "-p", str(env_dir), "--", "rec", "a"], env)
    assert dry.returncode == 0, dry.stderr
    env["REC_OUT"] = str(tmp_path / "line.json")
    line = in_shell(shell, dry.stdout, env)
    assert line.returncode == 0, (dry.stdout, line.stderr)
    via_line = _recorded(tmp_path / "line.json")
    assert via_line["argv"] == ["a"]
    line_env = via_line["env"]
    assert isinstance(line_env, dict)
    assert {k: line_env.get(k) for k in odd} == odd
    assert line_env["FROM_ENV"] == "1"
    names = FISH.reserved if shell == "fish" else CSH.reserved if shell == "tcsh" else set()
    assert {k: line_env.get(k) for k in names} == {k: reserved[k] for k in names}


@pytest.mark.parametrize("shell", list(SHELLS))
def test_a_line_that_only_restates_an_option_like_name(tmp_path: Path, shell: str) -> None:
    """Nothing changes but the restated ``-x`` (no env, the variables already right): env must not take
    it for an option (exit 125)."""
    bin_dir = tmp_path / "bin"
    write_exe(bin_dir / "rec", RECORDER)
    env = clean_env(
        tmp_path,
        **{"-x": "dash"},
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        PYTHONUNBUFFERED="1",
        PWD=str(tmp_path),
        REC_OUT=str(tmp_path / "line.json"),
    )
    env["LC_ALL"] = "C.UTF-8"  # not a C locale: no PYTHONIOENCODING to set either
    dry = run(["-q", "--dry-run", "--shell", shell, "--", "rec"], env)
    assert dry.returncode == 0, dry.stderr
    line = in_shell(shell, dry.stdout, env)
    assert line.returncode == 0, (dry.stdout, line.stderr)
    line_env = _recorded(tmp_path / "line.json")["env"]
    assert isinstance(line_env, dict) and line_env["-x"] == "dash"


@pytest.mark.parametrize(("shell", "dialect"), [("fish", FISH), ("tcsh", CSH)])
def test_the_reserved_names_are_the_ones_the_shell_does_not_pass_on(
    tmp_path: Path, shell: str, dialect: Dialect
) -> None:
    """Measured: each listed name, inherited, does not reach a program the shell starts unchanged."""
    names = sorted(dialect.reserved)
    env = {**os.environ, **{name: f"inherited {name}" for name in names}}
    result = in_shell(shell, f"exec {need('env')} -0".encode(), env)
    seen = dict(e.split("=", 1) for e in result.stdout.decode().split("\0") if "=" in e)
    assert [n for n in names if seen.get(n) == f"inherited {n}"] == []
