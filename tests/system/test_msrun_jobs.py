"""Real MindSpore jobs through ``ma-launch --msrun``: the CPU wheel's msrun, its scheduler and workers, a
real all-reduce, and what a stop or a failing worker does to the whole tree.

Needs the mindspore wheel (``.ci/run`` installs it into the CI venv; the test finds it without importing
it) and ``ip`` (msrun finds its own address with ``ip -j addr``). The fake env's ``bin/python`` is the real
interpreter, which does not see a venv's packages: the job gets mindspore's directory on PYTHONPATH. Each
test uses a port of its own and a low ``MS_NODE_TIMEOUT`` so that a failing worker is noticed quickly.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from condakit import make_env, write_exe
from launchkit import LAUNCH, clean_env
from needs import missing, need, need_root
from supervisekit import as_pid1, child_of

TRAIN = """\
import os, sys, time
import numpy as np
import mindspore as ms
from mindspore import nn, ops, Tensor
from mindspore.communication import init, get_rank, get_group_size

ms.set_device("CPU")
init()


class Sum(nn.Cell):
    def __init__(self):
        super().__init__()
        self.all_reduce = ops.AllReduce()

    def construct(self, x):
        return self.all_reduce(x)


rank, size = get_rank(), get_group_size()
total = Sum()(Tensor(np.array([rank + 1.0], dtype=np.float32))).asnumpy()[0]
sys.stdout.write(f"rank {rank} of {size}: sum {total} python {sys.executable} args {sys.argv[1:]}\\n")
sys.stdout.flush()
if "--fail" in sys.argv and rank == 1:
    raise RuntimeError("rank 1 fails on purpose")
if "--hold" in sys.argv:
    open(os.path.join(os.environ["READY_DIR"], f"rank{rank}"), "w").close()
    time.sleep(600)
"""
MARK = "MSRUN_TEST_MARK"


def mindspore_path() -> str:
    """The directory mindspore is installed in (found, not imported), for the job's PYTHONPATH."""
    spec = importlib.util.find_spec("mindspore")
    if spec is None or spec.origin is None:
        missing("the mindspore wheel is not installed (.ci/run installs mindspore==2.10.0)")
    return str(Path(spec.origin).parent.parent)


class Job:
    """A fake conda env whose ``python`` comes first on PATH, the training script, and the job's
    environment (a decoy ``python`` later on PATH that must never run)."""

    def __init__(self, tmp_path: Path, port: int, **extra: str) -> None:
        need("ip")
        site = mindspore_path()
        self.env_dir = make_env(tmp_path / "env")
        self.decoy = write_exe(tmp_path / "decoy" / "python", "#!/bin/sh\necho decoy python >&2\nexit 99\n")
        (tmp_path / "train.py").write_text(TRAIN)
        self.ready = tmp_path / "ready"
        self.ready.mkdir()
        self.mark = uuid.uuid4().hex
        self.port = port
        self.env = clean_env(tmp_path, MS_NODE_TIMEOUT="15", READY_DIR=str(self.ready), **extra)
        self.env[MARK] = self.mark
        self.env["PATH"] = self.env["PATH"] + os.pathsep + str(self.decoy.parent)
        self.env["PYTHONPATH"] += os.pathsep + site

    def argv(self, *script_args: str, grace: float = 25) -> list[str]:
        port = f"--master-port={self.port}"
        return [
            *LAUNCH,
            "--grace",
            str(grace),
            "-p",
            str(self.env_dir),
            port,
            "--msrun",
            "train.py",
            *script_args,
        ]

    def processes(self) -> list[int]:
        """Live processes of this job: every process whose environment carries the job's mark."""
        found = []
        needle = f"{MARK}={self.mark}".encode()
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                data = Path(f"/proc/{name}/environ").read_bytes()
                state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if needle in data.split(b"\0") and state not in (b"Z", b"X"):
                found.append(int(name))
        return found


def rank_lines(stdout: str) -> list[str]:
    return sorted(line for line in stdout.splitlines() if line.startswith("rank "))


@pytest.mark.slow
def test_two_worker_all_reduce(tmp_path: Path) -> None:
    job = Job(tmp_path, 29741, MA_NUM_GPUS="2", MA_LOG_DIR=str(tmp_path / "logs"))
    start = time.monotonic()
    result = subprocess.run(job.argv("--lr", "1"), env=job.env, capture_output=True, text=True, timeout=240)
    took = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-3000:]
    python = job.env_dir / "bin" / "python"
    assert rank_lines(result.stdout) == [
        f"rank 0 of 2: sum 3.0 python {python} args ['--lr', '1']",
        f"rank 1 of 2: sum 3.0 python {python} args ['--lr', '1']",
    ]
    logs = tmp_path / "logs" / "msrun"
    assert "rank 0 of 2" in (logs / "worker_0.log").read_text()
    assert (logs / "scheduler.log").exists()
    assert f"the full logs are in {logs}" in result.stderr
    assert "program ended: exit code 0" in result.stderr
    assert "decoy" not in result.stderr + result.stdout
    print(f"msrun 2-worker job: {took:.1f} s")


@pytest.mark.slow
def test_a_failing_worker_fails_the_job(tmp_path: Path) -> None:
    job = Job(tmp_path, 29742, MA_NUM_GPUS="2")
    start = time.monotonic()
    result = subprocess.run(job.argv("--fail"), env=job.env, capture_output=True, text=True, timeout=240)
    took = time.monotonic() - start
    assert result.returncode != 0, result.stderr[-3000:]
    assert "RuntimeError: rank 1 fails on purpose" in result.stdout
    assert "program ended: exit code 1" in result.stderr
    assert job.processes() == []
    print(f"msrun job with a failing worker: status {result.returncode} after {took:.1f} s")


@contextmanager
def running(job: Job, *script_args: str, grace: float, pid1: bool = False) -> Iterator[subprocess.Popen[str]]:
    """The job started with ``--hold`` (as PID 1 of a new PID namespace with ``pid1``), once every worker
    has done its all-reduce; killed at the end."""
    argv = job.argv("--hold", *script_args, grace=grace)
    proc = subprocess.Popen(
        as_pid1(argv) if pid1 else argv,
        env=job.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while len(list(job.ready.iterdir())) < 2:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the workers never got ready"
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        for pid in job.processes():
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "pid1"), [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)]
)
def test_a_stop_ends_every_msrun_process_within_the_grace(
    tmp_path: Path, sig: signal.Signals, pid1: bool
) -> None:
    """msrun's workers run in sessions of their own (a TERM to msrun leaves them running) and msrun
    exits 0 on SIGINT: under ma-launch (a child, or PID 1 as in a container) every process ends within
    the grace and the status is the signal's."""
    job = Job(tmp_path, {signal.SIGTERM: 29743, signal.SIGINT: 29744}[sig] + 3 * pid1, MA_NUM_GPUS="2")
    grace = 8.0
    with running(job, grace=grace, pid1=pid1) as proc:
        assert len(job.processes()) >= 4  # ma-launch, msrun, the scheduler, two workers (and tails)
        start = time.monotonic()
        os.kill(child_of(proc.pid) if pid1 else proc.pid, sig)
        _, err = proc.communicate(timeout=grace + 10)
        took = time.monotonic() - start
        left = job.processes()
    assert left == []
    assert took < grace + 2, err[-3000:]
    assert proc.returncode == (128 + sig if pid1 else -sig), err[-3000:]
    summary = [line for line in err.splitlines() if "program ended" in line]
    assert len(summary) == 1
    if sig == signal.SIGINT:
        assert "it exited 0 after SIGINT: ending with SIGINT's status, as a stopped job" in summary[0]
    print(f"{sig.name}{' (PID 1)' if pid1 else ''}: every process gone after {took:.2f} s; {summary[0]}")


# ---- two nodes: two network namespaces joined by a veth pair


@contextmanager
def two_hosts(tag: str) -> Iterator[tuple[str, str, str, str]]:
    """Two network namespaces joined by a veth pair, with the addresses ``198.18.0.1`` and ``198.18.0.2``
    (the benchmarking range, RFC 2544), which exist only inside those namespaces; removed at the end."""
    need_root()
    ip = need("ip")
    names = (f"ma-ms-{tag}-0", f"ma-ms-{tag}-1")
    links = (f"vms{tag}0", f"vms{tag}1")
    addresses = ("198.18.0.1", "198.18.0.2")
    try:
        for name in names:
            subprocess.run([ip, "netns", "add", name], check=True, capture_output=True)
        subprocess.run(
            [ip, "link", "add", links[0], "type", "veth", "peer", "name", links[1]],
            check=True,
            capture_output=True,
        )
        for name, link, address in zip(names, links, addresses):
            subprocess.run([ip, "link", "set", link, "netns", name], check=True, capture_output=True)
            for step in (["addr", "add", f"{address}/24", "dev", link], ["link", "set", link, "up"]):
                subprocess.run([ip, "-n", name, *step], check=True, capture_output=True)
            subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
    except subprocess.CalledProcessError as error:
        for name in names:
            subprocess.run([ip, "netns", "delete", name], capture_output=True)
        missing(f"cannot make network namespaces: {error.stderr!r}")
    try:
        yield (*names, *addresses)
    finally:
        for name in names:
            subprocess.run([ip, "netns", "delete", name], capture_output=True)


@pytest.mark.slow
def test_two_nodes_in_two_network_namespaces(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:4]
    with two_hosts(tag) as (ns0, ns1, addr0, addr1):
        platform = {
            "MA_VJ_NAME": "ma-job-msrun-test",
            "MA_NUM_HOSTS": "2",
            "VC_WORKER_HOSTS": f"{addr0},{addr1}",
            "MA_NUM_GPUS": "1",
        }
        jobs, procs = [], []
        start = time.monotonic()
        for index, ns in enumerate((ns0, ns1)):
            node = tmp_path / f"node{index}"
            node.mkdir()
            job = Job(node, 29745, VC_TASK_INDEX=str(index), MA_LOG_DIR=str(node / "logs"), **platform)
            jobs.append(job)
            procs.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", ns, *job.argv("--node", str(index))],
                    env=job.env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        outs = []
        try:
            for proc in procs:
                outs.append(proc.communicate(timeout=240))
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        took = time.monotonic() - start
    for proc, (_out, err) in zip(procs, outs):
        assert proc.returncode == 0, err[-3000:]
    python0, python1 = (job.env_dir / "bin" / "python" for job in jobs)
    assert rank_lines(outs[0][0]) == [f"rank 0 of 2: sum 3.0 python {python0} args ['--node', '0']"]
    assert rank_lines(outs[1][0]) == [f"rank 1 of 2: sum 3.0 python {python1} args ['--node', '1']"]
    assert f"--master_addr={addr0}" in outs[1][1] and "--node_rank=1" in outs[1][1]
    assert (tmp_path / "node0" / "logs" / "msrun" / "scheduler.log").exists()
    assert not (tmp_path / "node1" / "logs" / "msrun" / "scheduler.log").exists()
    print(f"msrun two-node job: {took:.1f} s")
