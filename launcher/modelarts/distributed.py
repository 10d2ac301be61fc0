"""Distributed-training variables derived from the platform's, and the torchrun command built from them.

ModelArts injects no ``MASTER_ADDR``/``RANK``/``WORLD_SIZE`` into custom images; it sets its own variables
(``VC_WORKER_HOSTS``, ``MA_NUM_HOSTS``, ``VC_TASK_INDEX``, ``MA_NUM_GPUS``; on the old service ``DLS_*`` and
``BATCH_*``). :func:`dist_env` maps them to the names PyTorch launchers read, never replacing a variable the
user already set, and :func:`torchrun_argv` composes ``python -m torch.distributed.run …``.

A variable set to the empty string counts as unset. Pure: the environment is an argument.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

from launcher.errors import ConfigError, UsageError
from launcher.modelarts.platform import Platform

DEFAULT_MASTER_PORT = 6060
DEFAULT_RDZV_ID = "ma-launch"
LOCAL_MASTER = "127.0.0.1"

NNODES_SOURCES = ("MA_NUM_HOSTS", "VC_WORKER_NUM", "DLS_TASK_NUMBER")
NODE_RANK_SOURCES = ("VC_TASK_INDEX", "MA_TASK_INDEX", "DLS_TASK_INDEX")
JOB_ID_SOURCES = ("MA_VJ_NAME", "BATCH_JOB_ID")
VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NNODES", "NODE_RANK", "NPROC_PER_NODE", "WORLD_SIZE", "RANK")

_HINT = "fix the variables, set the distributed variables yourself, or pass --no-dist-env"
_PYTHON = re.compile(r"python[0-9.]*\Z")


@dataclass(frozen=True)
class DistEnv:
    """Distributed settings for one node.

    ``set``: variables to add to the program's environment (never one already present). ``sources``: for
    every variable in :data:`VARIABLES` that has a value, where it came from. The other fields are the
    effective values, including ones the user set. ``standalone`` is true for a single node with no master
    address from the user or the platform (torchrun then runs ``--standalone``).
    """

    set: dict[str, str]
    sources: dict[str, str]
    nnodes: int
    node_rank: int
    nproc_per_node: int
    master_addr: str
    master_port: int
    notes: list[str] = field(default_factory=list)
    standalone: bool = False


def job_id(environ: Mapping[str, str]) -> Optional[str]:
    """The job's id for torchrun's ``--rdzv_id``: ``MA_VJ_NAME``, else ``BATCH_JOB_ID``, else None."""
    for name in JOB_ID_SOURCES:
        if environ.get(name):
            return environ[name]
    return None


def _count(name: str, raw: str, *, minimum: int) -> int:
    text = raw.strip()
    if not text.isdigit():
        raise ConfigError(f"{name}={raw!r} is not a non-negative whole number", hint=_HINT)
    value = int(text)
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}", hint=_HINT)
    return value


def _first(environ: Mapping[str, str], names: Sequence[str]) -> Optional[str]:
    for name in names:
        if environ.get(name):
            return name
    return None


def _hosts(environ: Mapping[str, str]) -> list[str]:
    raw = environ.get("VC_WORKER_HOSTS", "")
    return [h.strip() for h in raw.split(",") if h.strip()]


def _host_of(name: str, hostport: str) -> str:
    """``host`` of ``host:port`` (``[v6]:port`` too); the whole value when it has no port."""
    text = hostport.strip().split(",")[0].strip()
    if text.startswith("["):
        end = text.find("]")
        if end > 1:
            return text[1:end]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    if not text:
        raise ConfigError(f"{name}={hostport!r} has no host name", hint=_HINT)
    return text


def _nnodes(environ: Mapping[str, str]) -> tuple[int, str]:
    found = [(n, _count(n, environ[n], minimum=1)) for n in NNODES_SOURCES if environ.get(n)]
    if not found:
        return 1, "default: one node"
    name, value = found[0]
    for other, other_value in found[1:]:
        if other_value != value:
            raise ConfigError(
                f"{name}={value} and {other}={other_value} disagree on the number of nodes", hint=_HINT
            )
    return value, name


def _node_rank(environ: Mapping[str, str]) -> tuple[int, str]:
    found = [(n, _count(n, environ[n], minimum=0)) for n in NODE_RANK_SOURCES if environ.get(n)]
    if not found:
        return 0, "default: first node"
    name, value = found[0]
    for other, other_value in found[1:]:
        if other_value != value:
            raise ConfigError(
                f"{name}={value} and {other}={other_value} disagree on this node's index", hint=_HINT
            )
    return value, name


def _master_addr(environ: Mapping[str, str]) -> tuple[Optional[str], str]:
    hosts = _hosts(environ)
    if hosts:
        return hosts[0], "first host of VC_WORKER_HOSTS"
    vj, hj, ns = (environ.get(n, "") for n in ("MA_VJ_NAME", "MA_HJ_NAME", "MA_NAMESPACE"))
    if vj and hj and ns:
        return f"{vj}-worker-0.{hj}.{ns}.svc.cluster.local", "worker 0 of MA_VJ_NAME/MA_HJ_NAME/MA_NAMESPACE"
    if environ.get("BATCH_CUSTOM0_HOSTS"):
        return _host_of("BATCH_CUSTOM0_HOSTS", environ["BATCH_CUSTOM0_HOSTS"]), "host of BATCH_CUSTOM0_HOSTS"
    return None, ""


def dist_env(
    environ: Mapping[str, str],
    platform: Platform,
    *,
    master_port: int = DEFAULT_MASTER_PORT,
    world_per_node: bool = False,
) -> DistEnv:
    """Derive MASTER_ADDR, MASTER_PORT, NNODES, NODE_RANK, NPROC_PER_NODE (and, with ``world_per_node``, one
    process per node: WORLD_SIZE=NNODES, RANK=NODE_RANK) from the platform's variables.

    A variable already set in ``environ`` is kept, and its value is the effective one. On a ``local``
    platform nothing is set: the values are single-node defaults for torchrun only.

    Raises :class:`ConfigError` when the inputs contradict each other: a non-numeric or negative count, a
    node index not below the node count, fewer hosts in ``VC_WORKER_HOSTS`` than nodes, sources that
    disagree, or a multi-node job without any way to find the master.
    """
    notes: list[str] = []
    sources: dict[str, str] = {}
    derived: dict[str, str] = {}

    def user(name: str) -> Optional[str]:
        value = environ.get(name)
        return value if value else None

    # NNODES
    if user("NNODES") is not None:
        nnodes = _count("NNODES", environ["NNODES"], minimum=1)
        sources["NNODES"] = "already set"
    else:
        nnodes, sources["NNODES"] = _nnodes(environ)
        derived["NNODES"] = str(nnodes)

    # NODE_RANK
    if user("NODE_RANK") is not None:
        node_rank = _count("NODE_RANK", environ["NODE_RANK"], minimum=0)
        sources["NODE_RANK"] = "already set"
    else:
        node_rank, sources["NODE_RANK"] = _node_rank(environ)
        derived["NODE_RANK"] = str(node_rank)
    if node_rank >= nnodes:
        raise ConfigError(
            f"this node's index {node_rank} ({sources['NODE_RANK']}) is not below the number of nodes "
            f"{nnodes} ({sources['NNODES']})",
            hint=_HINT,
        )

    hosts = _hosts(environ)
    if hosts and len(hosts) < nnodes:
        raise ConfigError(
            f"VC_WORKER_HOSTS lists {len(hosts)} host(s) but there are {nnodes} nodes ({sources['NNODES']})",
            hint=_HINT,
        )

    # NPROC_PER_NODE
    if user("NPROC_PER_NODE") is not None:
        nproc = _count("NPROC_PER_NODE", environ["NPROC_PER_NODE"], minimum=1)
        sources["NPROC_PER_NODE"] = "already set"
    elif environ.get("MA_NUM_GPUS"):
        nproc = _count("MA_NUM_GPUS", environ["MA_NUM_GPUS"], minimum=0)
        sources["NPROC_PER_NODE"] = "MA_NUM_GPUS"
        if nproc == 0:
            nproc = 1
            sources["NPROC_PER_NODE"] = "MA_NUM_GPUS=0 (no accelerator): one process"
            notes.append("MA_NUM_GPUS is 0: one process per node")
        derived["NPROC_PER_NODE"] = str(nproc)
    else:
        nproc = 1
        sources["NPROC_PER_NODE"] = "default: one process (MA_NUM_GPUS not set)"
        derived["NPROC_PER_NODE"] = "1"

    # MASTER_ADDR
    standalone = False
    if user("MASTER_ADDR") is not None:
        master_addr = environ["MASTER_ADDR"]
        sources["MASTER_ADDR"] = "already set"
    else:
        found, source = _master_addr(environ)
        if found is None:
            if nnodes > 1:
                raise ConfigError(
                    f"{nnodes} nodes ({sources['NNODES']}) but no master address: none of MASTER_ADDR, "
                    "VC_WORKER_HOSTS, MA_VJ_NAME+MA_HJ_NAME+MA_NAMESPACE, BATCH_CUSTOM0_HOSTS is set",
                    hint="set MASTER_ADDR to the first node's address, or pass --no-dist-env",
                )
            found, source = LOCAL_MASTER, "default: single node"
            standalone = True
        master_addr = found
        sources["MASTER_ADDR"] = source
        derived["MASTER_ADDR"] = master_addr

    # MASTER_PORT
    if user("MASTER_PORT") is not None:
        port = _count("MASTER_PORT", environ["MASTER_PORT"], minimum=1)
        sources["MASTER_PORT"] = "already set"
    else:
        port = master_port
        sources["MASTER_PORT"] = "--master-port" if master_port != DEFAULT_MASTER_PORT else "default port"
        derived["MASTER_PORT"] = str(port)
    if not 1 <= port <= 65535:
        raise ConfigError(
            f"master port {port} is outside 1-65535", hint="pass --master-port with a valid port"
        )

    if world_per_node:
        for name, value in (("WORLD_SIZE", nnodes), ("RANK", node_rank)):
            if user(name) is not None:
                sources[name] = "already set"
            else:
                sources[name] = "one process per node: " + ("NNODES" if name == "WORLD_SIZE" else "NODE_RANK")
                derived[name] = str(value)

    if platform.kind == "local":
        if derived:
            notes.append(
                "not on ModelArts: no distributed variables are set (single-node values for torchrun)"
            )
        to_set: dict[str, str] = {}
    else:
        to_set = derived

    return DistEnv(
        set=to_set,
        sources=sources,
        nnodes=nnodes,
        node_rank=node_rank,
        nproc_per_node=nproc,
        master_addr=master_addr,
        master_port=port,
        notes=notes,
        standalone=standalone and nnodes == 1,
    )


def _script_part(script_argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split the user's command into torchrun options it needs and the arguments after them."""
    args = list(script_argv)
    if not args:
        raise UsageError("torchrun needs a script to run", hint="ma-launch --torchrun -- train.py [ARGS…]")
    head = args[0]
    if _PYTHON.match(head.rsplit("/", 1)[-1]):
        # `python [-u] train.py …` or `python -m pkg …`: torchrun starts the interpreter itself (with -u).
        rest = args[1:]
        while rest and rest[0] == "-u":
            rest = rest[1:]
        if rest and (rest[0] == "-m" or rest[0].endswith(".py")):
            return _script_part(rest)
        raise UsageError(
            f"cannot hand {' '.join(args[:2])!r} to torchrun: it needs a .py script or -m MODULE",
            hint="write the command as `-- train.py ARGS…` or `-- -m package ARGS…`",
        )
    if head == "-m":
        if len(args) < 2:
            raise UsageError("-m needs a module name", hint="ma-launch --torchrun -- -m package ARGS…")
        return ["-m"], args[1:]
    if head.endswith(".py"):
        return [], args
    # Not Python: torchrun runs it as a program.
    return ["--no-python"], args


def torchrun_argv(
    python: str,
    script_argv: Sequence[str],
    dist: DistEnv,
    *,
    job_id: Optional[str],
    extra: Sequence[str] = (),
) -> list[str]:
    """``python -m torch.distributed.run`` with the node layout of ``dist`` and then the user's command.

    ``script_argv`` starts with a ``.py`` script, ``-m MODULE``, or ``python [-u]`` followed by one of those
    (the interpreter is dropped: torchrun starts its own); any other program is run with ``--no-python``.
    A single node without platform variables runs ``--standalone``; otherwise c10d rendezvous at
    ``MASTER_ADDR:MASTER_PORT`` with ``--rdzv_id`` = ``job_id`` (or a fixed default, the same on every node),
    and ``--rdzv_conf is_host=1`` on node 0 of a multi-node job (the hosts are DNS names c10d may not
    recognise as its own). ``extra`` goes right before the user's command.
    """
    options, rest = _script_part(script_argv)
    argv = [python, "-m", "torch.distributed.run"]
    if dist.standalone:
        argv += ["--standalone", "--nnodes", "1", "--nproc_per_node", str(dist.nproc_per_node)]
    else:
        argv += [
            "--nnodes",
            str(dist.nnodes),
            "--node_rank",
            str(dist.node_rank),
            "--nproc_per_node",
            str(dist.nproc_per_node),
            "--rdzv_id",
            job_id or DEFAULT_RDZV_ID,
            "--rdzv_backend",
            "c10d",
            "--rdzv_endpoint",
            f"{_endpoint_host(dist.master_addr)}:{dist.master_port}",
        ]
        if dist.node_rank == 0 and dist.nnodes > 1:
            argv += ["--rdzv_conf", "is_host=1"]
    return [*argv, *extra, *options, *rest]


def _endpoint_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
