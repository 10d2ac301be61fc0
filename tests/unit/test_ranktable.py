from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from launcher.errors import ConfigError, DataError, TimeoutError_, UsageError
from launcher.modelarts.ranktable import RankTable, convert_template2
from launcher.modes import RANK_TABLE_MODES, parse_mode
from launcher.run.ranktable import prepare_rank_table

# The two examples of modelarts.md, verbatim.
DOC_T2 = {
    "status": "completed",
    "group_count": "1",
    "group_list": [
        {
            "group_name": "job-trainjob",
            "device_count": "1",
            "instance_count": "1",
            "instance_list": [
                {
                    "pod_name": "jobxxxxxxxx-job-trainjob-0",
                    "server_id": "192.168.0.25",
                    "devices": [{"device_id": "4", "device_ip": "192.1.10.254"}],
                }
            ],
        }
    ],
}
DOC_T1 = {
    "status": "completed",
    "version": "1.0",
    "server_count": "1",
    "server_list": [
        {
            "server_id": "192.168.0.25",
            "device": [{"device_id": "4", "device_ip": "192.1.10.254", "rank_id": "0"}],
        }
    ],
}


def dev(device_id: Any, ip: str) -> dict[str, Any]:
    return {"device_id": device_id, "device_ip": ip}


def inst(pod: str, server: str, *devices: dict[str, Any]) -> dict[str, Any]:
    return {"pod_name": pod, "server_id": server, "devices": list(devices)}


# Pods out of order (-worker-10 before -worker-2), a group with no devices, a server shared by two groups.
MULTI_T2: dict[str, Any] = {
    "status": "completed",
    "group_count": "3",
    "group_list": [
        {
            "group_name": "a",
            "device_count": "4",
            "instance_count": "3",
            "instance_list": [
                inst("job-x-worker-10", "10.0.0.3", dev("0", "1.0.0.30")),
                inst("job-x-worker-2", "10.0.0.2", dev("0", "1.0.0.20"), dev("1", "1.0.0.21")),
                inst("job-x-worker-1", "10.0.0.1", dev("3", "1.0.0.13")),
            ],
        },
        {
            "group_name": "ps",
            "device_count": "0",
            "instance_count": "1",
            "instance_list": [inst("job-x-ps-0", "10.0.0.9", dev("7", "9.9.9.9"))],
        },
        {
            "group_name": "c",
            "device_count": "2",
            "instance_count": "2",
            "instance_list": [
                inst("job-y-worker-1", "10.0.0.2", dev(4, "1.0.0.24")),  # an int value becomes a string
                inst("job-y-worker-0", "10.0.0.4", dev("0", "1.0.0.40")),
            ],
        },
    ],
}


def d1(device_id: str, ip: str, rank: str) -> dict[str, str]:
    return {"device_id": device_id, "device_ip": ip, "rank_id": rank}


# Worked out by hand: group a sorted worker-1, worker-2, worker-10 → ranks 0 | 1 2 | 3; group "ps" skipped;
# group c sorted y-worker-0, y-worker-1 → ranks 4 | 5; servers in order of first appearance.
MULTI_T1 = {
    "status": "completed",
    "version": "1.0",
    "server_count": "4",
    "server_list": [
        {"server_id": "10.0.0.1", "device": [d1("3", "1.0.0.13", "0")]},
        {
            "server_id": "10.0.0.2",
            "device": [d1("0", "1.0.0.20", "1"), d1("1", "1.0.0.21", "2"), d1("4", "1.0.0.24", "5")],
        },
        {"server_id": "10.0.0.3", "device": [d1("0", "1.0.0.30", "3")]},
        {"server_id": "10.0.0.4", "device": [d1("0", "1.0.0.40", "4")]},
    ],
}


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


def test_convert_doc_example() -> None:
    assert convert_template2(DOC_T2) == DOC_T1


def test_convert_multi() -> None:
    assert convert_template2(MULTI_T2) == MULTI_T1


def test_wait_for_delayed_completion(tmp_path: Path) -> None:
    config = tmp_path / "config"
    mount = tmp_path / "modelarts"
    table = config / "jobstart_hccl.json"
    text = json.dumps(MULTI_T2)

    def platform() -> None:
        time.sleep(0.15)
        config.mkdir()
        time.sleep(0.1)
        table.write_text(text[: len(text) // 2])  # half-written
        time.sleep(0.1)
        table.write_text("")
        time.sleep(0.1)
        table.write_text(json.dumps({**MULTI_T2, "status": "initializing"}))
        time.sleep(0.15)
        table.write_text(text)

    writer = threading.Thread(target=platform)
    writer.start()
    try:
        env = {"RANK_TABLE_FILE": str(config), "MA_MOUNT_PATH": str(mount)}
        result = prepare_rank_table(env, timeout=20, progress=Log(), poll_interval=0.01)
    finally:
        writer.join()
    out = mount / "rank_table" / "jobstart_hccl.json"
    assert result == RankTable(str(out), 6, str(table), template=2)
    assert result.env == {"RANK_TABLE_FILE": str(out), "RANK_SIZE": "6"}
    assert json.loads(out.read_text()) == MULTI_T1
    assert os.listdir(out.parent) == ["jobstart_hccl.json"]  # no temporary file left behind


def test_progress_and_timeout_with_fake_clock(tmp_path: Path) -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    log = Log()
    with pytest.raises(TimeoutError_) as info:
        prepare_rank_table(
            {"RANK_TABLE_FILE": str(tmp_path / "config")},
            timeout=12,
            progress=log,
            sleep=sleep,
            clock=lambda: now[0],
        )
    assert now[0] <= 112.0 + 1e-9
    assert "12s" in info.value.message and "file not there yet" in info.value.message
    assert info.value.hint
    assert len(log.lines) == 2
    assert log.lines[0].startswith(f"waiting for the rank table {tmp_path}/config/jobstart_hccl.json (5s")
    assert "(10s" in log.lines[1]


def test_real_timeout_within_deadline(tmp_path: Path) -> None:
    table = tmp_path / "jobstart_hccl.json"
    table.write_text('{"status": "initializing", "group_li')  # half-written and stays so
    start = time.monotonic()
    with pytest.raises(TimeoutError_, match="not valid JSON"):
        prepare_rank_table({"RANK_TABLE_FILE": str(tmp_path)}, timeout=0.3, progress=Log())
    assert time.monotonic() - start < 0.3 + 0.5


def test_timeout_reports_status(tmp_path: Path) -> None:
    (tmp_path / "jobstart_hccl.json").write_text(json.dumps({**DOC_T2, "status": "init"}))
    with pytest.raises(TimeoutError_, match="status 'init'"):
        prepare_rank_table({"RANK_TABLE_FILE": str(tmp_path)}, timeout=0.05, progress=Log())


def test_template1_passthrough_directory(tmp_path: Path) -> None:
    table = tmp_path / "jobstart_hccl.json"
    table.write_text(json.dumps(MULTI_T1))
    before = table.read_bytes()
    result = prepare_rank_table({"RANK_TABLE_FILE": str(tmp_path)}, timeout=1, progress=Log())
    assert result == RankTable(str(table), 6, str(table), 1)
    assert result.env == {"RANK_TABLE_FILE": str(table), "RANK_SIZE": "6"}
    assert table.read_bytes() == before
    assert os.listdir(tmp_path) == ["jobstart_hccl.json"]


def test_file_path_accepted(tmp_path: Path) -> None:
    table = tmp_path / "table.json"
    table.write_text(json.dumps(DOC_T2))
    out = tmp_path / "out" / "t1.json"
    result = prepare_rank_table({"RANK_TABLE_FILE": str(table)}, out_path=str(out), progress=Log())
    assert result is not None
    assert (result.path, result.source_path, result.rank_size, result.template) == (
        str(out),
        str(table),
        1,
        2,
    )
    assert json.loads(out.read_text()) == DOC_T1


def test_rewrite_is_idempotent(tmp_path: Path) -> None:
    (tmp_path / "jobstart_hccl.json").write_text(json.dumps(MULTI_T2))
    out = tmp_path / "o" / "t.json"
    out.parent.mkdir()
    out.write_text("stale")
    for _ in range(2):
        prepare_rank_table({"RANK_TABLE_FILE": str(tmp_path)}, out_path=str(out), progress=Log())
        assert json.loads(out.read_text()) == MULTI_T1


def test_v1_0_variable(tmp_path: Path) -> None:
    table = tmp_path / "v1.json"
    table.write_text(json.dumps(DOC_T1))
    log = Log()
    result = prepare_rank_table({"RANK_TABLE_FILE_V_1_0": str(table)}, progress=log)
    assert result is not None
    assert result.env == {"RANK_TABLE_FILE": str(table), "RANK_SIZE": "1"}
    assert result.template == 1
    assert log.lines and "RANK_TABLE_FILE_V_1_0" in log.lines[0]


def test_off_and_absent(tmp_path: Path) -> None:
    env = {"RANK_TABLE_FILE": str(tmp_path)}
    assert prepare_rank_table(env, mode="off", progress=Log()) is None
    assert prepare_rank_table({}, progress=Log()) is None
    assert prepare_rank_table({"RANK_TABLE_FILE": ""}, progress=Log()) is None
    with pytest.raises(UsageError):
        parse_mode("on", RANK_TABLE_MODES, "--rank-table")


def test_missing_mount_path(tmp_path: Path) -> None:
    (tmp_path / "jobstart_hccl.json").write_text(json.dumps(DOC_T2))
    with pytest.raises(ConfigError, match="MA_MOUNT_PATH") as info:
        prepare_rank_table({"RANK_TABLE_FILE": str(tmp_path)}, progress=Log())
    assert info.value.hint is not None and "--rank-table-out" in info.value.hint


def test_unwritable_output(tmp_path: Path) -> None:
    (tmp_path / "jobstart_hccl.json").write_text(json.dumps(DOC_T2))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot write"):
        prepare_rank_table(
            {"RANK_TABLE_FILE": str(tmp_path)}, out_path=str(blocker / "x.json"), progress=Log()
        )


def _broken(change: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(MULTI_T2))
    group = data["group_list"][0]
    instance = group["instance_list"][0]
    if change == "no group_list":
        del data["group_list"]
    elif change == "group_list not a list":
        data["group_list"] = {"a": 1}
    elif change == "no device_count":
        del group["device_count"]
    elif change == "no instance_list":
        del group["instance_list"]
    elif change == "no pod_name":
        del instance["pod_name"]
    elif change == "pod without number":
        instance["pod_name"] = "job-x-worker"
    elif change == "no server_id":
        del instance["server_id"]
    elif change == "no devices":
        del instance["devices"]
    elif change == "no device_ip":
        del instance["devices"][0]["device_ip"]
    elif change == "device_id not a string":
        instance["devices"][0]["device_id"] = None
    elif change == "instance not an object":
        group["instance_list"][0] = "x"
    return data


@pytest.mark.parametrize(
    "change",
    [
        "no group_list",
        "group_list not a list",
        "no device_count",
        "no instance_list",
        "no pod_name",
        "pod without number",
        "no server_id",
        "no devices",
        "no device_ip",
        "device_id not a string",
        "instance not an object",
    ],
)
def test_missing_fields(tmp_path: Path, change: str) -> None:
    (tmp_path / "jobstart_hccl.json").write_text(json.dumps(_broken(change)))
    with pytest.raises(DataError) as info:
        prepare_rank_table(
            {"RANK_TABLE_FILE": str(tmp_path)}, out_path=str(tmp_path / "o.json"), progress=Log()
        )
    assert info.value.message.startswith("rank table")
    assert "\n" not in info.value.message
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "data",
    [
        {"status": "completed", "server_list": [{"server_id": "s", "device": [{"device_id": "0"}]}]},
        {"status": "completed", "server_list": [{"device": []}]},
        {"status": "completed", "server_list": "x"},
        {"status": "completed"},
        {"status": "completed", "group_list": []},
    ],
)
def test_malformed_completed(tmp_path: Path, data: dict[str, Any]) -> None:
    (tmp_path / "jobstart_hccl.json").write_text(json.dumps(data))
    with pytest.raises(DataError):
        prepare_rank_table(
            {"RANK_TABLE_FILE": str(tmp_path)}, out_path=str(tmp_path / "o.json"), progress=Log()
        )


def test_json_not_an_object_times_out(tmp_path: Path) -> None:
    (tmp_path / "jobstart_hccl.json").write_text("[1, 2]")
    with pytest.raises(TimeoutError_, match="not a JSON object"):
        prepare_rank_table({"RANK_TABLE_FILE": str(tmp_path)}, timeout=0, progress=Log())


# ---- hostile tables (each was an internal error, exit 70, a hang or a wrong result before)


def _prepare(directory: Path, raw: bytes, **kw: Any) -> RankTable | None:
    (directory / "jobstart_hccl.json").write_bytes(raw)
    env = {"RANK_TABLE_FILE": str(directory)}
    return prepare_rank_table(env, timeout=0, out_path=str(directory / "out.json"), progress=Log(), **kw)


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,
        b'{"status": "completed", "group_list": ' + b"[" * 100_000,
        b'{"status": ' + b'{"a": ' * 100_000,
    ],
)
def test_json_nested_too_deeply_is_a_data_error(tmp_path: Path, raw: bytes) -> None:
    with pytest.raises(DataError, match="nested too deeply") as info:
        _prepare(tmp_path, raw)
    assert info.value.exit_code == 65 and info.value.hint
    assert not (tmp_path / "out.json").exists()


def test_a_lone_surrogate_is_kept_as_json_escapes(tmp_path: Path) -> None:
    data = json.loads(json.dumps(DOC_T2))
    instance = data["group_list"][0]["instance_list"][0]
    instance["server_id"] = "\ud800"
    instance["devices"][0]["device_ip"] = "ip\udcff"
    table = _prepare(tmp_path, json.dumps(data).encode())
    assert table is not None
    text = (tmp_path / "out.json").read_text(encoding="ascii")
    assert '"\\ud800"' in text and '"ip\\udcff"' in text
    written = json.loads(text)["server_list"][0]
    assert written["server_id"] == "\ud800" and written["device"][0]["device_ip"] == "ip\udcff"


@pytest.mark.parametrize(
    ("pod", "problem"),
    [
        ("job-worker-" + "9" * 4000, "too large"),  # int() of it was fine; sorting 4000-digit ints is not
        ("job-worker-" + "9" * 19, "too large"),
        ("job-worker-\u0663", "does not end in a number"),  # an Arabic-Indic digit is not a pod index
        ("job-worker-\ud800", "does not end in a number"),
    ],
)
def test_pod_names(tmp_path: Path, pod: str, problem: str) -> None:
    data = json.loads(json.dumps(DOC_T2))
    data["group_list"][0]["instance_list"][0]["pod_name"] = pod
    with pytest.raises(DataError, match=problem) as info:
        _prepare(tmp_path, json.dumps(data).encode())
    assert len(info.value.message) < 200


def test_pod_index_of_18_digits(tmp_path: Path) -> None:
    data = json.loads(json.dumps(MULTI_T2))
    data["group_list"][0]["instance_list"][0]["pod_name"] = "job-x-worker-" + "9" * 18
    table = _prepare(tmp_path, json.dumps(data).encode())
    assert table is not None and table.rank_size == 6


@pytest.mark.parametrize("value", [[[[[[[["deep"]]]]]]] * 50, "x" * 100_000, None, True, 1.5])
def test_messages_name_what_a_bad_value_is_never_the_value(tmp_path: Path, value: object) -> None:
    data = json.loads(json.dumps(DOC_T1))
    data["server_list"][0]["device"][0]["rank_id"] = value
    if isinstance(value, str):  # a string is fine: put it where a list belongs
        data["server_list"][0]["device"] = value
    with pytest.raises(DataError) as info:
        _prepare(tmp_path, json.dumps(data).encode())
    assert len(info.value.message) < 120 and info.value.message.isprintable()


def test_status_that_is_not_a_string_is_described(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError_, match=r"\(status a list\)") as info:
        _prepare(tmp_path, json.dumps({"status": [[["x" * 1000]]]}).encode())
    assert len(info.value.message) < 200
    with pytest.raises(TimeoutError_, match=r"\(status 'init\\nializing'\)"):
        _prepare(tmp_path, json.dumps({"status": "init\nializing"}).encode())


def test_a_file_that_never_ends_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="larger than 64 MiB"):
        prepare_rank_table({"RANK_TABLE_FILE": "/dev/zero"}, timeout=0, progress=Log())


def test_a_fifo_does_not_block_the_deadline(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "jobstart_hccl.json")
    start = time.monotonic()
    with pytest.raises(TimeoutError_, match="empty"):
        prepare_rank_table(
            {"RANK_TABLE_FILE": str(tmp_path)}, timeout=0.2, progress=Log(), poll_interval=0.05
        )
    assert time.monotonic() - start < 5


def test_a_timeout_that_is_not_a_number(tmp_path: Path) -> None:
    def sleep(_seconds: float) -> None:
        raise AssertionError("waited")  # a NaN deadline is never reached: it would wait forever

    with pytest.raises(UsageError, match="not a number"):
        prepare_rank_table({"RANK_TABLE_FILE": str(tmp_path)}, timeout=math.nan, progress=Log(), sleep=sleep)


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
device = st.fixed_dictionaries({"device_id": json_value, "device_ip": json_value})
instance = st.fixed_dictionaries(
    {"pod_name": st.from_regex(r"[a-z\-]{0,6}[0-9]{0,3}", fullmatch=True) | json_value},
    optional={
        "server_id": st.text(max_size=6) | json_value,
        "devices": st.lists(device, max_size=2) | json_value,
    },
)
group = st.fixed_dictionaries(
    {"device_count": st.sampled_from(["0", "1", 1, None])},
    optional={"instance_list": st.lists(instance, max_size=3) | json_value},
)
table = st.one_of(
    st.fixed_dictionaries(
        {"status": st.just("completed"), "group_list": st.lists(group, max_size=3) | json_value}
    ),
    st.fixed_dictionaries(
        {
            "status": st.just("completed"),
            "server_list": st.lists(st.dictionaries(st.text(max_size=9), json_value)),
        }
    ),
    json_value,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table)
def test_any_json_gives_a_table_or_a_documented_error(
    tmp_path_factory: pytest.TempPathFactory, data: Any
) -> None:
    directory = tmp_path_factory.mktemp("table")
    try:
        result = _prepare(directory, json.dumps(data).encode())
    except (DataError, TimeoutError_, ConfigError) as error:
        assert error.message.isprintable() and len(error.message) < 300
        assert not (directory / "out.json").exists()
        return
    assert result is not None
    if result.template == 2:
        written = json.loads((directory / "out.json").read_text())
        assert [d["rank_id"] for s in written["server_list"] for d in s["device"]] == [
            str(rank) for rank in range(result.rank_size)
        ]
