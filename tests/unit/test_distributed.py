from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from launchkit import free_port
from needs import missing

from launcher.errors import ConfigError, UsageError
from launcher.modelarts.distributed import VARIABLES, DistEnv, dist_env
from launcher.modelarts.platform import detect_platform
from launcher.modelarts.torchrun import DEFAULT_RDZV_ID, job_id, torchrun_argv

JOB = "ma-job-0f1e"
HOSTS = f"{JOB}-worker-0.{JOB},{JOB}-worker-1.{JOB}"


def v2_env(index: int, **extra: str) -> dict[str, str]:
    env = {
        "MA_VJ_NAME": JOB,
        "MA_JOB_DIR": "/home/ma-user/modelarts/user-job-dir",
        "VC_TASK_INDEX": str(index),
        "MA_NUM_HOSTS": "2",
        "VC_WORKER_NUM": "2",
        "VC_WORKER_HOSTS": HOSTS,
        "MA_NUM_GPUS": "8",
    }
    env.update(extra)
    return env


def derive(environ: dict[str, str], **kw: object) -> DistEnv:
    return dist_env(environ, detect_platform(environ), **kw)  # type: ignore[arg-type]


def test_v2_node1() -> None:
    d = derive(v2_env(1))
    assert d.set == {
        "MASTER_ADDR": f"{JOB}-worker-0.{JOB}",
        "MASTER_PORT": "6060",
        "NNODES": "2",
        "NODE_RANK": "1",
        "NPROC_PER_NODE": "8",
    }
    assert (d.nnodes, d.node_rank, d.nproc_per_node, d.master_port) == (2, 1, 8, 6060)
    assert d.master_addr == f"{JOB}-worker-0.{JOB}"
    assert d.sources["MASTER_ADDR"] == "first host of VC_WORKER_HOSTS"
    assert d.sources["NNODES"] == "MA_NUM_HOSTS"
    assert d.sources["NODE_RANK"] == "VC_TASK_INDEX"
    assert d.sources["NPROC_PER_NODE"] == "MA_NUM_GPUS"
    assert "WORLD_SIZE" not in d.set and "RANK" not in d.set
    assert not d.standalone


def test_world_per_node() -> None:
    d = derive(v2_env(1), world_per_node=True)
    assert d.set["WORLD_SIZE"] == "2"
    assert d.set["RANK"] == "1"
    assert "WORLD_SIZE" in d.sources


def test_world_per_node_keeps_user_rank() -> None:
    d = derive(v2_env(1, RANK="7", WORLD_SIZE="9"), world_per_node=True)
    assert "RANK" not in d.set and "WORLD_SIZE" not in d.set
    assert d.sources["RANK"] == "already set"


def test_user_values_are_never_overridden_but_are_effective() -> None:
    env = v2_env(1, MASTER_ADDR="10.0.0.1", MASTER_PORT="29500", NPROC_PER_NODE="4")
    d = derive(env, master_port=7000)
    assert "MASTER_ADDR" not in d.set and "MASTER_PORT" not in d.set and "NPROC_PER_NODE" not in d.set
    assert d.master_addr == "10.0.0.1"
    assert d.master_port == 29500
    assert d.nproc_per_node == 4
    assert d.sources["MASTER_ADDR"] == "already set"
    assert d.set["NODE_RANK"] == "1"


def test_master_port_argument() -> None:
    d = derive(v2_env(0), master_port=7000)
    assert d.set["MASTER_PORT"] == "7000"
    assert d.master_port == 7000


def test_dns_fallback() -> None:
    env = v2_env(0, MA_HJ_NAME="hj", MA_NAMESPACE="ns")
    del env["VC_WORKER_HOSTS"]
    d = derive(env)
    assert d.master_addr == f"{JOB}-worker-0.hj.ns.svc.cluster.local"


def test_ma_task_index() -> None:
    env = v2_env(0)
    del env["VC_TASK_INDEX"]
    env["MA_TASK_INDEX"] = "1"
    d = derive(env)
    assert d.node_rank == 1
    assert d.sources["NODE_RANK"] == "MA_TASK_INDEX"


def test_v1() -> None:
    env = {
        "DLS_TASK_INDEX": "2",
        "DLS_TASK_NUMBER": "3",
        "BATCH_JOB_ID": "job-v1",
        "BATCH_CUSTOM0_HOSTS": "192.168.0.5:6666",
    }
    d = derive(env)
    assert d.set == {
        "MASTER_ADDR": "192.168.0.5",
        "MASTER_PORT": "6060",
        "NNODES": "3",
        "NODE_RANK": "2",
        "NPROC_PER_NODE": "1",
    }
    assert job_id(env) == "job-v1"


def test_v1_ipv6_and_no_port() -> None:
    base = {"DLS_TASK_INDEX": "0", "DLS_TASK_NUMBER": "2"}
    assert derive({**base, "BATCH_CUSTOM0_HOSTS": "[fd00::1]:80"}).master_addr == "fd00::1"
    assert derive({**base, "BATCH_CUSTOM0_HOSTS": "worker0"}).master_addr == "worker0"


def test_local_sets_nothing() -> None:
    d = derive({})
    assert d.set == {}
    assert (d.nnodes, d.node_rank, d.nproc_per_node, d.master_addr, d.master_port) == (
        1,
        0,
        1,
        "127.0.0.1",
        6060,
    )
    assert d.standalone
    assert d.notes
    d = derive({"MA_NUM_GPUS": "4"})
    assert d.set == {}
    assert d.nproc_per_node == 4


def test_single_node_v2_without_hosts() -> None:
    d = derive({"MA_VJ_NAME": "j", "MA_NUM_HOSTS": "1", "VC_TASK_INDEX": "0", "MA_NUM_GPUS": "0"})
    assert d.set["MASTER_ADDR"] == "127.0.0.1"
    assert d.nproc_per_node == 1
    assert any("MA_NUM_GPUS" in n for n in d.notes)
    assert d.standalone


def test_empty_value_counts_as_unset() -> None:
    d = derive(v2_env(0, MASTER_ADDR=""))
    assert d.set["MASTER_ADDR"] == f"{JOB}-worker-0.{JOB}"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"VC_TASK_INDEX": "2"}, ["2", "not below", "MA_NUM_HOSTS"]),
        ({"VC_TASK_INDEX": "-1"}, ["VC_TASK_INDEX"]),
        ({"VC_TASK_INDEX": "one"}, ["VC_TASK_INDEX", "'one'"]),
        ({"MA_NUM_HOSTS": "3", "VC_WORKER_NUM": "3"}, ["VC_WORKER_HOSTS", "2 host(s)", "3 nodes"]),
        ({"MA_NUM_HOSTS": "0", "VC_WORKER_NUM": "0"}, ["MA_NUM_HOSTS", "at least 1"]),
        ({"VC_WORKER_NUM": "4"}, ["MA_NUM_HOSTS", "VC_WORKER_NUM", "disagree"]),
        ({"MA_TASK_INDEX": "0"}, ["VC_TASK_INDEX", "MA_TASK_INDEX", "disagree"]),
        ({"MA_NUM_GPUS": "x"}, ["MA_NUM_GPUS"]),
        ({"NPROC_PER_NODE": "0"}, ["NPROC_PER_NODE"]),
        ({"MASTER_PORT": "99999"}, ["99999"]),
        ({"NODE_RANK": "5"}, ["5", "already set"]),
    ],
)
def test_inconsistent(change: dict[str, str], words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        derive(v2_env(1, **change))
    for word in words:
        assert word in info.value.message
    assert info.value.hint
    assert "\n" not in info.value.message


def test_multi_node_without_master() -> None:
    with pytest.raises(ConfigError, match="master address"):
        derive({"DLS_TASK_INDEX": "0", "DLS_TASK_NUMBER": "2"})


@given(
    st.integers(min_value=1, max_value=64),
    st.data(),
    st.sets(st.sampled_from(["MASTER_ADDR", "MASTER_PORT", "NNODES", "NODE_RANK", "NPROC_PER_NODE"])),
)
def test_never_overrides(nnodes: int, data: st.DataObject, preset: set[str]) -> None:
    index = data.draw(st.integers(min_value=0, max_value=nnodes - 1))
    env = {
        "MA_VJ_NAME": JOB,
        "VC_TASK_INDEX": str(index),
        "MA_NUM_HOSTS": str(nnodes),
        "VC_WORKER_HOSTS": ",".join(f"w{i}" for i in range(nnodes)),
        "MA_NUM_GPUS": "8",
    }
    values = {"MASTER_ADDR": "m", "MASTER_PORT": "1234", "NNODES": str(nnodes), "NODE_RANK": str(index)}
    values["NPROC_PER_NODE"] = "3"
    for name in preset:
        env[name] = values[name]
    d = derive(env, world_per_node=True)
    assert not set(d.set) & set(env)
    assert set(d.set) | preset == {*values, "WORLD_SIZE", "RANK"}
    assert (d.nnodes, d.node_rank) == (nnodes, index)


# ---- torchrun


def test_torchrun_node0_and_node1() -> None:
    env0, env1 = v2_env(0), v2_env(1)
    argv0 = torchrun_argv("/env/bin/python", ["train.py", "--lr", "1"], derive(env0), job_id=job_id(env0))
    argv1 = torchrun_argv("/env/bin/python", ["train.py", "--lr", "1"], derive(env1), job_id=job_id(env1))
    common = ["/env/bin/python", "-m", "torch.distributed.run", "--nnodes", "2"]
    rdzv = ["--rdzv_id", JOB, "--rdzv_backend", "c10d", "--rdzv_endpoint", f"{JOB}-worker-0.{JOB}:6060"]
    assert argv0 == [
        *common,
        *["--node_rank", "0", "--nproc_per_node", "8", *rdzv],
        *["--rdzv_conf", "is_host=1", "train.py", "--lr", "1"],
    ]
    assert argv1 == [
        *common,
        *["--node_rank", "1", "--nproc_per_node", "8", *rdzv],
        *["--rdzv_conf", "is_host=0", "train.py", "--lr", "1"],
    ]


def test_torchrun_standalone() -> None:
    d = derive({"MA_NUM_GPUS": "2"})
    assert torchrun_argv("python", ["train.py"], d, job_id=None) == [
        *["python", "-m", "torch.distributed.run", "--standalone"],
        *["--nnodes", "1", "--nproc_per_node", "2", "train.py"],
    ]


def test_torchrun_default_id_extra_and_module() -> None:
    env = {"DLS_TASK_INDEX": "1", "DLS_TASK_NUMBER": "2", "BATCH_CUSTOM0_HOSTS": "h:1"}
    d = derive(env)
    argv = torchrun_argv("py", ["-m", "pkg.train", "--x"], d, job_id=None, extra=["--max_restarts", "0"])
    assert argv[argv.index("--rdzv_id") + 1] == DEFAULT_RDZV_ID
    assert argv[argv.index("--rdzv_endpoint") + 1 :] == [
        "h:6060",
        "--rdzv_conf",
        "is_host=0",
        "--max_restarts",
        "0",
        "-m",
        "pkg.train",
        "--x",
    ]


def test_torchrun_strips_interpreter_and_runs_programs() -> None:
    d = derive({})
    assert torchrun_argv("py", ["python3", "-u", "a.py", "x"], d, job_id=None)[-2:] == ["a.py", "x"]
    assert torchrun_argv("py", ["/usr/bin/python", "-m", "m"], d, job_id=None)[-2:] == ["-m", "m"]
    assert torchrun_argv("py", ["bash", "run.sh"], d, job_id=None)[-3:] == ["--no-python", "bash", "run.sh"]
    with pytest.raises(UsageError):
        torchrun_argv("py", [], d, job_id=None)
    with pytest.raises(UsageError):
        torchrun_argv("py", ["-m"], d, job_id=None)
    with pytest.raises(UsageError):
        torchrun_argv("py", ["python", "-c", "pass"], d, job_id=None)


def test_torchrun_ipv6_endpoint() -> None:
    d = derive({"MA_VJ_NAME": "j", "MASTER_ADDR": "fd00::1", "MA_NUM_HOSTS": "1"})
    argv = torchrun_argv("py", ["a.py"], d, job_id="j")
    assert argv[argv.index("--rdzv_endpoint") + 1] == "[fd00::1]:6060"


@pytest.mark.slow
def test_real_torchrun_gloo(tmp_path: Path) -> None:
    # Looked up, not imported: importing torch here would load it into the test process (and without
    # numpy it warns, which pytest turns into an error).
    if importlib.util.find_spec("torch") is None:
        missing("torch is not installed")
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, torch, torch.distributed as dist
            dist.init_process_group("gloo")
            t = torch.tensor([dist.get_rank() + 1.0])
            dist.all_reduce(t)
            with open(os.path.join(os.environ["OUT"], str(dist.get_rank())), "w") as f:
                f.write(f"{dist.get_world_size()} {t.item()}")
            dist.destroy_process_group()
            """
        )
    )
    env = {"MA_VJ_NAME": "ma-job-test", "MA_NUM_HOSTS": "1", "VC_TASK_INDEX": "0", "MA_NUM_GPUS": "2"}
    env["VC_WORKER_HOSTS"] = "127.0.0.1"
    d = derive(env, master_port=free_port())
    argv = torchrun_argv(sys.executable, [str(script)], d, job_id=job_id(env))
    run_env = {**os.environ, **d.set, "OUT": str(tmp_path)}
    result = subprocess.run(argv, env=run_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "0").read_text() == "2 3.0"
    assert (tmp_path / "1").read_text() == "2 3.0"


# ---- hostile values (each was an internal error, exit 70, or a wrong result before)

COUNTS = [
    "MA_NUM_GPUS",
    "MA_NUM_HOSTS",
    "VC_WORKER_NUM",
    "DLS_TASK_NUMBER",
    "VC_TASK_INDEX",
    "MA_TASK_INDEX",
    "DLS_TASK_INDEX",
    "NNODES",
    "NODE_RANK",
    "NPROC_PER_NODE",
    "MASTER_PORT",
]


@pytest.mark.parametrize("name", COUNTS)
@pytest.mark.parametrize(
    "value",
    [
        "²",  # str.isdigit() accepts it, int() does not
        "٣",  # an Arabic-Indic three: int() reads it, but it is no count a platform writes
        "9" * 5000,  # int() refuses more than 4300 digits
        "1\n2",
    ],
)
def test_counts_that_are_not_ascii_whole_numbers(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        derive({"MA_VJ_NAME": JOB, name: value})
    assert info.value.message.startswith(f"{name}=")
    assert "\n" not in info.value.message and info.value.hint


def test_counts_within_bounds() -> None:
    assert derive({"MA_NUM_GPUS": " 0008 "}).nproc_per_node == 8
    with pytest.raises(ConfigError, match="larger than 1000000"):
        derive({"MA_NUM_GPUS": "1000001"})
    with pytest.raises(ConfigError, match="larger than 65535"):
        derive({"MASTER_PORT": "65536"})
    assert derive({"MASTER_PORT": "65535"}).master_port == 65535


@pytest.mark.parametrize("port", [0, -1, 65536, 99999])
def test_master_port_argument_out_of_range_is_a_usage_error(port: int) -> None:
    with pytest.raises(UsageError, match=f"--master-port {port} "):
        derive(v2_env(0), master_port=port)


@pytest.mark.parametrize("value", ["[]:80", "[fd00::1", ":80", " , "])
def test_v1_hosts_without_a_host_name(value: str) -> None:
    with pytest.raises(ConfigError, match="BATCH_CUSTOM0_HOSTS"):
        derive({"DLS_TASK_INDEX": "0", "DLS_TASK_NUMBER": "2", "BATCH_CUSTOM0_HOSTS": value})


@pytest.mark.parametrize("hosts", ["worker 0,worker-1", "w\n0,w1", "w\udcff0,w1"])
def test_platform_host_names_with_blanks_or_control_characters(hosts: str) -> None:
    with pytest.raises(ConfigError, match="not a host name") as info:
        derive(v2_env(1, VC_WORKER_HOSTS=hosts))
    assert "\n" not in info.value.message
    # the user's own MASTER_ADDR is never judged
    assert derive(v2_env(1, VC_WORKER_HOSTS=hosts, MASTER_ADDR="m")).master_addr == "m"


PLATFORM_VARIABLES = [
    *COUNTS,
    *("MASTER_ADDR", "VC_WORKER_HOSTS", "MA_VJ_NAME", "MA_HJ_NAME", "MA_NAMESPACE"),
    *("BATCH_CUSTOM0_HOSTS", "BATCH_JOB_ID", "RANK", "WORLD_SIZE"),
]
hostile = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="0123456789²٣ \n\t,:[]-.\ud800\udcff", max_size=8),
    st.sampled_from(["0", "1", "2", "9" * 5000, "[]:80", "[::1]:x"]),
)


@given(
    st.dictionaries(st.sampled_from(PLATFORM_VARIABLES), hostile),
    st.integers(min_value=-5, max_value=70000),
    st.booleans(),
)
def test_hostile_platform_values_give_documented_errors(
    environ: dict[str, str], port: int, world_per_node: bool
) -> None:
    """Whatever the platform's variables hold: a result, or a ConfigError (78) / UsageError (2) on one line;
    and a result always composes a torchrun command."""
    try:
        d = dist_env(environ, detect_platform(environ), master_port=port, world_per_node=world_per_node)
    except (ConfigError, UsageError) as error:
        assert "\n" not in error.message and error.hint
        return
    assert set(d.set) <= set(VARIABLES)
    assert torchrun_argv("py", ["train.py"], d, job_id=job_id(environ))[-1] == "train.py"


@pytest.mark.parametrize("python", ["python3.7m", "/opt/py/bin/python3.11", "pypy3", "python"])
def test_torchrun_knows_every_python_name(python: str) -> None:
    """core.programs decides what is Python; the old regex here missed python3.7m and pypy3 (and ran them
    with --no-python)."""
    d = derive({})
    argv = torchrun_argv("py", [python, "-u", "train.py", "x"], d, job_id=None)
    assert "--no-python" not in argv and argv[-2:] == ["train.py", "x"]
    assert torchrun_argv("py", ["python3-config", "x"], d, job_id=None)[-3:] == [
        "--no-python",
        "python3-config",
        "x",
    ]
