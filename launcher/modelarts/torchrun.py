"""The torchrun command for this node: ``python -m torch.distributed.run`` with the node layout that
:func:`launcher.modelarts.distributed.dist_env` derived, then the user's command. Pure.
"""

from __future__ import annotations

from launcher.core.programs import interpreter_args
from launcher.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Optional

    from launcher.modelarts.distributed import DistEnv

#: The rendezvous id when the platform names no job: the same on every node, so they still meet.
DEFAULT_RDZV_ID = "ma-launch"
JOB_ID_SOURCES = ("MA_VJ_NAME", "BATCH_JOB_ID")


def job_id(environ: Mapping[str, str]) -> Optional[str]:
    """The job's id for torchrun's ``--rdzv_id``: ``MA_VJ_NAME``, else ``BATCH_JOB_ID``, else None."""
    for name in JOB_ID_SOURCES:
        if environ.get(name):
            return environ[name]
    return None


def _script_part(script_argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split the user's command into the torchrun options it needs and the arguments after them."""
    args = list(script_argv)
    if not args:
        raise UsageError("torchrun needs a script to run", hint="ma-launch --torchrun -- train.py [ARGS…]")
    head = args[0]
    rest = interpreter_args(args)
    if rest is not None:
        # `python [-u] train.py …` or `python -m pkg …`: torchrun starts the interpreter itself (with -u).
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


def _endpoint_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def torchrun_argv(
    python: str,
    script_argv: Sequence[str],
    dist: DistEnv,
    *,
    job_id: Optional[str],
    extra: Sequence[str] = (),
) -> list[str]:
    """``python -m torch.distributed.run`` with the node layout of ``dist`` and then the user's command.

    ``script_argv`` starts with a ``.py`` script, ``-m MODULE``, or a Python interpreter (``python3``,
    ``python3.7m``, ``pypy3``…) with optional ``-u`` followed by one of those (the interpreter is dropped:
    torchrun starts its own); any other program is run with ``--no-python``. A single node without
    platform variables runs ``--standalone``; otherwise c10d rendezvous at ``MASTER_ADDR:MASTER_PORT`` with
    ``--rdzv_id`` = ``job_id`` (or a fixed default, the same on every node), and in a multi-node job
    ``--rdzv_conf is_host=1`` on node 0 and ``is_host=0`` on the others: the hosts are DNS names that c10d
    may not recognise as node 0's own, or may take for its own on another node (when the name resolves to
    a local address, as with host networking), and then two nodes start the rendezvous store. ``extra``
    goes right before the user's command.
    """
    options, rest = _script_part(script_argv)
    argv = [python, "-m", "torch.distributed.run"]
    if dist.standalone:
        argv += ["--standalone", "--nnodes", "1", "--nproc_per_node", str(dist.nproc_per_node)]
    else:
        argv += ["--nnodes", str(dist.nnodes), "--node_rank", str(dist.node_rank)]
        argv += ["--nproc_per_node", str(dist.nproc_per_node), "--rdzv_id", job_id or DEFAULT_RDZV_ID]
        argv += ["--rdzv_backend", "c10d"]
        argv += ["--rdzv_endpoint", f"{_endpoint_host(dist.master_addr)}:{dist.master_port}"]
        if dist.nnodes > 1:  # said on every node: c10d's guess from the address can be wrong both ways
            argv += ["--rdzv_conf", f"is_host={int(dist.node_rank == 0)}"]
    return [*argv, *extra, *options, *rest]


#: torchrun's spellings of the option for the number of processes per node.
NPROC_OPTIONS = ("--nproc_per_node", "--nproc-per-node")


def processes_per_node(dist: DistEnv, extra: Sequence[str]) -> Optional[int]:
    """How many processes torchrun will start on this node: the last ``--nproc_per_node`` the user passed
    through ``extra`` (``--torchrun-arg``; torchrun takes the last one), else the derived value; ``None``
    when the user's value is not a number (``auto``, ``gpu``: torchrun decides)."""
    value: Optional[str] = None
    words = list(extra)
    for i, word in enumerate(words):
        name, eq, inline = word.partition("=")
        if name in NPROC_OPTIONS:
            value = inline if eq else (words[i + 1] if i + 1 < len(words) else None)
    if value is None:
        return dist.nproc_per_node
    text = value.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 7 else None
