"""Distributed-training variables derived from the platform's.

ModelArts injects no ``MASTER_ADDR``/``RANK``/``WORLD_SIZE`` into custom images; it sets its own variables
(``VC_WORKER_HOSTS``, ``MA_NUM_HOSTS``, ``VC_TASK_INDEX``, ``MA_NUM_GPUS``; on the old service ``DLS_*`` and
``BATCH_*``). :func:`dist_env` maps them to the names PyTorch launchers read. Every variable follows one rule
(:meth:`_Derivation.take`): a value the user already set is kept and is the effective one; otherwise it is
derived from the platform's variables, and where it came from is recorded.

A variable set to the empty string counts as unset. Pure: the environment is an argument.
"""

from __future__ import annotations

from launcher.core.record import Record
from launcher.errors import ConfigError, UsageError
from launcher.modelarts.facts import MASTER_PORT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Optional, TypeVar

    from launcher.modelarts.platform import Platform

    T = TypeVar("T")

LOCAL_MASTER = "127.0.0.1"
#: Counts above this are not a real job (and ``int()`` of a long digit string is slow or refused).
MAX_COUNT = 1_000_000
MAX_PORT = 65535

NNODES_SOURCES = ("MA_NUM_HOSTS", "VC_WORKER_NUM", "DLS_TASK_NUMBER")
NODE_RANK_SOURCES = ("VC_TASK_INDEX", "MA_TASK_INDEX", "DLS_TASK_INDEX")
VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NNODES", "NODE_RANK", "NPROC_PER_NODE", "WORLD_SIZE", "RANK")

ALREADY_SET = "already set"
SINGLE_NODE_MASTER = "default: single node"
_HINT = "fix the variables, set the distributed variables yourself, or pass --no-dist-env"


class DistEnv(Record):
    """Distributed settings for one node.

    ``set``: variables to add to the program's environment (never one already present). ``sources``: for
    every variable in :data:`VARIABLES` that has a value, where it came from. The other fields are the
    effective values, including ones the user set. ``standalone`` is true for a single node with no master
    address from the user or the platform (torchrun then runs ``--standalone``).
    """

    __slots__ = (
        "master_addr",
        "master_port",
        "nnodes",
        "node_rank",
        "notes",
        "nproc_per_node",
        "set",
        "sources",
        "standalone",
    )

    def __init__(
        self,
        set: dict[str, str],
        sources: dict[str, str],
        nnodes: int,
        node_rank: int,
        nproc_per_node: int,
        master_addr: str,
        master_port: int,
        notes: Sequence[str] = (),
        standalone: bool = False,
    ) -> None:
        self.set = set
        self.sources = sources
        self.nnodes = nnodes
        self.node_rank = node_rank
        self.nproc_per_node = nproc_per_node
        self.master_addr = master_addr
        self.master_port = master_port
        self.notes = list(notes)
        self.standalone = standalone


def _count(name: str, raw: str, *, minimum: int, maximum: int = MAX_COUNT) -> int:
    """The whole number in ``raw`` (ASCII digits, surrounding blanks ignored) within the bounds, else a
    :class:`ConfigError` naming ``name``."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit()):
        raise ConfigError(f"{name}={raw!r} is not a non-negative whole number", hint=_HINT)
    if len(text.lstrip("0")) > len(str(maximum)) or int(text) > maximum:
        raise ConfigError(f"{name}={raw!r} is larger than {maximum}", hint=_HINT)
    value = int(text)
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}", hint=_HINT)
    return value


def _agreed(
    environ: Mapping[str, str], names: Sequence[str], minimum: int, what: str
) -> Optional[tuple[int, str]]:
    """The count the first set variable of ``names`` gives, and its name; every other set one must agree
    on ``what``. None when none is set."""
    found = [(name, _count(name, environ[name], minimum=minimum)) for name in names if environ.get(name)]
    if not found:
        return None
    name, value = found[0]
    for other, other_value in found[1:]:
        if other_value != value:
            raise ConfigError(f"{name}={value} and {other}={other_value} disagree on {what}", hint=_HINT)
    return value, name


def _hosts(environ: Mapping[str, str]) -> list[str]:
    raw = environ.get("VC_WORKER_HOSTS", "")
    return [h.strip() for h in raw.split(",") if h.strip()]


def _host_of(name: str, hostport: str) -> str:
    """``host`` of ``host:port`` (``[v6]:port`` too); the whole value when it has no port."""
    text = hostport.strip().split(",")[0].strip()
    if text.startswith("["):
        host = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        host = text.split(":", 1)[0]
    else:
        host = text
    if not host:
        raise ConfigError(f"{name}={hostport!r} has no host name", hint=_HINT)
    return host


def _platform_master(environ: Mapping[str, str]) -> Optional[tuple[str, str]]:
    """The master address the platform's variables give, and which variables gave it."""
    hosts = _hosts(environ)
    if hosts:
        found = hosts[0], "first host of VC_WORKER_HOSTS"
    elif all(environ.get(n) for n in ("MA_VJ_NAME", "MA_HJ_NAME", "MA_NAMESPACE")):
        vj, hj, ns = environ["MA_VJ_NAME"], environ["MA_HJ_NAME"], environ["MA_NAMESPACE"]
        found = f"{vj}-worker-0.{hj}.{ns}.svc.cluster.local", "worker 0 of MA_VJ_NAME/MA_HJ_NAME/MA_NAMESPACE"
    elif environ.get("BATCH_CUSTOM0_HOSTS"):
        found = _host_of("BATCH_CUSTOM0_HOSTS", environ["BATCH_CUSTOM0_HOSTS"]), "host of BATCH_CUSTOM0_HOSTS"
    else:
        return None
    if not found[0].isprintable() or " " in found[0]:
        raise ConfigError(f"the master address {found[0]!r} ({found[1]}) is not a host name", hint=_HINT)
    return found


class _Derivation:
    """The one rule for every variable: the user's value wins; else derive it and record where from."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.sources: dict[str, str] = {}
        self.derived: dict[str, str] = {}
        self.notes: list[str] = []

    def take(self, name: str, parse: Callable[[str, str], T], derive: Callable[[], tuple[T, str]]) -> T:
        """``parse(name, value)`` of the user's non-empty ``name``, else the value ``derive()`` returns
        with its source (then recorded as derived)."""
        raw = self.environ.get(name)
        if raw:
            value = parse(name, raw)
            self.sources[name] = ALREADY_SET
            return value
        value, self.sources[name] = derive()
        self.derived[name] = str(value)
        return value


def _at_least(minimum: int, maximum: int = MAX_COUNT) -> Callable[[str, str], int]:
    return lambda name, raw: _count(name, raw, minimum=minimum, maximum=maximum)


def _as_is(_name: str, raw: str) -> str:
    return raw


def _nodes(d: _Derivation) -> tuple[int, int]:
    """NNODES and NODE_RANK, checked against each other and against VC_WORKER_HOSTS."""
    environ = d.environ
    nnodes = d.take(
        "NNODES",
        _at_least(1),
        lambda: _agreed(environ, NNODES_SOURCES, 1, "the number of nodes") or (1, "default: one node"),
    )
    node_rank = d.take(
        "NODE_RANK",
        _at_least(0),
        lambda: _agreed(environ, NODE_RANK_SOURCES, 0, "this node's index") or (0, "default: first node"),
    )
    if node_rank >= nnodes:
        raise ConfigError(
            f"this node's index {node_rank} ({d.sources['NODE_RANK']}) is not below the number of nodes "
            f"{nnodes} ({d.sources['NNODES']})",
            hint=_HINT,
        )
    hosts = _hosts(environ)
    if hosts and len(hosts) < nnodes:
        raise ConfigError(
            f"VC_WORKER_HOSTS lists {len(hosts)} host(s) but there are {nnodes} nodes "
            f"({d.sources['NNODES']})",
            hint=_HINT,
        )
    return nnodes, node_rank


def _processes(d: _Derivation) -> tuple[int, str]:
    """NPROC_PER_NODE from the platform: MA_NUM_GPUS (0 means one process), else one."""
    raw = d.environ.get("MA_NUM_GPUS")
    if not raw:
        return 1, "default: one process (MA_NUM_GPUS not set)"
    gpus = _count("MA_NUM_GPUS", raw, minimum=0)
    if gpus == 0:
        d.notes.append("MA_NUM_GPUS is 0: one process per node")
        return 1, "MA_NUM_GPUS=0 (no accelerator): one process"
    return gpus, "MA_NUM_GPUS"


def _master(environ: Mapping[str, str], nnodes: int, nnodes_source: str) -> tuple[str, str]:
    """MASTER_ADDR from the platform; a single node without one uses the local address."""
    found = _platform_master(environ)
    if found is not None:
        return found
    if nnodes > 1:
        raise ConfigError(
            f"{nnodes} nodes ({nnodes_source}) but no master address: none of MASTER_ADDR, "
            "VC_WORKER_HOSTS, MA_VJ_NAME+MA_HJ_NAME+MA_NAMESPACE, BATCH_CUSTOM0_HOSTS is set",
            hint="set MASTER_ADDR to the first node's address, or pass --no-dist-env",
        )
    return LOCAL_MASTER, SINGLE_NODE_MASTER


def dist_env(
    environ: Mapping[str, str],
    platform: Platform,
    *,
    master_port: int = MASTER_PORT,
    world_per_node: bool = False,
) -> DistEnv:
    """Derive MASTER_ADDR, MASTER_PORT, NNODES, NODE_RANK, NPROC_PER_NODE (and, with ``world_per_node``, one
    process per node: WORLD_SIZE=NNODES, RANK=NODE_RANK) from the platform's variables.

    A variable already set in ``environ`` is kept, and its value is the effective one. On a ``local``
    platform nothing is set: the values are single-node defaults for torchrun only.

    Raises :class:`ConfigError` when the inputs contradict each other: a count that is not a whole number
    or out of range, a node index not below the node count, fewer hosts in ``VC_WORKER_HOSTS`` than nodes,
    sources that disagree, or a multi-node job without any way to find the master; :class:`UsageError`
    for a ``master_port`` outside 1-65535.
    """
    if not 1 <= master_port <= MAX_PORT:
        raise UsageError(
            f"--master-port {master_port} is outside 1-{MAX_PORT}", hint=f"give a port such as {MASTER_PORT}"
        )
    d = _Derivation(environ)
    nnodes, node_rank = _nodes(d)
    nproc = d.take("NPROC_PER_NODE", _at_least(1), lambda: _processes(d))
    master_addr = d.take("MASTER_ADDR", _as_is, lambda: _master(environ, nnodes, d.sources["NNODES"]))
    port_source = "--master-port" if master_port != MASTER_PORT else "default port"
    port = d.take("MASTER_PORT", _at_least(1, MAX_PORT), lambda: (master_port, port_source))
    if world_per_node:
        d.take("WORLD_SIZE", _as_is, lambda: (str(nnodes), "one process per node: NNODES"))
        d.take("RANK", _as_is, lambda: (str(node_rank), "one process per node: NODE_RANK"))
    if not platform.on_modelarts and d.derived:
        d.notes.append(
            "not on ModelArts: no distributed variables are set (single-node values for torchrun or msrun)"
        )
    return DistEnv(
        set=d.derived if platform.on_modelarts else {},
        sources=d.sources,
        nnodes=nnodes,
        node_rank=node_rank,
        nproc_per_node=nproc,
        master_addr=master_addr,
        master_port=port,
        notes=d.notes,
        standalone=d.sources["MASTER_ADDR"] == SINGLE_NODE_MASTER,
    )
