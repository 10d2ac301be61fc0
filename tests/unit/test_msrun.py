"""``--msrun`` as data: the composed msrun argv for one and several nodes, the worker count (MA_NUM_GPUS,
the visible NPUs, the device nodes under a root of the test's own), the log directory, and the plan."""

from __future__ import annotations

from pathlib import Path

import pytest
from condakit import make_env, write_exe

from launcher.cli import options, values
from launcher.core.build import build_plan
from launcher.core.request import Request
from launcher.errors import UsageError
from launcher.modelarts.distributed import DistEnv, dist_env
from launcher.modelarts.msrun import log_dir, msrun_argv, script_words
from launcher.modelarts.platform import detect_platform
from launcher.run.activate import run_bash_program

JOB = "ma-job-0f1e"
HOSTS = f"{JOB}-worker-0.{JOB},{JOB}-worker-1.{JOB}"
LAYOUT = "--master_port=6060 --node_rank={rank} --log_dir=/logs --join=True --cluster_time_out=600"


def derive(environ: dict[str, str]) -> DistEnv:
    return dist_env(environ, detect_platform(environ))


def v2(index: int, **extra: str) -> dict[str, str]:
    return {
        "MA_VJ_NAME": JOB,
        "VC_TASK_INDEX": str(index),
        "MA_NUM_HOSTS": "2",
        "VC_WORKER_HOSTS": HOSTS,
        **extra,
    }


def test_single_node_uses_the_loopback_scheduler() -> None:
    for environ in ({}, {"MA_VJ_NAME": JOB, "VC_WORKER_HOSTS": f"{JOB}-worker-0.{JOB}"}):
        argv = msrun_argv(["msrun"], ["train.py", "--lr", "1"], derive(environ), workers=8, logs="/logs")
        assert " ".join(argv) == (
            "msrun --worker_num=8 --local_worker_num=8 --master_addr=127.0.0.1 "
            + LAYOUT.format(rank=0)
            + " train.py --lr 1"
        )


@pytest.mark.parametrize("index", [0, 1])
def test_several_nodes_meet_at_the_first_worker(index: int) -> None:
    argv = msrun_argv(
        ["msrun"], ["train.py"], derive(v2(index)), workers=4, logs="/logs", extra=["--bind_core=True"]
    )
    assert " ".join(argv) == (
        f"msrun --worker_num=8 --local_worker_num=4 --master_addr={JOB}-worker-0.{JOB} "
        + LAYOUT.format(rank=index)
        + " --bind_core=True train.py"
    )


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["train.py", "-x"], ["train.py", "-x"]),
        (["python3", "-u", "train.py", "-x"], ["train.py", "-x"]),
        (["/env/bin/python", "-m", "pkg.train", "-x"], ["python", "-m", "pkg.train", "-x"]),
        (["-m", "pkg"], ["python", "-m", "pkg"]),
        (["pytest", "-q", "t.py"], ["pytest", "-q", "t.py"]),
    ],
)
def test_script_words(words: list[str], expected: list[str]) -> None:
    assert script_words(words) == expected


@pytest.mark.parametrize(
    ("words", "text"),
    [
        ([], "--msrun needs a training script"),
        (["-m"], "-m needs a module name"),
        (["python", "-c", "pass"], "cannot hand 'python -c' to msrun"),
        (["bash", "run.sh"], "msrun starts every worker as `python bash …`"),
    ],
)
def test_what_msrun_cannot_start_is_a_usage_error(words: list[str], text: str) -> None:
    with pytest.raises(UsageError, match=text.replace("(", r"\(").replace("?", r"\?")):
        script_words(words)


def test_log_dir() -> None:
    assert (
        log_dir({"MA_LOG_DIR": "/home/ma-user/modelarts/log/"}, "/w") == "/home/ma-user/modelarts/log/msrun"
    )
    assert log_dir({}, "/home/ma-user/") == "/home/ma-user/msrun_log"
    assert log_dir({"MA_LOG_DIR": "relative"}, "/w") == "/w/msrun_log"


def _plan(tmp_path: Path, environ: dict[str, str], **kw: object):  # type: ignore[no-untyped-def]
    env = make_env(tmp_path / "env")
    dev = tmp_path / "dev"
    dev.mkdir(exist_ok=True)
    kw.setdefault("command", ("train.py", "--x"))
    request = Request(prefix=str(env), workdir=str(tmp_path), msrun=True, **kw)  # type: ignore[arg-type]
    base = {"PATH": "/usr/bin:/bin", "MA_LAUNCH_DEVICE_ROOT": str(dev), **environ}
    return build_plan(request, base, str(tmp_path), script_runner=run_bash_program)


def test_plan_workers_from_ma_num_gpus_npus_or_one(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {"MA_NUM_GPUS": "4", "ASCEND_VISIBLE_DEVICES": "not looked at"})
    python = str(tmp_path / "env" / "bin" / "python")
    assert plan.argv[:5] == (
        python,
        "-m",
        "mindspore.parallel.cluster.run",
        "--worker_num=4",
        "--local_worker_num=4",
    )
    assert plan.argv[-2:] == ("train.py", "--x")
    plan = _plan(tmp_path, {"ASCEND_VISIBLE_DEVICES": "0-1", "CUDA_VISIBLE_DEVICES": "0,1,2"})
    assert "--local_worker_num=2" in plan.argv  # NPUs only: GPUs are not msrun's workers
    assert any("2 worker(s) here (2 NPUs visible (ASCEND_VISIBLE_DEVICES=0-1))" in d for d in plan.decisions)
    for name in ("davinci0", "davinci1", "davinci10", "davinci_manager"):
        (tmp_path / "dev" / name).touch()
    assert "--local_worker_num=3" in _plan(tmp_path, {}).argv
    for name in ("davinci0", "davinci1", "davinci10"):
        (tmp_path / "dev" / name).unlink()
    plan = _plan(tmp_path, {})
    assert "--local_worker_num=1" in plan.argv
    assert any(f"the full logs are in {tmp_path}/msrun_log" in d for d in plan.decisions)


def test_plan_uses_the_envs_msrun_and_passes_msrun_args(tmp_path: Path) -> None:
    script = write_exe(tmp_path / "env" / "bin" / "msrun", "#!/bin/sh\n")
    plan = _plan(tmp_path, {}, msrun_args=("--bind_core=True",))
    assert plan.argv[0] == str(script)
    assert plan.argv[-3:] == ("--bind_core=True", "train.py", "--x")


def test_msrun_refuses_torchrun_and_c(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--torchrun and --msrun do not go together"):
        _plan(tmp_path, {}, torchrun=True)
    with pytest.raises(UsageError, match="--msrun and -c do not go together"):
        _plan(tmp_path, {}, shell_line="python train.py")


def test_msrun_options_imply_supervision_and_a_failing_stop() -> None:
    parsed = options.parse(["--msrun", "--msrun-arg", "--bind_core=True", "train.py"], {})
    run = values.run_options(parsed)
    assert (run.init, run.stop_fails) == ("always", True)
    assert values.request(parsed).msrun_args == ("--bind_core=True",)
    parsed = options.parse(["--init", "never", "train.py"], {"MA_LAUNCH_MSRUN": "1"})
    assert (values.run_options(parsed).init, values.run_options(parsed).stop_fails) == ("never", True)
    plain = values.run_options(options.parse(["train.py"], {}))
    assert (plain.init, plain.stop_fails) == ("auto", False)
    parsed = options.parse(["train.py"], {"MA_LAUNCH_MSRUN_ARG": "--a=1,--b=2"})
    assert values.request(parsed).msrun_args == ("--a=1", "--b=2")
