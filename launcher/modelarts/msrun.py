"""The msrun command for this node: MindSpore's launcher with the node layout that
:func:`launcher.modelarts.distributed.dist_env` derived, then the training script. Pure.

What msrun does that this composition relies on (MindSpore 2.10): it starts every worker as
``python SCRIPT ARGS`` with the ``python`` found on ``PATH`` (the env's, first after activation); it hosts
the scheduler when ``--master_addr`` is one of its own addresses (found with ``ip -j addr``), so a single
node uses ``127.0.0.1`` and several nodes the first worker's address; each worker writes
``LOG_DIR/worker_<rank>.log`` and, with ``--join=True``, msrun copies those files to its stdout
(``tail -f``), which is the only way worker output reaches the job log.
"""

from __future__ import annotations

from launcher.core.programs import interpreter_args
from launcher.errors import UsageError
from launcher.modelarts.devices import visible_npus
from launcher.modelarts.distributed import LOCAL_MASTER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from launcher.modelarts.distributed import DistEnv

#: The module behind the ``msrun`` console script of the mindspore wheel.
MSRUN_MODULE = "mindspore.parallel.cluster.run"
#: Seconds msrun's processes wait for the whole cluster to form (msrun's own default).
CLUSTER_TIME_OUT = 600
#: The log directory below ``MA_LOG_DIR``, or below the working directory when that is not set.
LOG_SUBDIR = "msrun"
WORKDIR_LOG_SUBDIR = "msrun_log"
_HINT = "ma-launch --msrun train.py ARGS…, --msrun -m package ARGS…, or --msrun pytest ARGS…"


def script_words(script_argv: Sequence[str]) -> list[str]:
    """The words msrun takes as ``task_script ARGS``: a script (msrun runs it as ``python SCRIPT``),
    ``python -m MODULE …`` or ``pytest …``. An interpreter in front of a script is dropped (msrun starts
    ``python`` itself); UsageError for anything msrun cannot start."""
    args = list(script_argv)
    if not args:
        raise UsageError("--msrun needs a training script", hint=_HINT)
    rest = interpreter_args(args)
    if rest is not None:
        if rest and rest[0].endswith(".py"):
            return rest
        if rest[:1] == ["-m"]:
            return script_words(rest)
        raise UsageError(
            f"cannot hand {' '.join(args[:2])!r} to msrun: it needs a script or -m MODULE", hint=_HINT
        )
    if args[0] == "-m":
        if len(args) < 2:
            raise UsageError("-m needs a module name", hint=_HINT)
        return ["python", *args]
    if args[0] == "pytest" or args[0].endswith(".py"):
        return args
    raise UsageError(
        f"msrun starts every worker as `python {args[0]} …`, and {args[0]!r} is not a Python script",
        hint=_HINT,
    )


def local_workers(dist: DistEnv, environ: Mapping[str, str]) -> tuple[int, str]:
    """How many workers this node starts, and why: ``NPROC_PER_NODE`` or ``MA_NUM_GPUS`` when set (as
    ``dist`` took them), else the visible NPUs (:func:`~launcher.modelarts.devices.visible_npus`), else
    one."""
    if environ.get("NPROC_PER_NODE") or environ.get("MA_NUM_GPUS"):
        return dist.nproc_per_node, dist.sources.get("NPROC_PER_NODE", "MA_NUM_GPUS")
    npus = visible_npus(environ)
    if npus is not None and npus.count > 0:
        return npus.count, npus.describe()
    return 1, "default: one worker (no MA_NUM_GPUS, no NPU)"


def log_dir(environ: Mapping[str, str], workdir: str) -> str:
    """Where msrun writes the full logs (``worker_<rank>.log``, ``scheduler.log``): ``$MA_LOG_DIR/msrun``
    when the platform names a log directory, else ``msrun_log`` in the working directory."""
    base = environ.get("MA_LOG_DIR", "").rstrip("/")
    if base.startswith("/"):
        return f"{base}/{LOG_SUBDIR}"
    return f"{workdir.rstrip('/')}/{WORKDIR_LOG_SUBDIR}"


def master_addr(dist: DistEnv) -> str:
    """The scheduler's address: ``127.0.0.1`` on a single node, else the first worker's (as for torchrun)."""
    return LOCAL_MASTER if dist.nnodes == 1 else dist.master_addr


def msrun_argv(
    launcher: Sequence[str],
    script_argv: Sequence[str],
    dist: DistEnv,
    *,
    workers: int,
    logs: str,
    extra: Sequence[str] = (),
    cluster_time_out: int = CLUSTER_TIME_OUT,
) -> list[str]:
    """``launcher`` (the env's ``bin/msrun``, or ``python -m mindspore.parallel.cluster.run``) with the
    node layout of ``dist``, ``workers`` workers on this node, ``--join=True`` (worker output on stdout)
    and the full logs in ``logs``; ``extra`` comes after these (argparse takes the last value of an option
    given twice, so it can override them), then the script."""
    return [
        *launcher,
        f"--worker_num={dist.nnodes * workers}",
        f"--local_worker_num={workers}",
        f"--master_addr={master_addr(dist)}",
        f"--master_port={dist.master_port}",
        f"--node_rank={dist.node_rank}",
        f"--log_dir={logs}",
        "--join=True",
        f"--cluster_time_out={cluster_time_out}",
        *extra,
        *script_words(script_argv),
    ]
