"""The Ascend rank table: wait for the platform to complete it, convert it to the form HCCL reads, publish it.

On Ascend jobs the platform sets ``RANK_TABLE_FILE`` to a directory (``/user/config``) holding
``jobstart_hccl.json`` in "template 2" (``group_list`` → ``instance_list`` → ``devices``), and writes it while
the job starts: its ``status`` turns ``completed`` some time after the container is up. HCCL and MindSpore
read "template 1" (``server_list`` → ``device`` with ``rank_id``). :func:`prepare_rank_table` waits for the
file (tolerating a missing or half-written one, with a deadline), converts it with
:func:`convert_template2`, writes the result atomically and returns the variables that point programs at it.

``RANK_TABLE_FILE`` may also name the file itself, and a template-1 file is used as it is. When only
``RANK_TABLE_FILE_V_1_0`` is set, that template-1 file is used directly.

Side effects: reading the source file, sleeping while waiting, writing the converted file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from launcher.errors import ConfigError, DataError, TimeoutError_, UsageError

FILE_NAME = "jobstart_hccl.json"
MODES = ("auto", "off")
PROGRESS_EVERY = 5.0

_TRAILING_INT = re.compile(r"(\d+)\Z")
_HINT_OFF = "pass --rank-table off to start without converting it"


@dataclass(frozen=True)
class RankTable:
    """A usable template-1 rank table: ``path`` (the converted file, or the source when it was already
    template 1), ``rank_size`` (devices in the whole job), ``env`` (``RANK_TABLE_FILE`` and ``RANK_SIZE`` for
    the program), ``source_path`` (the file the platform wrote) and ``template`` (1 or 2: the source's)."""

    path: str
    rank_size: int
    env: dict[str, str] = field(default_factory=dict)
    source_path: str = ""
    template: int = 1


def _str(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"rank table: {what} is {value!r}, not a string", hint=_HINT_OFF)
    return str(value)


def _list(obj: Any, key: str, what: str) -> list[Any]:
    if not isinstance(obj, dict) or key not in obj:
        raise DataError(f"rank table: {what} has no {key!r}", hint=_HINT_OFF)
    value = obj[key]
    if not isinstance(value, list):
        raise DataError(f"rank table: {what}.{key} is not a list", hint=_HINT_OFF)
    return value


def _field(obj: Any, key: str, what: str) -> str:
    if not isinstance(obj, dict) or key not in obj:
        raise DataError(f"rank table: {what} has no {key!r}", hint=_HINT_OFF)
    return _str(obj[key], f"{what}.{key}")


def _pod_index(instance: Any, what: str) -> int:
    pod = _field(instance, "pod_name", what)
    match = _TRAILING_INT.search(pod)
    if match is None:
        raise DataError(f"rank table: pod_name {pod!r} does not end in a number", hint=_HINT_OFF)
    return int(match.group(1))


def convert_template2(data: dict[str, Any]) -> dict[str, Any]:
    """Template 2 → template 1, as the reference launcher does it.

    In each group with ``device_count`` other than ``"0"``, instances are taken in the order of the integer
    that ends their ``pod_name`` (``…-worker-2`` before ``…-worker-10``), and each instance's devices in
    order; ``rank_id`` counts 0, 1, 2… over the whole job. Devices are grouped by ``server_id`` in order of
    first appearance. Every value is a string. Raises :class:`DataError` when a field is missing.
    """
    servers: dict[str, list[dict[str, str]]] = {}
    rank = 0
    for g, group in enumerate(_list(data, "group_list", "the file")):
        where = f"group_list[{g}]"
        if _field(group, "device_count", where) == "0":
            continue
        instances = _list(group, "instance_list", where)
        named = [(inst, f"{where}.instance_list[{i}]") for i, inst in enumerate(instances)]
        named.sort(key=lambda pair: _pod_index(pair[0], pair[1]))
        for instance, iwhere in named:
            server_id = _field(instance, "server_id", iwhere)
            devices = servers.setdefault(server_id, [])
            for d, device in enumerate(_list(instance, "devices", iwhere)):
                dwhere = f"{iwhere}.devices[{d}]"
                devices.append(
                    {
                        "device_id": _field(device, "device_id", dwhere),
                        "device_ip": _field(device, "device_ip", dwhere),
                        "rank_id": str(rank),
                    }
                )
                rank += 1
    return {
        "status": "completed",
        "version": "1.0",
        "server_count": str(len(servers)),
        "server_list": [{"server_id": sid, "device": devs} for sid, devs in servers.items()],
    }


def template1_rank_size(data: dict[str, Any]) -> int:
    """The number of devices in a template-1 table; :class:`DataError` when its structure is wrong."""
    size = 0
    for s, server in enumerate(_list(data, "server_list", "the file")):
        where = f"server_list[{s}]"
        _field(server, "server_id", where)
        for d, device in enumerate(_list(server, "device", where)):
            _field(device, "rank_id", f"{where}.device[{d}]")
            size += 1
    return size


def template_of(data: Any) -> int:
    """1 or 2, from the table's structure; :class:`DataError` for anything else."""
    if isinstance(data, dict):
        if "group_list" in data:
            return 2
        if "server_list" in data:
            return 1
    raise DataError(
        "rank table: neither group_list (template 2) nor server_list (template 1)", hint=_HINT_OFF
    )


def _resolve(path: str) -> str:
    """A directory means its ``jobstart_hccl.json``; a ``.json`` name or an existing file is the file."""
    if os.path.isdir(path):
        return os.path.join(path, FILE_NAME)
    if os.path.exists(path) or path.endswith(".json"):
        return path
    return os.path.join(path, FILE_NAME)


def _read(path: str) -> tuple[Optional[dict[str, Any]], str]:
    """The parsed table when it is complete, else None and what is wrong with it so far."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None, "file not there yet"
    except IsADirectoryError:
        return None, "is a directory"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    try:
        data = json.loads(raw)
    except ValueError:
        return None, "not valid JSON yet" if raw.strip() else "empty"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    status = data.get("status")
    if status != "completed":
        return None, f"status {status!r}"
    return data, "completed"


def wait_for_table(
    location: str,
    *,
    timeout: float,
    progress: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll_interval: float = 0.5,
) -> tuple[str, dict[str, Any]]:
    """Wait until ``location`` (a directory or a file) holds a table whose ``status`` is ``completed``.

    Returns the file's path and its content. A missing, empty, half-written or incomplete file is waited
    for; :class:`TimeoutError_` is raised once ``timeout`` seconds have passed, saying what was last seen.
    ``progress`` gets a line about every :data:`PROGRESS_EVERY` seconds.
    """
    start = clock()
    deadline = start + timeout
    next_report = start + PROGRESS_EVERY
    while True:
        path = _resolve(location)
        data, state = _read(path)
        if data is not None:
            return path, data
        now = clock()
        if now >= deadline:
            raise TimeoutError_(
                f"the rank table {path} was not completed within {timeout:g}s ({state})",
                hint="check the job's Ascend resources, raise --rank-table-timeout, or pass --rank-table off",
            )
        if now >= next_report:
            progress(f"waiting for the rank table {path} ({now - start:.0f}s, {state})")
            next_report = now + PROGRESS_EVERY
        sleep(max(0.0, min(poll_interval, deadline - now)))


def write_atomic(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file in the same directory, fsync'd and
    renamed into place, so no reader ever sees half of it (and a retried job simply rewrites it)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".jobstart_hccl.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=4)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def output_path(environ: Mapping[str, str], out_path: Optional[str]) -> str:
    """Where the converted table goes: ``out_path``, else ``$MA_MOUNT_PATH/rank_table/jobstart_hccl.json``."""
    if out_path:
        return out_path
    mount = environ.get("MA_MOUNT_PATH")
    if not mount:
        raise ConfigError(
            "the converted rank table has nowhere to go: MA_MOUNT_PATH is not set",
            hint="set MA_MOUNT_PATH or pass --rank-table-out PATH",
        )
    return os.path.join(mount, "rank_table", FILE_NAME)


def prepare_rank_table(
    environ: Mapping[str, str],
    *,
    mode: str = "auto",
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
    if mode not in MODES:
        raise UsageError(
            f"unknown rank table mode {mode!r}", hint="use --rank-table auto or --rank-table off"
        )
    if mode == "off":
        return None
    if timeout < 0:
        raise UsageError(f"the rank table timeout {timeout:g} is negative", hint="pass a timeout in seconds")
    location = environ.get("RANK_TABLE_FILE") or environ.get("RANK_TABLE_FILE_V_1_0")
    if not location:
        return None
    if not environ.get("RANK_TABLE_FILE"):
        progress(f"RANK_TABLE_FILE is not set; using RANK_TABLE_FILE_V_1_0={location}")
    source, data = wait_for_table(
        location, timeout=timeout, progress=progress, sleep=sleep, clock=clock, poll_interval=poll_interval
    )
    template = template_of(data)
    if template == 1:
        size = template1_rank_size(data)
        return RankTable(source, size, {"RANK_TABLE_FILE": source, "RANK_SIZE": str(size)}, source, 1)
    converted = convert_template2(data)
    size = sum(len(server["device"]) for server in converted["server_list"])
    if size == 0:
        raise DataError(f"rank table {source}: no devices in any group", hint=_HINT_OFF)
    target = output_path(environ, out_path)
    if os.path.abspath(target) == os.path.abspath(source):
        raise ConfigError(
            f"the converted rank table would overwrite its source {source}",
            hint="pass --rank-table-out with another path",
        )
    try:
        write_atomic(target, converted)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the rank table to {target}: {exc.strerror or exc}",
            hint="make the directory writable, or pass --rank-table-out PATH",
        ) from exc
    return RankTable(target, size, {"RANK_TABLE_FILE": target, "RANK_SIZE": str(size)}, source, 2)
