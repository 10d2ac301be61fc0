"""The platform's restart counts and the accelerator preflight, as data and in the plan: what is visible
(variables and device nodes of a device directory of the test's own), the warnings, ``--strict-lint``, the
explanation and the JSON plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pytest
from condakit import make_env

from launcher.core.build import build_plan
from launcher.core.request import Request
from launcher.modelarts.devices import preflight, visible
from launcher.modelarts.distributed import dist_env
from launcher.modelarts.platform import LOCAL
from launcher.modelarts.restarts import Restarts, restarts
from launcher.modelarts.torchrun import processes_per_node
from launcher.render.explain import explanation
from launcher.render.planjson import plan_data, plan_json
from launcher.run.activate import run_bash_program


def devices(tmp_path: Path, *names: str) -> Path:
    root = tmp_path / "dev"
    root.mkdir(exist_ok=True)
    for name in names:
        (root / name).write_text("")
    return root


def plan_for(tmp_path: Path, environ: dict[str, str], **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("workdir", str(tmp_path))
    kw.setdefault("command", ("true",))
    base = {"PATH": "/usr/bin:/bin", "MA_LAUNCH_DEVICE_ROOT": str(tmp_path / "none"), **environ}
    return build_plan(Request(**kw), base, str(tmp_path), script_runner=run_bash_program)  # type: ignore[arg-type]


# -- restarts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "schedule", "number", "text"),
    [
        ("1", "1", 0, "first start of this job (MA_PROC_START_CNT=1, MA_SCHEDULE_CNT=1)"),
        ("3", "1", 2, "restart 2 of this job (MA_PROC_START_CNT=3, MA_SCHEDULE_CNT=1)"),
        ("1", "2", 1, "restart 1 of this job (MA_PROC_START_CNT=1, MA_SCHEDULE_CNT=2)"),
        (None, "4", 3, "restart 3 of this job (MA_SCHEDULE_CNT=4)"),
        ("0", None, 0, "first start of this job (MA_PROC_START_CNT=0)"),
        (" 2 ", "x", 1, "restart 1 of this job (MA_PROC_START_CNT=2)"),
    ],
)
def test_restart_counts(start: Optional[str], schedule: Optional[str], number: int, text: str) -> None:
    pairs = (("MA_PROC_START_CNT", start), ("MA_SCHEDULE_CNT", schedule))
    environ = {k: v for k, v in pairs if v is not None}
    found = restarts(environ)
    assert found is not None and found.number == number and found.describe() == text


def test_no_or_unreadable_restart_counts() -> None:
    assert restarts({}) is None
    assert restarts({"MA_PROC_START_CNT": "²", "MA_SCHEDULE_CNT": "9" * 40}) is None
    assert restarts({"MA_PROC_START_CNT": ""}) is None


def test_restarts_in_the_explanation_and_the_json_plan(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, {"MA_PROC_START_CNT": "2", "MA_SCHEDULE_CNT": "1"})
    assert "restart 1 of this job (MA_PROC_START_CNT=2, MA_SCHEDULE_CNT=1)" in explanation(
        plan, every_variable=False
    )
    data = json.loads(plan_json(plan))
    assert data["restart"] == {"start_count": 2, "schedule_count": 1, "restart": 1}
    assert Restarts(2, 1).data() == data["restart"]
    assert plan_data(plan_for(tmp_path, {}))["restart"] is None


# -- what is visible --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "environ", "count", "variable"),
    [
        ("nvidia", {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, 4, "CUDA_VISIBLE_DEVICES"),
        ("nvidia", {"CUDA_VISIBLE_DEVICES": "0,1,-1,3"}, 2, "CUDA_VISIBLE_DEVICES"),  # ends at -1, as in CUDA
        ("nvidia", {"CUDA_VISIBLE_DEVICES": ""}, 0, "CUDA_VISIBLE_DEVICES"),
        ("nvidia", {"CUDA_VISIBLE_DEVICES": "GPU-5a3b,MIG-1"}, 2, "CUDA_VISIBLE_DEVICES"),
        ("nvidia", {"NVIDIA_VISIBLE_DEVICES": "0,1", "CUDA_VISIBLE_DEVICES": "1"}, 1, "CUDA_VISIBLE_DEVICES"),
        ("nvidia", {"NVIDIA_VISIBLE_DEVICES": "none"}, 0, "NVIDIA_VISIBLE_DEVICES"),
        ("nvidia", {"NVIDIA_VISIBLE_DEVICES": "all"}, 8, None),  # all: the device nodes say how many
        ("nvidia", {}, 8, None),
        ("davinci", {"ASCEND_VISIBLE_DEVICES": "0-3,6"}, 5, "ASCEND_VISIBLE_DEVICES"),
        ("davinci", {"ASCEND_RT_VISIBLE_DEVICES": "0,1", "ASCEND_VISIBLE_DEVICES": "0-7"}, 2,
         "ASCEND_RT_VISIBLE_DEVICES"),
        ("davinci", {}, 8, None),
    ],
)  # fmt: skip
def test_visible_accelerators(
    tmp_path: Path, stem: str, environ: dict[str, str], count: int, variable: Optional[str]
) -> None:
    root = devices(tmp_path, *(f"{stem}{i}" for i in range(8)), f"{stem}ctl", f"{stem}_manager")
    seen = visible(environ, str(root))
    assert seen is not None and (seen.count, seen.variable, seen.nodes) == (count, variable, 8)
    assert seen.kind == ("gpu" if stem == "nvidia" else "npu")


def test_gpus_win_when_both_kinds_are_there(tmp_path: Path) -> None:
    root = devices(tmp_path, "nvidia0", "davinci0", "davinci1")
    seen = visible({}, str(root))
    assert seen is not None and (seen.kind, seen.count) == ("gpu", 1)
    seen = visible({"CUDA_VISIBLE_DEVICES": ""}, str(root))
    assert seen is not None and (seen.kind, seen.count) == ("npu", 2)  # no GPU visible: the NPUs count


def test_npu_device_nodes_and_nothing_at_all(tmp_path: Path) -> None:
    root = devices(tmp_path, "davinci0", "davinci1", "davinci_manager", "hisi_hdc")
    seen = visible({}, str(root))
    assert seen is not None and (seen.kind, seen.count) == ("npu", 2)
    assert seen.describe() == f"2 NPUs visible ({root}/davinciN nodes)"
    assert visible({}, str(tmp_path / "empty")) is None
    assert visible({"ASCEND_VISIBLE_DEVICES": "3-1"}, str(tmp_path / "empty")) is None


# -- the warnings -----------------------------------------------------------------------------------------


def test_preflight_warnings(tmp_path: Path) -> None:
    root = devices(tmp_path, *(f"nvidia{i}" for i in range(4)))
    environ = {"MA_LAUNCH_DEVICE_ROOT": str(root), "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}
    found = preflight(environ, gpus=8, nproc=2)
    assert [(w.code, w.message) for w in found] == [
        (
            "devices-listed",
            "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 lists 8 devices but there are only 4 nvidiaN device nodes",
        ),
        (
            "nproc-visible",
            "torchrun will start 2 processes on this node but 8 GPUs visible (CUDA_VISIBLE_DEVICES=0,1,2,3,4,"
            "5,6,7): accelerators would stay idle",
        ),
    ]
    assert found[1].hint == "pass --torchrun-arg=--nproc_per_node=8 or make 2 accelerators visible"
    narrowed = preflight({"MA_LAUNCH_DEVICE_ROOT": str(root), "CUDA_VISIBLE_DEVICES": "0"}, gpus=4, nproc=4)
    assert [w.message for w in narrowed] == [
        "MA_NUM_GPUS=4 but 1 GPU visible (CUDA_VISIBLE_DEVICES=0)",
        "torchrun will start 4 processes on this node but 1 GPU visible (CUDA_VISIBLE_DEVICES=0): processes "
        "would share accelerators",
    ]
    assert preflight({"MA_LAUNCH_DEVICE_ROOT": str(root)}, gpus=4, nproc=4) == []
    assert preflight({"MA_LAUNCH_DEVICE_ROOT": str(tmp_path / "none")}, gpus=8, nproc=8) == []


def test_torchrun_processes_per_node() -> None:
    dist = dist_env({"MA_NUM_GPUS": "8"}, LOCAL)
    assert processes_per_node(dist, ()) == 8
    assert processes_per_node(dist, ("--nproc_per_node=2",)) == 2
    assert processes_per_node(dist, ("--nproc-per-node", "4", "--max_restarts=0")) == 4
    assert processes_per_node(dist, ("--nproc_per_node=2", "--nproc_per_node", "3")) == 3
    assert processes_per_node(dist, ("--nproc_per_node=auto",)) is None
    assert processes_per_node(dist, ("--nproc_per_node",)) == 8


def test_preflight_in_the_plan_and_under_strict_lint(tmp_path: Path) -> None:
    root = devices(tmp_path, "nvidia0", "nvidia1")
    environ = {"MA_LAUNCH_DEVICE_ROOT": str(root), "MA_NUM_GPUS": "8"}
    plan = plan_for(tmp_path, environ)
    assert plan.problems == ()
    assert plan.warnings == (
        f"[gpus-visible] MA_NUM_GPUS=8 but 2 GPUs visible ({root}/nvidiaN nodes) (hint: make the job's "
        "accelerators visible (do not narrow the visible devices in the image or the boot command), or "
        "choose a flavor with that many)",
    )
    strict = plan_for(tmp_path, environ, strict_lint=True)
    assert strict.exit_code == 78
    assert strict.problems[0].message == (
        f"preflight [gpus-visible]: MA_NUM_GPUS=8 but 2 GPUs visible ({root}/nvidiaN nodes)"
    )
    torchrun = plan_for(tmp_path, {**environ, "MA_NUM_GPUS": "2"}, torchrun=True, command=("train.py",),
                        torchrun_args=("--nproc_per_node=4",))  # fmt: skip
    assert [w.split("]")[0] for w in torchrun.warnings] == ["[nproc-visible"]


def test_the_envs_own_variables_count(tmp_path: Path) -> None:
    """An env that narrows CUDA_VISIBLE_DEVICES in its activation is what the program sees."""
    env = make_env(tmp_path / "env", state={"CUDA_VISIBLE_DEVICES": "0"})
    root = devices(tmp_path, "nvidia0", "nvidia1")
    plan = plan_for(tmp_path, {"MA_LAUNCH_DEVICE_ROOT": str(root), "MA_NUM_GPUS": "2"}, prefix=str(env))
    assert [w.split("]")[0] for w in plan.warnings] == ["[gpus-visible"]
    assert "1 GPU visible (CUDA_VISIBLE_DEVICES=0)" in plan.warnings[0]
