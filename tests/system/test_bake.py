"""``ma-launch bake``: the baked boot script does what ``ma-launch`` does, with no Python at boot."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from condakit import REAL_PYTHON, make_env, need, write_exe
from launchkit import REPO

LAUNCH = [REAL_PYTHON, "-m", "launcher"]
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
