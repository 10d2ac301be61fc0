"""Two nodes for real, on one machine: two ``ma-launch --torchrun train.py`` processes, each PID 1 of its own
PID namespace with its own host name (UTS namespace) and a private ``/etc/hosts`` (mount namespace) that
resolves the workers' DNS names in ``VC_WORKER_HOSTS`` to loopback addresses (127.0.0.1 and 127.0.0.2, so
the nodes' addresses and names differ as pods' do). Each gets the platform's variables for its node; torchrun
meets through a real c10d rendezvous and the four ranks run a gloo all-reduce (torch CPU).

Then the faults: SIGTERM to node 1 mid-run, and SIGKILL of one worker on node 0. After each, nothing of the
job is left in either namespace, and each node's summary says what happened.

Needs root, unshare and torch; skips locally without them, fails under CI.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import textwrap
import time
import uuid
from pathlib import Path
from typing import Optional

import pytest
from condakit import REAL_PYTHON, make_env
from launchkit import REPO, clean_env, torch_path
from needs import need, need_root
from supervisekit import (  # noqa: F401 - _no_leftovers: autouse fixture
    _no_leftovers,
    child_of,
    need_pid_namespace,
    proc_table,
    start,
    wait_for,
    with_token,
)

pytestmark = pytest.mark.slow

JOB = "modelarts-job-2n0d3"
HOSTS = [f"{JOB}-worker-{i}.{JOB}" for i in (0, 1)]
ADDRESSES = ["127.0.0.1", "127.0.0.2"]
GRACE = 20.0

TRAIN = textwrap.dedent(
    """
    import datetime, os, sys, time
    import torch, torch.distributed as dist
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, size = dist.get_rank(), dist.get_world_size()
    total = torch.tensor([rank + 1.0])
    dist.all_reduce(total)
    sys.stdout.write(f"rank {rank} of {size}: sum {total.item()}\\n")
    if os.environ["TRAIN_MODE"] == "loop":
        with open(os.path.join(os.environ["READY_DIR"], f"rank{rank}"), "w") as handle:
            handle.write(os.uname().nodename)
        while True:
            dist.all_reduce(torch.tensor([1.0]))
            time.sleep(0.05)
    dist.destroy_process_group()
    """
)


class Node:
    """One node: its ``unshare`` process (the supervisor is its only child, PID 1 inside) and files."""

    def __init__(self, index: int, proc: subprocess.Popen[str], summary: Path) -> None:
        self.index = index
        self.proc = proc
        self.summary = summary
        self.code: Optional[int] = None
        self.err = ""
        self.out = ""
        self.ended = 0.0

    def finish(self, timeout: float) -> None:
        self.out, self.err = self.proc.communicate(timeout=timeout)
        self.code = self.proc.returncode
        self.ended = time.monotonic()

    def summary_line(self) -> str:
        lines = [line for line in self.err.splitlines() if line.startswith("ma-launch: program ended: ")]
        assert len(lines) == 1, self.err
        return lines[0]

    def document(self) -> dict[str, object]:
        return json.loads(self.summary.read_text())  # type: ignore[no-any-return]


class Job:
    """The shared files of a two-node job: the env, the training script, the private hosts file."""

    def __init__(self, tmp_path: Path) -> None:
        need_root()
        need("unshare")
        need_pid_namespace()
        self.torch = torch_path()
        self.tmp = tmp_path
        self.env = make_env(tmp_path / "env")
        (tmp_path / "train.py").write_text(TRAIN)
        self.hosts = tmp_path / "hosts"
        self.hosts.write_text(
            f"{ADDRESSES[0]} {HOSTS[0]} worker-0 localhost\n{ADDRESSES[1]} {HOSTS[1]} worker-1\n"
        )
        self.ready = tmp_path / "ready"
        self.ready.mkdir()
        self.port = str(20000 + uuid.uuid4().int % 20000)
        self.tag = f"tok-{uuid.uuid4().hex[:12]}"

    def start(self, index: int, mode: str) -> Node:
        env = clean_env(
            self.tmp,
            MA_VJ_NAME="ma-job-2n0d3",
            VC_WORKER_HOSTS=",".join(HOSTS),
            MA_NUM_HOSTS="2",
            MA_NUM_GPUS="2",
            VC_TASK_INDEX=str(index),
            TRAIN_MODE=mode,
            READY_DIR=str(self.ready),
        )
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), self.torch])
        summary = self.tmp / f"summary-{index}.json"
        launch = [REAL_PYTHON, "-m", "launcher", "-p", str(self.env), "--master-port", self.port]
        launch += ["--grace", str(GRACE), "--summary", str(summary)]
        launch += ["--torchrun", "train.py", "--tag", f"{self.tag}-node{index}"]
        script = 'hostname "$1" && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"'
        command = ["unshare", "--uts", "--pid", "--fork", "--mount-proc", "sh", "-c", script, "sh"]
        command += [f"worker-{index}", str(self.hosts), *launch]
        proc = start(command, env=env, cwd=str(self.tmp))
        return Node(index, proc, summary)

    def both(self, mode: str) -> tuple[Node, Node]:
        return self.start(0, mode), self.start(1, mode)

    def workers(self, index: int) -> list[int]:
        """The host PIDs of node ``index``'s workers (``python -u train.py --tag …``)."""
        marker = f"train.py --tag {self.tag}-node{index}"
        return [
            pid
            for pid, (state, _, cmd) in proc_table().items()
            if marker in cmd and " -u " in cmd and "torch.distributed.run" not in cmd and state != "Z"
        ]

    def left(self) -> list[int]:
        return with_token(self.tag)


def ranks_ready(job: Job) -> bool:
    return len(list(job.ready.iterdir())) == 4


def running(job: Job) -> None:
    """All four ranks are in their training loop: ranks 0 and 1 on worker-0, 2 and 3 on worker-1 (each
    wrote its host name); the job's processes are visible from here."""
    wait_for(lambda: ranks_ready(job), timeout=180, what="four ranks running")
    hosts = {path.name: path.read_text() for path in job.ready.iterdir()}
    assert hosts == {"rank0": "worker-0", "rank1": "worker-0", "rank2": "worker-1", "rank3": "worker-1"}
    assert len(job.workers(0)) == len(job.workers(1)) == 2
    assert job.left()  # the check made after the job can see its processes


def stop(nodes: tuple[Node, ...]) -> None:
    for node in nodes:
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.communicate()


def no_sigkill_needed(node: Node) -> None:
    """The node ended within the grace: ma-launch killed nothing."""
    assert "SIGKILL" not in node.summary_line(), node.summary_line()
    assert node.document()["killed_by_ma_launch"] is False


def test_two_nodes_all_reduce(tmp_path: Path) -> None:
    job = Job(tmp_path)
    nodes = job.both("once")
    try:
        for node in nodes:
            node.finish(timeout=180)
    finally:
        stop(nodes)
    for node in nodes:
        assert node.code == 0, node.err
    lines = sorted(line for node in nodes for line in node.out.splitlines() if line.startswith("rank"))
    assert lines == [f"rank {r} of 4: sum 10.0" for r in range(4)]
    assert job.left() == []
    for node in nodes:
        assert node.summary_line().startswith("ma-launch: program ended: exit code 0, ")
        assert node.document()["reason"] == "success"
        no_sigkill_needed(node)


def test_sigterm_to_node_1_mid_run(tmp_path: Path) -> None:
    job = Job(tmp_path)
    nodes = job.both("loop")
    node0, node1 = nodes
    try:
        running(job)
        sent = time.monotonic()
        os.kill(child_of(node1.proc.pid), signal.SIGTERM)  # the platform stops node 1: its PID 1
        node1.finish(timeout=GRACE + 15)
        node0.finish(timeout=120)
    finally:
        stop(nodes)
    # node 1: torchrun stops its workers and ends 1 (its SignalException), within the grace
    assert node1.code == 1 and node1.ended - sent < GRACE, node1.err
    stopped = node1.document()
    assert (stopped["reason"], stopped["exit_code"], stopped["status"]) == ("stopped", 1, 1)
    assert stopped["stop"]["received"] == stopped["stop"]["sent"] == "SIGTERM"  # type: ignore[index]
    assert stopped["stop"]["ended_after_seconds"] < GRACE  # type: ignore[index]
    ended = r"; stop requested by SIGTERM after [0-9.]+ s: the program got SIGTERM and ended [0-9.]+ s later "
    assert re.search(ended + r"\([0-9]+% of the 20 s grace\)$", node1.summary_line())
    no_sigkill_needed(node1)
    # node 0: its workers lose their peers, torchrun notices and ends non-zero, in bounded time
    assert node0.code == 1 and node0.ended - sent < 90, node0.err
    assert node0.summary_line().startswith("ma-launch: program ended: exit code 1, ")
    assert node0.document()["reason"] == "failure"
    no_sigkill_needed(node0)
    assert job.left() == []


def test_sigkill_of_a_worker_on_node_0(tmp_path: Path) -> None:
    job = Job(tmp_path)
    nodes = job.both("loop")
    node0, node1 = nodes
    try:
        running(job)
        sent = time.monotonic()
        os.kill(job.workers(0)[0], signal.SIGKILL)
        node0.finish(timeout=120)
        node1.finish(timeout=120)
    finally:
        stop(nodes)
    for node in nodes:  # torchrun on node 0 sees its worker die, node 1's workers lose their peers
        assert node.code == 1 and node.ended - sent < 90, node.err
        assert node.summary_line().startswith("ma-launch: program ended: exit code 1, ")
        doc = node.document()
        assert doc["reason"] == "failure"
        memory = doc["memory"]
        assert memory is None or memory["oom_kills"] == 0  # type: ignore[index]  # not an OOM kill
        no_sigkill_needed(node)
    assert job.left() == []
