"""ModelArts job integration through the real command: distributed variables, torchrun, the rank table,
channel arguments and boot-line lint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from condakit import REAL_PYTHON, make_env, write_exe
from launchkit import LAUNCH, REPO, free_port, torch_path

HOSTS = (
    "modelarts-job-a0914ad2-worker-0.modelarts-job-a0914ad2,"
    "modelarts-job-a0914ad2-worker-1.modelarts-job-a0914ad2"
)
V2 = {
    "MA_VJ_NAME": "ma-job-a0914ad2",
    "MA_JOB_DIR": "/home/ma-user/modelarts/user-job-dir",
    "MA_NUM_HOSTS": "2",
    "VC_WORKER_NUM": "2",
    "VC_WORKER_HOSTS": HOSTS,
    "MA_NUM_GPUS": "8",
}
DIST = ("MASTER_ADDR", "MASTER_PORT", "NNODES", "NODE_RANK", "NPROC_PER_NODE", "WORLD_SIZE", "RANK")
SHOW = f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in {DIST!r}}}))"


def job_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONDA", "MA_", "VC_", "DLS_", "BATCH_", "RANK_", "PYTHON", *DIST))
    }
    env["PYTHONPATH"] = str(REPO)
    env["MA_HOME"] = str(tmp_path)
    env.update(extra)
    return env


def run(tmp_path: Path, *args: str, env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [*LAUNCH, *args], env=env, capture_output=True, text=True, timeout=120, **kw
    )


def seen(tmp_path: Path, *options: str, **env: str) -> dict[str, str | None]:
    result = run(tmp_path, "-q", *options, "--", REAL_PYTHON, "-c", SHOW, env=job_env(tmp_path, **env))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_documented_two_node_job(tmp_path: Path) -> None:
    for index in ("0", "1"):
        got = seen(tmp_path, VC_TASK_INDEX=index, **V2)
        assert got == {
            "MASTER_ADDR": "modelarts-job-a0914ad2-worker-0.modelarts-job-a0914ad2",
            "MASTER_PORT": "6060",
            "NNODES": "2",
            "NODE_RANK": index,
            "NPROC_PER_NODE": "8",
            "WORLD_SIZE": None,
            "RANK": None,
        }


def test_user_values_win_and_options(tmp_path: Path) -> None:
    got = seen(tmp_path, "--master-port", "7000", VC_TASK_INDEX="1", MASTER_ADDR="10.0.0.5", NNODES="2", **V2)
    assert got["MASTER_ADDR"] == "10.0.0.5" and got["MASTER_PORT"] == "7000"
    got = seen(tmp_path, "--world-per-node", VC_TASK_INDEX="1", **V2)
    assert got["WORLD_SIZE"] == "2" and got["RANK"] == "1"
    got = seen(tmp_path, "--no-dist-env", VC_TASK_INDEX="1", **V2)
    assert set(got.values()) == {None}


def test_v1_only_variables(tmp_path: Path) -> None:
    got = seen(
        tmp_path,
        DLS_TASK_INDEX="1",
        DLS_TASK_NUMBER="2",
        BATCH_JOB_ID="job-1",
        BATCH_CUSTOM0_HOSTS="192.168.0.10:6666",
        MA_NUM_GPUS="8",
    )
    assert got["MASTER_ADDR"] == "192.168.0.10" and got["NNODES"] == "2" and got["NODE_RANK"] == "1"


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        ({"VC_TASK_INDEX": "2"}, "VC_TASK_INDEX"),
        ({"VC_TASK_INDEX": "x"}, "VC_TASK_INDEX"),
        ({"VC_TASK_INDEX": "0", "VC_WORKER_HOSTS": "only-one"}, "VC_WORKER_HOSTS"),
    ],
)
def test_inconsistent_platform_values(tmp_path: Path, extra: dict[str, str], text: str) -> None:
    marker = tmp_path / "ran"
    result = run(tmp_path, "--", "touch", str(marker), env=job_env(tmp_path, **{**V2, **extra}))
    assert result.returncode == 78, result.stderr
    assert text in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_platform_and_distributed_values_in_the_json_plan(tmp_path: Path) -> None:
    data = json.loads(
        run(tmp_path, "--json", "--", "true", env=job_env(tmp_path, VC_TASK_INDEX="1", **V2)).stdout
    )
    assert data["platform"]["kind"] == "v2" and "MA_VJ_NAME" in data["platform"]["evidence"]
    assert data["distributed"]["nnodes"] == 2 and data["distributed"]["node_rank"] == 1
    data = json.loads(run(tmp_path, "--json", "--", "true", env=job_env(tmp_path, DLS_TASK_INDEX="0")).stdout)
    assert data["platform"]["kind"] == "v1"
    data = json.loads(run(tmp_path, "--json", "--", "true", env=job_env(tmp_path)).stdout)
    assert data["platform"] == {"kind": "local", "evidence": []}


def test_torchrun_composed_argv(tmp_path: Path) -> None:
    env_dir = make_env(tmp_path / "env")
    python = str(env_dir / "bin" / "python")
    args = [
        "--json",
        "-p",
        str(env_dir),
        "--torchrun",
        "--torchrun-arg=--max_restarts=0",
        "train.py",
        "--lr",
        "1",
    ]
    for index in ("0", "1"):
        data = json.loads(run(tmp_path, *args, env=job_env(tmp_path, VC_TASK_INDEX=index, **V2)).stdout)
        master = "modelarts-job-a0914ad2-worker-0.modelarts-job-a0914ad2"
        expected = [
            python, "-m", "torch.distributed.run",
            "--nnodes", "2", "--node_rank", index, "--nproc_per_node", "8",
            "--rdzv_id", "ma-job-a0914ad2", "--rdzv_backend", "c10d", "--rdzv_endpoint", f"{master}:6060",
            "--rdzv_conf", f"is_host={int(index == '0')}",
            "--max_restarts=0", "train.py", "--lr", "1",
        ]  # fmt: skip
        assert data["argv"] == expected
        assert data["line"].endswith("--max_restarts=0 train.py --lr 1")
    data = json.loads(run(tmp_path, "--json", "--torchrun", "train.py", env=job_env(tmp_path)).stdout)
    assert data["argv"][1:5] == ["-m", "torch.distributed.run", "--standalone", "--nnodes"]


@pytest.mark.slow
def test_real_torchrun_gloo_job_through_ma_launch(tmp_path: Path) -> None:
    torch_dir = torch_path()
    env_dir = make_env(tmp_path / "env")
    (tmp_path / "train.py").write_text(
        textwrap.dedent(
            """
            import os, sys, torch, torch.distributed as dist
            dist.init_process_group("gloo")
            t = torch.tensor([dist.get_rank() + 1.0])
            dist.all_reduce(t)
            # one write per line: two ranks share the pipe, and print() writes the newline separately
            r, n = dist.get_rank(), dist.get_world_size()
            sys.stdout.write(f"rank {r} of {n}: sum {t.item()} args {sys.argv[1:]}\\n")
            dist.destroy_process_group()
            """
        )
    )
    env = job_env(tmp_path, MA_NUM_GPUS="2")
    env["PYTHONPATH"] += os.pathsep + torch_dir
    result = run(
        tmp_path,
        "-q",
        "-p",
        str(env_dir),
        "--master-port",
        str(free_port()),
        "--torchrun",
        "train.py",
        "--x",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = sorted(line for line in result.stdout.splitlines() if line.startswith("rank"))
    assert lines == ["rank 0 of 2: sum 3.0 args ['--x']", "rank 1 of 2: sum 3.0 args ['--x']"]


TEMPLATE2 = {
    "status": "completed",
    "group_count": "1",
    "group_list": [
        {
            "group_name": "job",
            "device_count": "2",
            "instance_count": "2",
            "instance_list": [
                {"pod_name": f"job-worker-{i}", "server_id": f"10.0.0.{i + 1}",
                 "devices": [{"device_id": "0", "device_ip": f"1.0.0.{i + 1}"}]}
                for i in (1, 0)
            ],
        }
    ],
}  # fmt: skip


def test_rank_table_waits_converts_and_exports(tmp_path: Path) -> None:
    config = tmp_path / "config"
    mount = tmp_path / "modelarts"
    mount.mkdir()

    def platform_writes_the_table() -> None:
        time.sleep(0.8)
        config.mkdir()
        (config / "jobstart_hccl.json").write_text('{"status": "initializing", "group_li')  # half-written
        time.sleep(0.8)
        (config / "jobstart_hccl.json").write_text(json.dumps(TEMPLATE2))

    writer = threading.Thread(target=platform_writes_the_table)
    writer.start()
    show = "import os; print(os.environ['RANK_TABLE_FILE'], os.environ['RANK_SIZE'])"
    env = job_env(tmp_path, RANK_TABLE_FILE=str(config), MA_MOUNT_PATH=str(mount))
    result = run(tmp_path, "-q", "--", REAL_PYTHON, "-c", show, env=env)
    writer.join()
    assert result.returncode == 0, result.stderr
    path, size = result.stdout.split()
    assert path == str(mount / "rank_table" / "jobstart_hccl.json") and size == "2"
    table = json.loads(Path(path).read_text())
    assert [s["server_id"] for s in table["server_list"]] == ["10.0.0.1", "10.0.0.2"]
    assert [s["device"][0]["rank_id"] for s in table["server_list"]] == ["0", "1"]


def test_rank_table_timeout_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    env = job_env(tmp_path, RANK_TABLE_FILE=str(tmp_path / "never"), MA_MOUNT_PATH=str(tmp_path))
    start = time.monotonic()
    result = run(tmp_path, "--rank-table-timeout", "1", "--", "touch", str(marker), env=env)
    assert time.monotonic() - start < 10
    assert result.returncode == 75 and "rank table" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()
    result = run(tmp_path, "-q", "--rank-table", "off", "--", "touch", str(marker), env=env)
    assert result.returncode == 0 and marker.exists()


def test_channel_args_env_for_a_script_that_rejects_flags(tmp_path: Path) -> None:
    script = write_exe(
        tmp_path / "run.sh",
        textwrap.dedent(
            """\
            #!/bin/bash
            for a in "$@"; do
              case $a in --data_url*|--train_url*) echo "unknown flag $a" >&2; exit 2;; esac
            done
            echo "args=[$*] data_url=$data_url train_url=$train_url"
            """
        ),
    )
    appended = [
        "--my_data_url=/mine",
        "--data_url=/home/ma-user/modelarts/inputs/data_url_0/",
        "--train_url",
        "/out/",
    ]
    env = job_env(tmp_path)
    assert run(tmp_path, "-q", "--", str(script), *appended, env=env).returncode == 2
    result = run(tmp_path, "-q", "--channel-args", "env", "--", str(script), *appended, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "args=[--my_data_url=/mine] data_url=/home/ma-user/modelarts/inputs/data_url_0/ train_url=/out/"
    )
    result = run(tmp_path, "-q", "--channel-args", "drop", "--", str(script), *appended, env=env)
    assert result.stdout.strip() == "args=[--my_data_url=/mine] data_url= train_url="


def test_lint_warns_and_strict_lint_fails(tmp_path: Path) -> None:
    env = job_env(tmp_path, MA_VJ_NAME="ma-job-1")
    (tmp_path / "boot.py").write_text("print(1)\n")
    result = run(tmp_path, "-c", "bash boot.py", env=env)
    assert "[bash-runs-python]" in result.stderr
    result = run(tmp_path, "--strict-lint", "-c", "conda activate py && python t.py", env=env)
    assert result.returncode == 78 and "conda-activate" in result.stderr
    result = run(tmp_path, "-q", "--", sys.executable, "-c", "pass", env=env)
    assert result.returncode == 0 and result.stderr == ""


@pytest.mark.parametrize(
    ("args", "extra", "code", "text"),
    [
        ((), {"MA_NUM_GPUS": "²"}, 78, "MA_NUM_GPUS='²' is not a non-negative whole number"),
        ((), {"VC_TASK_INDEX": "9" * 5000}, 78, "VC_TASK_INDEX="),
        (("--dry-run",), {"MA_NUM_HOSTS": "1\n2"}, 78, "MA_NUM_HOSTS='1\\n2'"),
        (("--master-port", "0"), {}, 2, "--master-port 0 is outside 1-65535"),
        (("--master-port", "99999"), {}, 2, "--master-port 99999 is outside 1-65535"),
    ],
)
def test_bad_platform_values_and_options_get_their_code(
    tmp_path: Path, args: tuple[str, ...], extra: dict[str, str], code: int, text: str
) -> None:
    marker = tmp_path / "ran"
    env = job_env(tmp_path, **{**V2, "VC_TASK_INDEX": "0", **extra})
    result = run(tmp_path, *args, "--", "touch", str(marker), env=env)
    assert result.returncode == code, result.stderr
    assert text in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not marker.exists()


def test_rank_table_nested_too_deeply_is_a_data_error(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "jobstart_hccl.json").write_text(
        '{"status": "completed", "group_list": ' + "[" * 100_000
    )
    env = job_env(tmp_path, RANK_TABLE_FILE=str(tmp_path / "config"), MA_MOUNT_PATH=str(tmp_path))
    result = run(tmp_path, "--", "touch", str(marker), env=env)
    assert result.returncode == 65, result.stderr
    assert "nested too deeply" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists() and not (tmp_path / "rank_table").exists()


def test_rank_table_fifo_keeps_the_deadline(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    os.mkfifo(tmp_path / "config" / "jobstart_hccl.json")
    env = job_env(tmp_path, RANK_TABLE_FILE=str(tmp_path / "config"), MA_MOUNT_PATH=str(tmp_path))
    result = run(tmp_path, "--rank-table-timeout", "1", "--", "true", env=env)
    assert result.returncode == 75, result.stderr
