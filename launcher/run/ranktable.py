"""The Ascend rank table at launch: wait for the platform to complete it, then publish the template-1 table.

:func:`prepare_rank_table` waits for the file (tolerating a missing, empty or half-written one, with a
deadline), converts it (:mod:`launcher.modelarts.ranktable` knows the format), writes the result with the
one atomic write (:func:`launcher.run.files.write_atomic`) and returns the variables that point programs at
it.

Side effects: reading the source file, sleeping while waiting, creating the output's directory and writing
the converted file.
"""

from __future__ import annotations

import os
import time

from launcher.errors import ConfigError, TimeoutError_, UsageError, one_line
from launcher.modelarts.ranktable import MAX_BYTES, completed_table, table_file, table_location, usable_table
from launcher.run.files import write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Optional

    from launcher.modelarts.ranktable import JSONObject, RankTable
    from launcher.modes import RankTableMode


PROGRESS_EVERY = 5.0


def _read(path: str) -> tuple[Optional[JSONObject], str]:
    """The parsed table when the file is complete, else None and what is wrong with it so far. Opened
    without blocking, so a FIFO in its place cannot stop the wait and its deadline."""
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None, "file not there yet"
    except IsADirectoryError:
        return None, "is a directory"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    return completed_table(path, raw)


def wait_for_table(
    location: str,
    *,
    timeout: float,
    progress: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll_interval: float = 0.5,
) -> tuple[str, JSONObject]:
    """Wait until ``location`` (a directory or a file) holds a table whose ``status`` is ``completed``.

    Returns the file's path and its content. A missing, empty, half-written or incomplete file is waited
    for; :class:`TimeoutError_` is raised once ``timeout`` seconds have passed, saying what was last seen.
    ``progress`` gets a line about every :data:`PROGRESS_EVERY` seconds.
    """
    start = clock()
    deadline = start + timeout
    next_report = start + PROGRESS_EVERY
    while True:
        path = table_file(location)
        data, state = _read(path)
        if data is not None:
            return path, data
        now = clock()
        if now >= deadline:
            raise TimeoutError_(
                f"the rank table {one_line(path)} was not completed within {timeout:g}s ({state})",
                hint="check the job's Ascend resources, raise --rank-table-timeout, or pass --rank-table off",
            )
        if now >= next_report:
            progress(f"waiting for the rank table {one_line(path)} ({now - start:.0f}s, {state})")
            next_report = now + PROGRESS_EVERY
        sleep(max(0.0, min(poll_interval, deadline - now)))


def _publish(path: str, content: bytes) -> None:
    """Write the converted table at ``path`` (creating its directory); a failure is a ConfigError."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_atomic(path, content, mode=0o644)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the rank table to {one_line(path)}: {exc.strerror or exc}",
            hint="make the directory writable, or pass --rank-table-out PATH",
        ) from exc


def prepare_rank_table(
    environ: Mapping[str, str],
    *,
    mode: RankTableMode = "auto",
    timeout: float = 600,
    out_path: Optional[str] = None,
    progress: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll_interval: float = 0.5,
) -> Optional[RankTable]:
    """The rank table for an Ascend job, ready for HCCL, or None when there is none (or ``mode`` is
    ``"off"``).

    ``RANK_TABLE_FILE`` (a directory holding ``jobstart_hccl.json``, or the file) is preferred; when it is
    unset, ``RANK_TABLE_FILE_V_1_0`` (a template-1 file) is used. The table is waited for (see
    :func:`wait_for_table`); a template-2 table is converted and written atomically to ``out_path`` or
    ``$MA_MOUNT_PATH/rank_table/jobstart_hccl.json``; a template-1 table is used where it is.
    """
    if mode == "off":
        return None
    if not timeout >= 0:  # negative or NaN
        problem = "is negative" if timeout < 0 else "is not a number"
        raise UsageError(f"the rank table timeout {timeout:g} {problem}", hint="pass a timeout in seconds")
    found = table_location(environ)
    if found is None:
        return None
    location, variable = found
    if variable != "RANK_TABLE_FILE":
        progress(f"RANK_TABLE_FILE is not set; using {variable}={one_line(location)}")
    source, data = wait_for_table(
        location, timeout=timeout, progress=progress, sleep=sleep, clock=clock, poll_interval=poll_interval
    )
    table, content = usable_table(source, data, environ, out_path)
    if content is not None:
        _publish(table.path, content)
    return table
