"""``ma-launch bake``: the baked boot script does what ``ma-launch`` does, with no Python at boot."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from condakit import REAL_PYTHON, make_env, need, write_exe
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from launchkit import LAUNCH, REPO
from unprivileged import as_nobody, public_tmp

from launcher.core.build import build_plan
from launcher.core.request import Request
from launcher.render.bake import bake_script, comment
from launcher.run.activate import run_bash_program

APPENDED = ["--data_url=/home/ma-user/modelarts/inputs/data_url_0/", "--train_url", "/out dir/", "it's"]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    env_dir = make_env(
        tmp_path / "anaconda3" / "envs" / "py",
        state={"STAGE": "train", "GONE": "***unset***"},
        scripts={"a.sh": 'export FROM_SCRIPT="$CONDA_PREFIX/x"\n'},
    )
    write_exe(
        env_dir / "bin" / "rec",
        f"#!{REAL_PYTHON}\n"
        "import json, os, sys\n"
        "json.dump({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'env': dict(os.environ)},"
        " open(os.environ['REC_OUT'], 'w'))\n",
    )
    work = tmp_path / "work dir"
    work.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "MA_", "PYTHON"))}
    base.update(
        PYTHONPATH=str(REPO),
        GONE="1",
        LD_LIBRARY_PATH="/usr/local/nvidia/lib64",
    )
    return env_dir, work, base


def record(cmd: list[str], env: dict[str, str], out: Path) -> dict[str, object]:
    """What the recorder program saw (its argv, directory and environment, without REC_OUT)."""
    subprocess.run(cmd, env={**env, "REC_OUT": str(out)}, check=True, capture_output=True, timeout=60)
    data: dict[str, object] = json.loads(out.read_text())
    environ = data["env"]
    assert isinstance(environ, dict)
    environ.pop("REC_OUT", None)
    return data


def shell_noise(sh: str, rec: Path, env: dict[str, str], workdir: Path, tmp_path: Path) -> frozenset[str]:
    """The variables ``sh script`` adds, changes or removes by itself on the way to a program (bash, for
    one, unsets an exported PS1 and sets ``_`` after ``cd``): measured with a script of the baked line's
    shape that sets nothing."""
    script = write_exe(tmp_path / "noise.sh", f"cd {shlex.quote(str(workdir))} && exec env {rec}\n")
    seen = record([sh, str(script)], env, tmp_path / "noise.json")["env"]
    assert isinstance(seen, dict)
    return frozenset(k for k in set(seen) | set(env) if seen.get(k) != env.get(k)) - {"PWD"}


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_baked_script_does_what_ma_launch_does(
    setup: tuple[Path, Path, dict[str, str]], tmp_path: Path, shell: str
) -> None:
    sh = need(shell)
    env_dir, work, base = setup
    options = ["-p", str(env_dir), "--workdir", str(work), "--ld-library-path", "prefix"]
    script = tmp_path / "boot.sh"
    baked = subprocess.run(
        [*LAUNCH, "bake", "-o", str(script), *options, "--", "rec", "--lr", "0.1"],
        env=base,
        capture_output=True,
        text=True,
        check=False,
    )
    assert baked.returncode == 0, baked.stderr
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert "ma-launch 0." in text and f"env: py ({env_dir})" in text
    noise = shell_noise(sh, env_dir / "bin" / "rec", base, work, tmp_path)
    real_cmd = [*LAUNCH, "-q", *options, "--", "rec", "--lr", "0.1", *APPENDED]
    real = record(real_cmd, base, tmp_path / "a.json")
    boot = record([sh, str(script), *APPENDED], base, tmp_path / "b.json")
    real_env, boot_env = real["env"], boot["env"]
    assert isinstance(real_env, dict) and isinstance(boot_env, dict)
    changed_by_launch = {k for k in set(real_env) | set(base) if real_env.get(k) != base.get(k)}
    assert not noise & changed_by_launch, "a variable ma-launch sets is one the shell changes by itself"
    for name in noise:
        real_env.pop(name, None)
        boot_env.pop(name, None)
    assert boot == real
    assert real["argv"] == ["--lr", "0.1", *APPENDED]
    env = real["env"]
    assert isinstance(env, dict)
    assert env["STAGE"] == "train" and "GONE" not in env and env["FROM_SCRIPT"] == f"{env_dir}/x"
    assert env["LD_LIBRARY_PATH"] == f"{env_dir}/lib:/usr/local/nvidia/lib64"


def test_baked_script_keeps_the_boot_time_paths(
    setup: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    """PATH and LD_LIBRARY_PATH are the ones of the container at boot, with the env's entries in front."""
    env_dir, work, base = setup
    script = tmp_path / "boot.sh"
    cmd = [*LAUNCH, "bake", "-o", str(script), "-p", str(env_dir), "--workdir", str(work)]
    cmd += ["--ld-library-path", "prefix", "--", "rec"]
    subprocess.run(cmd, env=base, check=True, capture_output=True)
    boot_env = {
        **base,
        "LD_LIBRARY_PATH": "/usr/local/cuda/lib64:/usr/local/nvidia/lib",
        "PATH": "/opt/x:/usr/bin:/bin",
    }
    got = record([need("dash"), str(script)], boot_env, tmp_path / "c.json")["env"]
    assert isinstance(got, dict)
    assert got["LD_LIBRARY_PATH"] == f"{env_dir}/lib:/usr/local/cuda/lib64:/usr/local/nvidia/lib"
    assert got["PATH"] == f"{env_dir}/bin:/opt/x:/usr/bin:/bin"
    assert got["MA_LAUNCH_ORIG_LD_LIBRARY_PATH"] == "/usr/local/cuda/lib64:/usr/local/nvidia/lib"


def test_baked_shell_line_gets_the_appended_arguments(tmp_path: Path) -> None:
    script = tmp_path / "boot.sh"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "MA_"))}
    env["PYTHONPATH"] = str(REPO)
    cmd = [*LAUNCH, "bake", "-o", str(script), "--workdir", str(tmp_path), "-c", "printf '[%s]' first"]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    result = subprocess.run(
        [need("dash"), str(script), "--data_url=/a b", "x'y"], capture_output=True, text=True
    )
    assert result.stdout == "[first][--data_url=/a b][x'y]"


def test_bake_refuses_to_overwrite_and_to_bake_failures(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "MA_"))}
    env["PYTHONPATH"] = str(REPO)
    script = tmp_path / "boot.sh"
    script.write_text("keep me")
    result = subprocess.run(
        [*LAUNCH, "bake", "-o", str(script), "--workdir", str(tmp_path), "--", "true"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--force" in result.stderr and script.read_text() == "keep me"
    result = subprocess.run(
        [*LAUNCH, "bake", "-o", str(script), "--force", "--workdir", str(tmp_path), "--", "no-such-cmd-xyz"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 127 and script.read_text() == "keep me"
    result = subprocess.run(
        [*LAUNCH, "bake", "--workdir", str(tmp_path), "--", "true"],
        env={**env, "RANK_TABLE_FILE": "/user/config"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 78 and "rank table" in result.stderr


# -- hostile text never leaves a comment -------------------------------------------------------------------

#: Pieces a hostile (or careless) argument or -c line is made of: line breaks of every kind, quotes,
#: substitutions, comment and command separators, and the command that must never run.
_PIECES = [
    "\n",
    "\r",
    "\r\n",
    "\x0b",
    "\x0c",
    "\u2028",
    "\x85",
    "'",
    '"',
    "\\",
    "$(",
    ")",
    "`",
    "#",
    ";",
    "&",
]
_PIECES += [
    " ",
    "x",
    "$HOME",
    "$@",
    "--password=pw",
    "touch MARKER",
    "\ntouch MARKER\n",
    "'\ntouch MARKER\n'",
]
_chars = st.characters(blacklist_characters="\x00", codec="utf-8")  # argv cannot hold NUL
_hostile = st.lists(st.sampled_from(_PIECES) | st.text(_chars, max_size=3), max_size=10).map("".join)


def _recorder(folder: Path) -> Path:
    """``rec``: appends its argument count and arguments, NUL-terminated, to $REC_LOG; the one program
    meant to run."""
    return write_exe(folder / "rec", '#!/bin/sh\nprintf \'%s\\0\' "$#" "$@" >> "$REC_LOG"\n')


def _recorded(log: Path) -> list[list[str]]:
    """The argument lists ``rec`` recorded, one per run, in order."""
    fields = os.fsdecode(log.read_bytes()).split("\0")[:-1] if log.exists() else []
    runs = []
    while fields:
        count = int(fields.pop(0))
        runs.append(fields[:count])
        del fields[:count]
    return runs


def _bake_and_run(
    tmp_path: Path, request: Request, command_line: list[str], appended: list[str]
) -> tuple[str, list[list[list[str]]]]:
    """Bake ``request`` in-process, run the script with dash and with bash (appending ``appended``), and
    return the script and what ``rec`` recorded in each shell."""
    bin_dir = tmp_path / "bin"
    _recorder(bin_dir)
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "LC_ALL": "C.UTF-8"}
    plan = build_plan(request, base, str(tmp_path), script_runner=run_bash_program)
    text = bake_script(plan, version="0.test", command_line=command_line)
    script = tmp_path / "boot.sh"
    script.write_bytes(os.fsencode(text))
    runs: list[list[list[str]]] = []
    for shell in ("dash", "bash"):
        log = tmp_path / f"{shell}.log"
        log.unlink(missing_ok=True)
        result = subprocess.run(
            [need(shell), str(script), *appended],
            env={**base, "REC_LOG": str(log)},
            cwd=str(tmp_path),
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == 0, (shell, result.stderr, text)
        runs.append(_recorded(log))
    return text, runs


def _assert_only_comments_before_the_command(text: str) -> None:
    lines = text.split("\n")
    command_at = next(i for i, line in enumerate(lines) if line.startswith("cd "))
    assert all(line.startswith("#") for line in lines[:command_at]), text
    assert lines[0] == "#!/bin/sh"


@given(args=st.lists(_hostile, max_size=4), appended=st.lists(_hostile, max_size=2))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(args=["x\ntouch MARKER\n", "--password=pw"], appended=[])
@example(args=["'\ntouch MARKER\n'"], appended=["\ntouch MARKER"])
def test_hostile_arguments_run_nothing_but_the_program(
    tmp_path_factory: pytest.TempPathFactory, args: list[str], appended: list[str]
) -> None:
    tmp_path = tmp_path_factory.mktemp("hostile")
    request = Request(command=("rec", *args), workdir=str(tmp_path), ld_mode="off")
    text, runs = _bake_and_run(tmp_path, request, ["bake", "--", "rec", *args], appended)
    _assert_only_comments_before_the_command(text)
    assert runs == [[[*args, *appended]], [[*args, *appended]]]
    assert not (tmp_path / "MARKER").exists()


@given(words=st.lists(_hostile, min_size=1, max_size=3), appended=st.lists(_hostile, max_size=2))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(words=["one", "two'\ntouch MARKER\n"], appended=[])
def test_a_multi_line_shell_line_runs_once(
    tmp_path_factory: pytest.TempPathFactory, words: list[str], appended: list[str]
) -> None:
    """Each line of the -c line runs once, in order (the comment that quotes it runs nothing); the
    appended arguments reach its last line."""
    tmp_path = tmp_path_factory.mktemp("lines")
    line = "\n".join(f"rec {shlex.quote(word)}" for word in words)
    request = Request(shell_line=line, workdir=str(tmp_path), ld_mode="off")
    text, runs = _bake_and_run(tmp_path, request, ["bake", "-c", line], appended)
    _assert_only_comments_before_the_command(text)
    expected = [[word] for word in words]
    expected[-1] += appended
    assert runs == [expected, expected]
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_an_env_path_with_a_line_break_stays_a_comment(tmp_path: Path, shell: str) -> None:
    env_dir = make_env(tmp_path / "envs" / "py\ntouch MARKER\n")
    _recorder(env_dir / "bin")
    request = Request(command=("rec", "ok"), prefix=str(env_dir), workdir=str(tmp_path), ld_mode="off")
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    plan = build_plan(request, base, str(tmp_path), script_runner=run_bash_program)
    text = bake_script(plan, version="0.test", command_line=["bake", "-p", str(env_dir), "--", "rec", "ok"])
    _assert_only_comments_before_the_command(text)
    script = tmp_path / "boot.sh"
    script.write_bytes(os.fsencode(text))
    log = tmp_path / "rec.log"
    result = subprocess.run(
        [need(shell), str(script)], env={**base, "REC_LOG": str(log)}, cwd=str(tmp_path), capture_output=True
    )
    assert result.returncode == 0, result.stderr
    assert _recorded(log) == [["ok"]]
    assert not (tmp_path / "MARKER").exists()


def test_comment_cannot_make_a_line_that_is_not_a_comment() -> None:
    for text in ["a\nb", "a\rb", "\n\n", "", "x\u2028y\x85z\x0bw", "tail\n"]:
        lines = comment(text).split("\n")
        assert all(line.startswith("# ") and line.isprintable() for line in lines), lines


def test_bake_into_a_directory_this_user_may_not_write_is_77(tmp_path: Path) -> None:
    """As an unprivileged user (root writes anywhere): one error line, exit 77, nothing written."""
    if os.getuid() != 0:
        pytest.skip("needs root to switch to another user")
    with public_tmp() as top:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "MA_", "PYTHON"))}
        env.update(PYTHONPATH=str(REPO), HOME=str(top))
        result = subprocess.run(
            as_nobody([*LAUNCH, "bake", "-o", str(top / "boot.sh"), "--workdir", "/tmp", "--", "true"]),
            env=env,
            capture_output=True,
            text=True,
            cwd="/tmp",
            timeout=60,
        )
        assert result.returncode == 77, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("ma-launch: error: cannot write")
        assert "hint:" in result.stderr and result.stdout == ""
        assert list(top.iterdir()) == []
