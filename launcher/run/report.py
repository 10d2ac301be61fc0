"""The summary as a JSON document (``--summary FILE``, ``MA_LAUNCH_SUMMARY``), written atomically when the
job ends, so a reader sees the whole document or none.

Keys (``version`` 1):

=======================  ===========================================================================
``version``              1
``reason``               why it ended (:mod:`launcher.run.verdict`), or ``not-started``
``line``                 the summary line, without the ``ma-launch:`` prefix
``started``              whether the program ran at all
``exit_code``            the program's exit code, or ``null`` when a signal ended it
``signal``               the signal that ended it (``SIGKILL``), or ``null``
``status``               the shell's view: the exit code, or 128 + the signal's number
``wall_seconds``         from the start of the program to its end
``cpu_seconds``          user + system time of the whole process tree
``peak_rss_bytes``       the peak RSS of the largest single process
``killed_by_ma_launch``  ma-launch sent SIGKILL when the grace ran out
``memory``               ``{cgroup, path, oom_kills, limit_reached, limit_bytes, peak_bytes}`` (counts
                         during the run), or ``null`` without a memory cgroup
``stop``                 ``{received, sent, at_seconds, ended_after_seconds, grace_seconds}``, or ``null``
``device_holders``       ``[{pid, name, devices}]``: processes still holding accelerators at the end
``leftovers``            ``{count, stopped_with}``, or ``null``
``loader``               for exit code 127: ``{program, env, provided, not_provided}``, else ``null``
``restart``              ``{start_count, schedule_count, restart}`` from the platform, or ``null``
``notes``                the notes of the summary line, one string each
=======================  ===========================================================================

Part of the supervisor: standard library only (``json`` is imported only when a summary is written).
"""

from __future__ import annotations

import os
import sys

from launcher.run.verdict import notes, reason

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from launcher.run.verdict import Observed

SUMMARY_VERSION = 1


def document(
    seen: Observed,
    *,
    line: str,
    wall: float,
    cpu: float,
    peak_rss: int,
    restart: Optional[dict[str, object]] = None,
) -> dict[str, object]:
    """The summary of a program that ran and ended as ``seen`` says; ``restart``: the platform's restart
    counts (read from this process's environment when not given)."""
    memory = seen.memory_after
    stop = seen.stop
    holders = [{"pid": h.pid, "name": h.name, "devices": list(h.devices)} for h in seen.holders]
    with_kill = "SIGKILL" if seen.sent_kill else "SIGTERM, then SIGKILL"
    return {
        **_head(reason(seen), line, started=True),
        "exit_code": seen.exit_code,
        "signal": seen.signal,
        "status": seen.exit_code if seen.exit_code is not None else 128 + os.WTERMSIG(seen.status),
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "peak_rss_bytes": peak_rss,
        "killed_by_ma_launch": seen.sent_kill,
        "memory": None
        if memory is None
        else {
            "cgroup": memory.version,
            "path": memory.path,
            "oom_kills": seen.oom_kills,
            "limit_reached": seen.limit_hits,
            "limit_bytes": memory.limit,
            "peak_bytes": memory.peak,
        },
        "stop": None
        if stop is None
        else {
            "received": stop.received,
            "sent": stop.sent,
            "at_seconds": round(stop.at, 3),
            "ended_after_seconds": None if stop.ended_after is None else round(stop.ended_after, 3),
            "grace_seconds": seen.grace,
        },
        "device_holders": holders,
        "leftovers": None
        if not seen.leftovers
        else {
            "count": seen.leftovers,
            "stopped_with": with_kill if seen.sent_kill or seen.leftovers_killed else "SIGTERM",
        },
        "loader": None if seen.loader is None else seen.loader.data,
        "restart": restart if restart is not None else _restart(),
        "notes": notes(seen),
    }


def not_started(line: str, status: int, *, restart: Optional[dict[str, object]] = None) -> dict[str, object]:
    """The summary of a program that never ran (it could not be started, or a stop came first)."""
    return {
        **_head("not-started", line, started=False),
        "exit_code": None,
        "signal": None,
        "status": status,
        "wall_seconds": 0.0,
        "cpu_seconds": 0.0,
        "peak_rss_bytes": 0,
        "killed_by_ma_launch": False,
        "memory": None,
        "stop": None,
        "device_holders": [],
        "leftovers": None,
        "loader": None,
        "restart": restart if restart is not None else _restart(),
        "notes": [],
    }


def _head(why: str, line: str, *, started: bool) -> dict[str, object]:
    return {"version": SUMMARY_VERSION, "reason": why, "line": line, "started": started}


def _restart() -> Optional[dict[str, object]]:
    """The platform's restart counts, from this process's environment (the launcher's)."""
    from launcher.modelarts.restarts import restarts

    found = restarts(os.environ)
    return None if found is None else found.data()


def write_summary(path: str, doc: dict[str, object]) -> None:
    """Write ``doc`` to ``path``; one warning line on stderr when that cannot be done."""
    problem = write(path, doc)
    if problem is not None:
        sys.stderr.write(f"ma-launch: warning: the summary could not be written to {path}: {problem}\n")


def write_not_started(path: Optional[str], line: str, status: int) -> None:
    """The summary of a program that never ran, when one was asked for (``path``)."""
    if path is not None:
        write_summary(path, not_started(line, status))


def write(path: str, doc: dict[str, object]) -> Optional[str]:
    """Write ``doc`` to ``path`` atomically; ``None``, or why it could not be written."""
    import json

    from launcher.run.files import write_atomic

    try:
        data = json.dumps(doc, indent=2, ensure_ascii=True).encode() + b"\n"
        write_atomic(path, data)
    except (OSError, ValueError) as exc:
        return str(exc)
    return None
