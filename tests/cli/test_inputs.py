"""The command on bad input, odd locales and odd values: the documented code (never 70), one line per
message, and the environment the launcher was started with (not the one CPython made of it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from condakit import make_env
from launchkit import LAUNCH, clean_env, launch
from unprivileged import as_nobody as nobody_argv

from launcher.modes import env_yes, is_yes, yes_no

LOCALE = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "LC_NUMERIC", "LC_COLLATE")


def error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The one error line of a failed launch with ``code`` (no traceback, nothing on stdout)."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("ma-launch: error:")]
    assert len(errors) == 1, result.stderr
    assert "(hint: " in errors[0]
    assert result.stdout == ""
    return errors[0]


# --- locale ------------------------------------------------------------------------------------------


def program_env(tmp_path: Path, env: dict[str, str], *args: str) -> dict[str, str]:
    """The environment the program gets, from the real run and from the dry-run line run by sh (they
    must agree on the locale variables)."""
    real = launch(["-q", *args, "--", "env", "-0"], env)
    assert real.returncode == 0, real.stderr
    got = dict(e.split("=", 1) for e in real.stdout.split("\0") if "=" in e)
    dry = launch(["-q", "--dry-run", "--shell", "sh", *args, "--", "env", "-0"], env)
    line = subprocess.run(["sh", "-c", dry.stdout], env=env, capture_output=True, text=True, check=True)
    via_line = dict(e.split("=", 1) for e in line.stdout.split("\0") if "=" in e)
    for name in (*LOCALE, "PYTHONIOENCODING", "PYTHONUNBUFFERED"):
        assert via_line.get(name) == got.get(name), name
    return got


def no_locale(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in clean_env(tmp_path).items() if k not in LOCALE}
    env.update(extra)
    return env


def test_no_locale_gets_utf8_output_and_no_coerced_lc_ctype(tmp_path: Path) -> None:
    got = program_env(tmp_path, no_locale(tmp_path))
    assert "LC_CTYPE" not in got, "CPython's locale coercion leaked into the program"
    assert got["PYTHONIOENCODING"] == "utf-8"


def test_no_coerced_lc_ctype_when_supervised(tmp_path: Path) -> None:
    result = launch(["-q", "--init", "always", "--", "env", "-0"], no_locale(tmp_path))
    got = dict(e.split("=", 1) for e in result.stdout.split("\0") if "=" in e)
    assert "LC_CTYPE" not in got


@pytest.mark.parametrize("value", ["C", "POSIX", "C.UTF-8"])
def test_an_inherited_lc_ctype_passes_as_it_was(tmp_path: Path, value: str) -> None:
    got = program_env(tmp_path, no_locale(tmp_path, LC_CTYPE=value))
    assert got["LC_CTYPE"] == value
    assert ("PYTHONIOENCODING" in got) == (value != "C.UTF-8")


def test_a_utf8_locale_needs_nothing(tmp_path: Path) -> None:
    got = program_env(tmp_path, no_locale(tmp_path, LANG="C.UTF-8"))
    assert "LC_CTYPE" not in got and "PYTHONIOENCODING" not in got


def test_the_envs_own_python_settings_win(tmp_path: Path) -> None:
    env_dir = make_env(tmp_path / "e", state={"PYTHONIOENCODING": "latin-1", "PYTHONUNBUFFERED": ""})
    got = program_env(tmp_path, no_locale(tmp_path, LC_ALL="C"), "-p", str(env_dir))
    assert got["PYTHONIOENCODING"] == "latin-1"
    assert got["PYTHONUNBUFFERED"] == ""
    env_dir = make_env(tmp_path / "f", scripts={"a.sh": "export PYTHONIOENCODING=ascii\n"})
    got = program_env(tmp_path, no_locale(tmp_path, LC_ALL="C"), "-p", str(env_dir))
    assert got["PYTHONIOENCODING"] == "ascii" and got["PYTHONUNBUFFERED"] == "1"


# --- malformed env files: 65, never 70 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"env_vars": {"X": "a\\u0000b"}}', "sets X to a value no program can receive"),
        ('{"env_vars": {"X": "\\ud800"}}', "sets X to a value no program can receive"),
        ('{"env_vars": {"\\udfff": "x"}}', "impossible name"),
        ('{"env_vars": ' + "[" * 100000 + "]" * 100000 + "}", "nested too deeply"),
    ],
)
def test_malformed_state_values_are_data_errors(tmp_path: Path, text: str, message: str) -> None:
    env_dir = make_env(tmp_path / "e")
    (env_dir / "conda-meta" / "state").write_text(text)
    for extra in ([], ["--dry-run"]):
        result = launch([*extra, "-p", str(env_dir), "--", "true"], clean_env(tmp_path))
        assert message in error_line(result, 65)


def test_a_lone_surrogate_in_env_vars_d(tmp_path: Path) -> None:
    env_dir = make_env(tmp_path / "e")
    folder = env_dir / "etc" / "conda" / "env_vars.d"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text('{"X": "ok", "Y": "\\udc80\\ud800"}')
    result = launch(["-p", str(env_dir), "--", "true"], clean_env(tmp_path))
    assert "sets Y to a value no program can receive" in error_line(result, 65)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ([""], "the command is an empty word"),
        (["--", "", "x"], "the command is an empty word"),
        (["--torchrun", ""], "the training script is an empty word"),
        (["--dry-run", ""], "the command is an empty word"),
    ],
)
def test_an_empty_command_word_is_a_usage_error(tmp_path: Path, args: list[str], text: str) -> None:
    assert text in error_line(launch(args, clean_env(tmp_path)), 2)


# --- unreadable env directories and files, as a real unprivileged user ------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can reach (the session's temporary directories are root's alone)."""
    if os.getuid() != 0:
        pytest.skip("needs root to switch to another user")
    top = Path(tempfile.mkdtemp(prefix="ma-launch-perm-", dir="/tmp"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top)


def as_nobody(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        nobody_argv([*LAUNCH, *args]),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("locked", "mode"),
    [
        ("etc/conda/env_vars.d", 0o700),
        ("etc/conda/env_vars.d/a.json", 0o600),
        ("conda-meta/state", 0o600),
        ("conda-meta", 0o700),  # os.path.exists(state) is false there, yet state exists
        ("etc/conda/activate.d", 0o700),
    ],
)
def test_an_unreadable_env_file_or_directory_is_named(shared_dir: Path, locked: str, mode: int) -> None:
    env_dir = make_env(
        shared_dir / "env",
        python=False,  # no symlink to the real interpreter, whose mode must never change
        state={"S": "1"},
        env_vars_d={"a.json": {"A": "1"}},
        scripts={"a.sh": "export B=1\n"},
    )
    for path in [env_dir, *env_dir.rglob("*")]:
        assert not path.is_symlink()
        path.chmod(0o755 if path.is_dir() else 0o644)
    (env_dir / locked).chmod(mode)
    env = clean_env(shared_dir, HOME=str(shared_dir), XDG_CACHE_HOME=str(shared_dir / "cache"))
    args = ["--ld-library-path", "off", "--workdir", str(shared_dir), "-p", str(env_dir), "--", "true"]
    for extra in ([], ["--dry-run"]):
        line = error_line(as_nobody([*extra, *args], env), 77)
        target = locked if locked != "conda-meta" else "conda-meta/state"
        assert f"{env_dir / target} cannot be read by this user (uid 65534)" in line


# --- messages: one line each; files that are not directories -------------------------------------


def test_every_message_is_one_line(tmp_path: Path) -> None:
    work = tmp_path / "work\nwith a break"
    work.mkdir()
    env_dir = make_env(tmp_path / "e")
    folder = env_dir / "etc" / "conda" / "activate.d"
    folder.mkdir(parents=True)
    (folder / "bad\nname.sh").write_text("return 3\n")
    result = launch(["--workdir", str(work), "-p", str(env_dir), "--", "true"], clean_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert all(line.startswith("ma-launch: ") for line in result.stderr.splitlines()), result.stderr
    assert "work\\nwith a break" in result.stderr and "bad\\nname.sh failed (status 3)" in result.stderr
    args = ["--json", "--workdir", str(work), "-p", str(env_dir), "--", "true"]
    plan = json.loads(launch(args, clean_env(tmp_path)).stdout)
    assert not [line for line in plan["decisions"] + plan["warnings"] if "\n" in line]


@pytest.mark.parametrize("slash", ["", "/"])
def test_a_file_given_as_a_directory_says_so(tmp_path: Path, slash: str) -> None:
    file = tmp_path / "a-file"
    file.write_text("x")
    given = f"{file}{slash}"
    env = clean_env(tmp_path)
    assert "is not a directory" in error_line(launch(["-p", given, "--", "true"], env), 66)
    assert "is not a directory" in error_line(launch(["--workdir", given, "--", "true"], env), 66)
    assert "is not a directory" in error_line(launch(["--", "true"], clean_env(tmp_path, MA_HOME=given)), 66)
    root_env = clean_env(tmp_path, ANACONDA_DIR=given, DEFAULT_CONDA_ENV_NAME="x")
    assert "is not a directory" in error_line(launch(["--", "true"], root_env), 78)
    root_env = clean_env(tmp_path, ANACONDA_DIR=given)
    assert "is not a directory" in error_line(launch(["-n", "x", "--", "true"], root_env), 78)


# --- one reading of yes and no ---------------------------------------------------------------------


def test_yes_no_words() -> None:
    for word in ("1", "true", "YES", " on "):
        assert yes_no(word, "MA_LAUNCH_X") and is_yes(word)
    for word in ("0", "false", "No", "off", "", "  "):
        assert not yes_no(word, "MA_LAUNCH_X") and not is_yes(word)
    assert not is_yes("perhaps") and not is_yes(None)
    with pytest.raises(Exception, match="MA_LAUNCH_X='perhaps' is not a yes/no value"):
        yes_no("perhaps", "MA_LAUNCH_X")
    assert env_yes({"MA_LAUNCH_DEBUG": "true"}, "MA_LAUNCH_DEBUG")
    assert not env_yes({"MA_LAUNCH_DEBUG": "0"}, "MA_LAUNCH_DEBUG") and not env_yes({}, "MA_LAUNCH_DEBUG")


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_a_no_means_off_for_every_switch(tmp_path: Path, value: str) -> None:
    env = clean_env(tmp_path, MA_LAUNCH_DEBUG=value, MA_LAUNCH_QUIET=value, MA_LAUNCH_DRY_RUN=value)
    result = launch(["--workdir", "/nonexistent", "--", "true"], env)
    error_line_text = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 66 and "Traceback" not in result.stderr and len(error_line_text) == 1
    assert "ma-launch: working directory /nonexistent" in result.stderr  # not quiet
    result = launch(["doctor", "--root", "/nonexistent"], env)
    assert "Traceback" not in result.stderr
    env["MA_LAUNCH_DEBUG"] = "yes"
    assert "Traceback" in launch(["--workdir", "/nonexistent", "--", "true"], env).stderr
