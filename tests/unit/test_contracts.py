"""The plan's three consumers in-process, not only through subprocesses: the JSON plan (its documented
keys and values), the baked boot script (its exact shape), and the executor (with ``execve`` faked, so the
test process survives and sees exactly what would be exec'd)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from condakit import make_env, write_exe

from launcher.core.build import build_plan
from launcher.core.plan import LaunchPlan
from launcher.core.request import Request
from launcher.errors import CommandNotFound
from launcher.render.bake import bake_script
from launcher.render.planjson import plan_json
from launcher.render.shells import POSIX
from launcher.run import execute
from launcher.run.activate import run_bash_program

DOCUMENTED_KEYS = {
    "version", "argv", "program", "is_python", "workdir", "env", "env_rule", "env_reason", "set", "unset",
    "changes", "platform", "distributed", "ld_library_path", "decisions", "warnings", "problems",
    "exit_code", "shell", "line", "restart",
}  # fmt: skip


def plan_in(tmp_path: Path, *command: str, **environ: str) -> LaunchPlan:
    env_dir = make_env(tmp_path / "envs" / "py", state={"STAGE": "train"})
    write_exe(env_dir / "bin" / "train", "#!/bin/sh\nexit 0\n")
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    base = {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64", **environ}
    request = Request(command=command, prefix=str(env_dir), workdir=str(work), ld_mode="prefix")
    return build_plan(request, base, str(tmp_path), script_runner=run_bash_program)


def test_json_plan_has_the_documented_keys_and_values(tmp_path: Path) -> None:
    plan = plan_in(tmp_path, "train", "--lr", "0.1", MY_TOKEN="s3cr3t-value")  # noqa: S106 - a fake secret
    data = json.loads(plan_json(plan, shell="sh", dialect=POSIX))
    assert set(data) == DOCUMENTED_KEYS
    env_dir = str(tmp_path / "envs" / "py")
    assert data["version"] == 1 and data["exit_code"] == 0 and data["problems"] == []
    assert data["argv"] == ["train", "--lr", "0.1"] and data["program"] == f"{env_dir}/bin/train"
    assert data["env"] == {"name": "py", "prefix": env_dir, "root": str(tmp_path)}
    assert data["env_rule"] == "prefix" and data["workdir"] == str(tmp_path / "work")
    assert data["set"]["STAGE"] == "train" and data["set"]["PATH"].startswith(f"{env_dir}/bin:")
    assert data["set"]["LD_LIBRARY_PATH"] == f"{env_dir}/lib:/usr/local/nvidia/lib64"
    assert data["ld_library_path"]["mode"] == "prefix" and data["ld_library_path"]["added"] == [
        f"{env_dir}/lib"
    ]
    assert {"name": "STAGE", "value": "train", "source": f"{env_dir}/conda-meta/state"} in data["changes"]
    assert data["platform"] == {"kind": "local", "evidence": []} and data["distributed"] is None
    assert data["restart"] is None  # no MA_PROC_START_CNT / MA_SCHEDULE_CNT
    assert data["shell"] == "sh" and data["line"].startswith("cd ")
    assert "s3cr3t-value" not in json.dumps(data)  # the inherited secret is masked in the line too


def test_json_plan_of_a_launch_that_cannot_start(tmp_path: Path) -> None:
    data = json.loads(plan_json(plan_in(tmp_path, "no-such-program-xyz")))
    assert data["exit_code"] == 127 and data["problems"][0]["exit_code"] == 127
    assert "no-such-program-xyz" in data["problems"][0]["message"] and data["program"] is None


def test_baked_script_shape(tmp_path: Path) -> None:
    plan = plan_in(tmp_path, "train", "--lr", "0.1")
    text = bake_script(plan, version="9.9", command_line=["bake", "--", "train", "--lr", "0.1"])
    lines = text.splitlines()
    assert lines[0] == "#!/bin/sh" and text.endswith('"$@"\n')
    assert all(line.startswith("#") for line in lines[:-1])
    body = lines[-1]
    assert body.startswith(f"cd {tmp_path / 'work'} && exec env ")
    assert f'PATH={tmp_path}/envs/py/bin"${{PATH:+:$PATH}}"' in body  # the boot-time PATH is kept
    assert body.endswith(f'{tmp_path}/envs/py/bin/train --lr 0.1 "$@"')
    assert "# made with: ma-launch bake -- train --lr 0.1" in lines


def test_baking_a_failing_plan_raises_its_problem(tmp_path: Path) -> None:
    with pytest.raises(CommandNotFound):
        bake_script(plan_in(tmp_path, "no-such-program-xyz"), version="9.9", command_line=[])


class Exec(Exception):
    """Raised by the fake execve, carrying what would have been exec'd."""

    def __init__(self, path: str, argv: Sequence[str], environ: Mapping[str, str]) -> None:
        super().__init__(path)
        self.path, self.argv, self.environ = path, list(argv), dict(environ)


def test_executor_execs_the_resolved_file_with_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_in(tmp_path, "train", "--lr", "0.1")
    calls: list[str] = []

    def fake_execve(path: str, argv: Sequence[str], environ: Mapping[str, str]) -> None:
        raise Exec(path, argv, environ)

    monkeypatch.setattr(os, "execve", fake_execve)
    monkeypatch.setattr(os, "chdir", calls.append)
    monkeypatch.setattr(execute, "prepare_process", lambda *_a: calls.append("prepared"))
    with pytest.raises(Exec) as done:
        execute.exec_plan(plan)
    assert calls == [str(tmp_path / "work"), "prepared"]  # chdir first, then the signal state, then exec
    assert done.value.path == f"{tmp_path}/envs/py/bin/train"
    assert done.value.argv == ["train", "--lr", "0.1"]  # argv[0] as given
    assert done.value.environ == dict(plan.environ) and done.value.environ["STAGE"] == "train"


def test_executor_refuses_a_plan_with_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_in(tmp_path, "no-such-program-xyz")
    monkeypatch.setattr(os, "execve", lambda *_a: pytest.fail("exec'd a plan with problems"))
    monkeypatch.setattr(os, "chdir", lambda *_a: pytest.fail("changed directory for a plan with problems"))
    with pytest.raises(CommandNotFound):
        execute.exec_plan(plan)


def test_executor_maps_a_failed_exec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_in(tmp_path, "train")

    def vanished(*_args: object) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(os, "execve", vanished)
    monkeypatch.setattr(os, "chdir", lambda *_a: None)
    monkeypatch.setattr(execute, "prepare_process", lambda *_a: None)
    with pytest.raises(CommandNotFound) as error:
        execute.exec_plan(plan)
    assert error.value.exit_code == 127
