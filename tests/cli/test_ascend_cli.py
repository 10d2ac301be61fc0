"""The Ascend options through the real command: ``--msrun`` in the JSON plan and the dry-run line (and the
warnings about running it unsupervised), ``--source`` errors, and the example boot lines, each of which
must be a valid ma-launch command."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from condakit import make_env, write_exe
from launchkit import REPO, clean_env, launch

from launcher.cli import options

V2 = {
    "MA_VJ_NAME": "ma-job-1",
    "MA_NUM_HOSTS": "2",
    "VC_WORKER_HOSTS": "job-worker-0.job,job-worker-1.job",
    "MA_NUM_GPUS": "8",
    "MA_LOG_DIR": "/home/ma-user/modelarts/log",
}


def test_msrun_in_the_json_plan_and_the_line(tmp_path: Path) -> None:
    env_dir = make_env(tmp_path / "env")
    msrun = write_exe(env_dir / "bin" / "msrun", "#!/bin/sh\n")
    args = ["-p", str(env_dir), "--msrun", "--msrun-arg=--bind_core=True", "train.py", "--lr", "1"]
    data = json.loads(launch(["--json", *args], clean_env(tmp_path, VC_TASK_INDEX="1", **V2)).stdout)
    assert data["argv"] == [
        str(msrun),
        "--worker_num=16",
        "--local_worker_num=8",
        "--master_addr=job-worker-0.job",
        "--master_port=6060",
        "--node_rank=1",
        "--log_dir=/home/ma-user/modelarts/log/msrun",
        "--join=True",
        "--cluster_time_out=600",
        "--bind_core=True",
        "train.py",
        "--lr",
        "1",
    ]
    assert data["line"].endswith("--cluster_time_out=600 --bind_core=True train.py --lr 1")
    assert any("the full logs are in /home/ma-user/modelarts/log/msrun" in d for d in data["decisions"])


def test_msrun_unsupervised_is_warned(tmp_path: Path) -> None:
    env_dir = make_env(tmp_path / "env")
    write_exe(env_dir / "bin" / "msrun", "#!/bin/sh\necho msrun ran\n")
    env = clean_env(tmp_path)
    result = launch(["--init", "never", "-p", str(env_dir), "--msrun", "train.py"], env)
    assert result.returncode == 0 and result.stdout == "msrun ran\n"
    assert "warning: --msrun with --init never: a stop leaves msrun's workers running" in result.stderr
    baked = launch(["bake", "-o", str(tmp_path / "boot.sh"), "-p", str(env_dir), "--msrun", "train.py"], env)
    assert baked.returncode == 0, baked.stderr
    assert "warning: the baked msrun job has no supervisor" in baked.stderr


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--source", "missing.sh"], 66, "--source missing.sh: no such file"),
        (["--cann", "sometimes"], 2, "--cann 'sometimes' is not one of auto, off"),
        (["--msrun", "--torchrun"], 2, "--torchrun and --msrun do not go together"),
        (["--msrun", "-c", "python t.py"], 2, "--msrun and -c do not go together"),
    ],
)
def test_bad_ascend_options(tmp_path: Path, args: list[str], code: int, text: str) -> None:
    marker = tmp_path / "ran"
    result = launch([*args, "--", "touch", str(marker)], clean_env(tmp_path))
    assert result.returncode == code, result.stderr
    assert text in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def _boot_lines() -> list[str]:
    found = []
    for name in ("ascend-boot-lines.md", "Dockerfile.ascend"):
        text = (REPO / "examples" / name).read_text()
        found += re.findall(r"exec ma-launch (.*?)(?:\s+#.*)?$", text, re.M)
    return found


def test_the_example_boot_lines_are_ma_launch_commands() -> None:
    lines = _boot_lines()
    assert len(lines) >= 7
    modes = {"--torchrun", "--msrun"}
    for line in lines:
        parsed = options.parse(shlex.split(line), {})
        assert parsed.command, line
        modes -= {flag for flag in ("--torchrun", "--msrun") if parsed.flag(flag[2:])}
    assert not modes
    dockerfile = (REPO / "examples" / "Dockerfile.ascend").read_text()
    assert "useradd -m -d /home/ma-user -s /bin/bash -u 1000 -g 100 ma-user" in dockerfile
    assert "iproute2" in dockerfile
    assert not re.search(r"^(ENV|RUN|COPY).*(set_env\.sh|/usr/local/Ascend/driver)", dockerfile, re.M)
