"""The Ascend rank table's format: where it is, when it is complete, its two templates and the conversion.

On Ascend jobs the platform sets ``RANK_TABLE_FILE`` to a directory (``/user/config``) holding
``jobstart_hccl.json`` in "template 2" (``group_list`` → ``instance_list`` → ``devices``), and writes it while
the job starts: its ``status`` turns ``completed`` some time after the container is up. HCCL and MindSpore
read "template 1" (``server_list`` → ``device`` with ``rank_id``). ``RANK_TABLE_FILE`` may also name the file
itself, and a template-1 file is used as it is. When only ``RANK_TABLE_FILE_V_1_0`` is set, that template-1
file is used directly.

The JSON is parsed into typed values and validated on the way: anything malformed in a completed table is a
:class:`DataError` naming the field. The waiting and the writing are :mod:`launcher.run.ranktable`'s. Pure
apart from looking at what ``RANK_TABLE_FILE`` names.
"""

from __future__ import annotations

import os

from launcher.core.record import Record
from launcher.errors import ConfigError, DataError, one_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Literal, Optional

    Template = Literal[1, 2]
    JSONObject = dict[str, object]

FILE_NAME = "jobstart_hccl.json"
#: A table for thousands of devices is a few MB; more is not a rank table (and is not read further).
MAX_BYTES = 64 * 1024 * 1024
#: Digits of the number that ends a pod name; more is not a pod of a real job.
MAX_POD_DIGITS = 18

_HINT_OFF = "pass --rank-table off to start without converting it"


class RankTable(Record):
    """A usable template-1 rank table: ``path`` (the converted file, or the source when it was already
    template 1), ``rank_size`` (devices in the whole job), ``source_path`` (the file the platform wrote) and
    ``template`` (1 or 2: the source's)."""

    __slots__ = ("path", "rank_size", "source_path", "template")

    def __init__(self, path: str, rank_size: int, source_path: str, template: Template) -> None:
        self.path = path
        self.rank_size = rank_size
        self.source_path = source_path
        self.template = template

    @property
    def env(self) -> dict[str, str]:
        """The variables that point the program at the table: ``RANK_TABLE_FILE`` and ``RANK_SIZE``."""
        return {"RANK_TABLE_FILE": self.path, "RANK_SIZE": str(self.rank_size)}


class Device(Record):
    """A device of a template-2 instance."""

    __slots__ = ("device_id", "device_ip")

    def __init__(self, device_id: str, device_ip: str) -> None:
        self.device_id = device_id
        self.device_ip = device_ip


class Instance(Record):
    """A template-2 instance (one pod): the number ending its ``pod_name``, its server and its devices."""

    __slots__ = ("devices", "pod_index", "server_id")

    def __init__(self, pod_index: int, server_id: str, devices: Sequence[Device]) -> None:
        self.pod_index = pod_index
        self.server_id = server_id
        self.devices = tuple(devices)


class Server(Record):
    """A template-1 server with its devices in rank order, each with its rank in the job."""

    __slots__ = ("devices", "server_id")

    def __init__(self, server_id: str, devices: Sequence[tuple[int, Device]]) -> None:
        self.server_id = server_id
        self.devices = tuple(devices)


def table_location(environ: Mapping[str, str]) -> Optional[tuple[str, str]]:
    """Where the platform puts the table and the variable that says so: ``RANK_TABLE_FILE``, else
    ``RANK_TABLE_FILE_V_1_0``; None when neither is set."""
    for name in ("RANK_TABLE_FILE", "RANK_TABLE_FILE_V_1_0"):
        if environ.get(name):
            return environ[name], name
    return None


def table_file(location: str) -> str:
    """A directory means its ``jobstart_hccl.json``; a ``.json`` name or an existing file is the file."""
    if os.path.isdir(location):
        return os.path.join(location, FILE_NAME)
    if os.path.exists(location) or location.endswith(".json"):
        return location
    return os.path.join(location, FILE_NAME)


def _quoted(text: str) -> str:
    """A string from the table for a message: quoted, escaped, and cut after 60 characters."""
    return repr(text[:60]) + ("…" if len(text) > 60 else "")


def _kind(value: object) -> str:
    """What a JSON value is, for a message (never the value itself: it may be huge or deeply nested)."""
    if isinstance(value, str):
        return "a string"
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, (int, float)):
        return "a number"
    return "a list" if isinstance(value, list) else "an object"


def completed_table(path: str, raw: bytes) -> tuple[Optional[JSONObject], str]:
    """The table in ``raw`` (the content of ``path``) when it is complete, else None and what is wrong
    with it so far (it may still be being written). :class:`DataError` for what no writer ever produces:
    more than :data:`MAX_BYTES`, or JSON nested too deeply to read."""
    shown = one_line(path)
    if len(raw) > MAX_BYTES:
        raise DataError(f"rank table {shown} is larger than {MAX_BYTES // 2**20} MiB", hint=_HINT_OFF)
    import json

    try:
        data = json.loads(raw)
    except RecursionError:
        raise DataError(f"rank table {shown}: JSON nested too deeply", hint=_HINT_OFF) from None
    except ValueError:
        return None, "not valid JSON yet" if raw.strip() else "empty"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    status = data.get("status")
    if status != "completed":
        return None, f"status {_quoted(status)}" if isinstance(status, str) else f"status {_kind(status)}"
    return data, "completed"


def _member(obj: object, key: str, what: str) -> object:
    if not isinstance(obj, dict) or key not in obj:
        raise DataError(f"rank table: {what} has no {key!r}", hint=_HINT_OFF)
    return obj[key]


def _list(obj: object, key: str, what: str) -> list[object]:
    value = _member(obj, key, what)
    if not isinstance(value, list):
        raise DataError(f"rank table: {what}.{key} is not a list", hint=_HINT_OFF)
    return value


def _text(obj: object, key: str, what: str) -> str:
    """A string field; a whole number is taken as its digits (every value should be a string)."""
    value = _member(obj, key, what)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"rank table: {what}.{key} is {_kind(value)}, not a string", hint=_HINT_OFF)
    return str(value)


def _pod_index(pod: str) -> int:
    """The number that ends a pod name (``…-worker-10`` → 10)."""
    digits = len(pod) - len(pod.rstrip("0123456789"))
    if not 0 < digits <= MAX_POD_DIGITS:
        problem = "does not end in a number" if digits == 0 else "ends in a number too large"
        raise DataError(f"rank table: pod_name {_quoted(pod)} {problem}", hint=_HINT_OFF)
    return int(pod[len(pod) - digits :])


def _instance(value: object, where: str) -> Instance:
    pod_index = _pod_index(_text(value, "pod_name", where))
    server_id = _text(value, "server_id", where)
    devices = []
    for d, device in enumerate(_list(value, "devices", where)):
        dwhere = f"{where}.devices[{d}]"
        devices.append(Device(_text(device, "device_id", dwhere), _text(device, "device_ip", dwhere)))
    return Instance(pod_index, server_id, devices)


def template2_instances(data: Mapping[str, object]) -> list[Instance]:
    """The instances of a template-2 table in rank order: groups in order, skipping those whose
    ``device_count`` is ``"0"``; in each, instances by the number ending their ``pod_name``
    (``…-worker-2`` before ``…-worker-10``). :class:`DataError` when a field is missing or mistyped."""
    ordered: list[Instance] = []
    for g, group in enumerate(_list(data, "group_list", "the file")):
        where = f"group_list[{g}]"
        if _text(group, "device_count", where) == "0":
            continue
        instances = _list(group, "instance_list", where)
        parsed = [_instance(inst, f"{where}.instance_list[{i}]") for i, inst in enumerate(instances)]
        ordered += sorted(parsed, key=lambda instance: instance.pod_index)
    return ordered


def assign_ranks(instances: Sequence[Instance]) -> list[Server]:
    """Template-1 servers: ``rank_id`` counts 0, 1, 2… over the instances' devices in order; devices are
    grouped by ``server_id`` in order of first appearance."""
    servers: dict[str, list[tuple[int, Device]]] = {}
    rank = 0
    for instance in instances:
        devices = servers.setdefault(instance.server_id, [])
        for device in instance.devices:
            devices.append((rank, device))
            rank += 1
    return [Server(server_id, devices) for server_id, devices in servers.items()]


def template1_document(servers: Sequence[Server]) -> JSONObject:
    """The template-1 JSON of ``servers``; every value is a string."""
    return {
        "status": "completed",
        "version": "1.0",
        "server_count": str(len(servers)),
        "server_list": [
            {
                "server_id": server.server_id,
                "device": [
                    {"device_id": device.device_id, "device_ip": device.device_ip, "rank_id": str(rank)}
                    for rank, device in server.devices
                ],
            }
            for server in servers
        ],
    }


def convert_template2(data: Mapping[str, object]) -> JSONObject:
    """Template 2 → template 1, as the reference launcher does it (see :func:`template2_instances` and
    :func:`assign_ranks`). Raises :class:`DataError` when a field is missing or mistyped."""
    return template1_document(assign_ranks(template2_instances(data)))


def template1_rank_size(data: Mapping[str, object]) -> int:
    """The number of devices in a template-1 table; :class:`DataError` when its structure is wrong."""
    size = 0
    for s, server in enumerate(_list(data, "server_list", "the file")):
        where = f"server_list[{s}]"
        _text(server, "server_id", where)
        for d, device in enumerate(_list(server, "device", where)):
            _text(device, "rank_id", f"{where}.device[{d}]")
            size += 1
    return size


def template_of(data: Mapping[str, object]) -> Template:
    """1 or 2, from the table's structure; :class:`DataError` for anything else."""
    if "group_list" in data:
        return 2
    if "server_list" in data:
        return 1
    raise DataError(
        "rank table: neither group_list (template 2) nor server_list (template 1)", hint=_HINT_OFF
    )


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


def usable_table(
    source: str, data: Mapping[str, object], environ: Mapping[str, str], out_path: Optional[str]
) -> tuple[RankTable, Optional[bytes]]:
    """The table HCCL will read for the completed table ``data`` found at ``source``, and the bytes to
    write at its path (None when ``source`` is template 1 and used as it is)."""
    if template_of(data) == 1:
        return RankTable(source, template1_rank_size(data), source, 1), None
    servers = assign_ranks(template2_instances(data))
    size = sum(len(server.devices) for server in servers)
    if size == 0:
        raise DataError(f"rank table {one_line(source)}: no devices in any group", hint=_HINT_OFF)
    target = output_path(environ, out_path)
    if os.path.abspath(target) == os.path.abspath(source):
        raise ConfigError(
            f"the converted rank table would overwrite its source {one_line(source)}",
            hint="pass --rank-table-out with another path",
        )
    import json

    content = (json.dumps(template1_document(servers), indent=4) + "\n").encode()
    return RankTable(target, size, source, 2), content
