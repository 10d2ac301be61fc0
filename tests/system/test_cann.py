"""The CANN toolkit for real: a fake toolkit tree (a ``set_env.sh`` shaped like the real one, gcc-built
``libhccl.so``/``libascendcl.so``) found at the real ``/usr/local/Ascend`` inside a private mount namespace,
sourced by ma-launch, baked into a boot script that needs neither Python nor set_env.sh, written as dry-run
lines for the real shells, and seen by the LD analysis: a torch_npu stand-in (a gcc-built library linking
both, loaded when ``import torch`` runs, as torch auto-loads torch_npu) loads with CANN and, without it,
gets one clear warning before it fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cannkit import make_atb, make_toolkit, make_torch_npu
from condakit import REAL_PYTHON, make_env, write_exe
from launchkit import LAUNCH, SHELL_RUNNERS, clean_env, launch
from needs import missing, need, need_root

CANN_VARIABLES = ("ASCEND_HOME_PATH", "ASCEND_OPP_PATH", "ASCEND_AICPU_PATH", "LD_LIBRARY_PATH", "PYTHONPATH")
RECORDER = (
    f"#!{REAL_PYTHON}\n"
    "import json, os, sys\n"
    "json.dump({'argv': sys.argv[1:], 'env': dict(os.environ)}, open(os.environ['REC_OUT'], 'w'))\n"
)
SHELLS = {name: runner for name, runner in SHELL_RUNNERS.items() if name != "sh"}
NPU_WARNING = "needs the CANN toolkit: --cann auto or --source …/set_env.sh"


class Setup:
    """An env with a recorder program, a fake toolkit at ``cann`` (found through ASCEND_TOOLKIT_HOME) and
    the environment of the launch (LD_LIBRARY_PATH as the platform sets it)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.env_dir = make_env(tmp_path / "env")
        write_exe(self.env_dir / "bin" / "rec", RECORDER)
        self.cann = tmp_path / "cann"
        make_toolkit(str(self.cann))
        self.base = clean_env(tmp_path, ASCEND_TOOLKIT_HOME=f"{self.cann}/latest")
        self.base["LD_LIBRARY_PATH"] = "/usr/local/nvidia/lib64"

    def record(self, cmd: list[str], out: str) -> dict[str, str]:
        path = self.tmp / out
        result = subprocess.run(cmd, env={**self.base, "REC_OUT": str(path)}, capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        env: dict[str, str] = json.loads(path.read_text())["env"]
        return env


def test_the_real_path_is_found_in_a_private_mount_namespace(tmp_path: Path) -> None:
    """The toolkit and ATB at /usr/local/Ascend (a bind mount over an overlay of /usr/local, both private
    to a mount namespace: nothing is written to this machine's /usr/local)."""
    need_root()
    need("unshare")
    existed = Path("/usr/local/Ascend").exists()
    tree = tmp_path / "Ascend"
    make_toolkit("/usr/local/Ascend/ascend-toolkit", tree / "ascend-toolkit")
    make_atb("/usr/local/Ascend/nnal/atb", tree / "nnal" / "atb")
    (tmp_path / "upper").mkdir()
    (tmp_path / "work").mkdir()
    driver = (
        f"mount -t overlay overlay -o lowerdir=/usr/local,upperdir={tmp_path}/upper,workdir={tmp_path}/work "
        "/usr/local && mkdir -p /usr/local/Ascend && "
        f'mount --bind {tree} /usr/local/Ascend && exec "$@"'
    )
    env = clean_env(tmp_path)
    command = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        driver,
        "sh",
        *LAUNCH,
        "--json",
        "--",
        "true",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0 and "mount" in result.stderr:
        missing(f"cannot build /usr/local/Ascend in a mount namespace: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    toolkit = "/usr/local/Ascend/ascend-toolkit/set_env.sh (CANN toolkit, --cann auto)"
    atb = "/usr/local/Ascend/nnal/atb/set_env.sh (CANN ATB, --cann auto)"
    sources = {c["name"]: c["source"] for c in plan["changes"]}
    assert sources["ASCEND_OPP_PATH"] == toolkit
    assert sources["ATB_HOME_PATH"] == atb
    assert plan["set"]["LD_LIBRARY_PATH"].split(":")[:1] == [
        "/usr/local/Ascend/nnal/atb/latest/atb/cxx_abi_1/lib"
    ]
    assert f"sourced {toolkit}: changed" in "\n".join(plan["decisions"])
    assert Path("/usr/local/Ascend").exists() is existed  # the namespace's mounts left nothing here


def test_launch_and_bake_give_the_program_the_sourced_environment(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    real = s.record([*LAUNCH, "-q", "-p", str(s.env_dir), "--", "rec"], "real.json")
    assert real["ASCEND_HOME_PATH"] == f"{s.cann}/latest"
    assert real["LD_LIBRARY_PATH"].split(":") == [
        f"{s.cann}/latest/lib64",
        f"{s.cann}/latest/lib64/plugin/opskernel",
        "/usr/local/nvidia/lib64",
    ]
    script = tmp_path / "boot.sh"
    baked = launch(["bake", "-q", "-o", str(script), "-p", str(s.env_dir), "--", "rec"], s.base)
    assert baked.returncode == 0, baked.stderr
    assert not [line for line in script.read_text().splitlines() if "set_env" in line and line[:1] != "#"]
    (s.cann / "set_env.sh").unlink()  # at boot, no set_env.sh runs: it may as well be gone
    for sh in ("dash", "bash"):
        booted = s.record([need(sh), str(script)], f"{sh}.json")
        for name in CANN_VARIABLES:
            assert booted.get(name) == real.get(name), (sh, name)


@pytest.mark.parametrize("shell", list(SHELLS))
def test_dry_run_lines_in_the_real_shells(tmp_path: Path, shell: str) -> None:
    s = Setup(tmp_path)
    command = [need(SHELLS[shell][0]), *SHELLS[shell][1:]]
    options = ["-p", str(s.env_dir), "--", "rec", "a b"]
    real = s.record([*LAUNCH, "-q", *options], "real.json")
    dry = subprocess.run(
        [*LAUNCH, "--dry-run", "--shell", shell, *options], env=s.base, capture_output=True, text=True
    )
    assert dry.returncode == 0, dry.stderr
    assert f"sourced {s.cann}/set_env.sh (CANN toolkit, --cann auto): changed ASCEND_AICPU_PATH" in dry.stderr
    via_shell = s.record([*command, dry.stdout.rstrip("\n")], "line.json")
    for name in (*CANN_VARIABLES, "PATH"):
        assert via_shell.get(name) == real.get(name), name


def _torch_standin(s: Setup) -> None:
    """torch_npu (a gcc-built library needing libhccl.so and libascendcl.so) and a ``torch`` package that
    loads it at import, as the real torch auto-loads its NPU backend."""
    site = s.env_dir / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    package = make_torch_npu(site, s.tmp / "stubs")
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text(
        f"import ctypes\nctypes.CDLL({str(package / 'lib' / 'libtorch_npu.so')!r})\nprint('torch imported')\n"
    )
    s.base["PYTHONPATH"] += os.pathsep + str(site)
    shutil.rmtree(s.tmp / "stubs")


def test_import_torch_with_and_without_cann(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    _torch_standin(s)
    argv = ["-p", str(s.env_dir), "--", "python", "-c", "import torch"]
    result = launch(argv, s.base)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "torch imported\n"
    assert "CANN" not in "".join(line for line in result.stderr.splitlines() if "warning" in line)
    result = launch(["--cann", "off", *argv], s.base)
    assert result.returncode != 0
    assert "libascendcl.so: cannot open shared object file" in result.stderr or "libhccl.so" in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("ma-launch: warning:")]
    assert len(warnings) == 1, warnings
    assert NPU_WARNING in warnings[0]
    assert "libascendcl.so, libhccl.so" in warnings[0]
