"""Reading the memory cgroup (:mod:`launcher.run.memcg`) from fake cgroup trees: v2 and v1, the host's
path and a container's own view, limits up the tree, files that are missing or odd."""

from __future__ import annotations

from pathlib import Path

from cgroupkit import fake_tree

from launcher.run.memcg import read_memory

GIB = 1 << 30
V2_EVENTS = "low 0\nhigh 0\nmax 7\noom 2\noom_kill {kills}\noom_group_kill 0\n"
V1_CONTROL = "oom_kill_disable 0\nunder_oom 0\noom_kill {kills}\n"


def v2_tree(root: Path, *, kills: int = 1, limit: str = str(8 * GIB), peak: str = str(3 * GIB)) -> Path:
    return fake_tree(
        root,
        {
            "kubepods/pod1/memory.max": str(16 * GIB),
            "kubepods/pod1/ctr/memory.events": V2_EVENTS.format(kills=kills),
            "kubepods/pod1/ctr/memory.max": limit + "\n",
            "kubepods/pod1/ctr/memory.peak": peak + "\n",
        },
    )


def test_v2_counter_limit_and_peak(tmp_path: Path) -> None:
    root = v2_tree(tmp_path)
    memory = read_memory(str(root), "0::/kubepods/pod1/ctr\n")
    assert memory is not None
    assert (memory.version, memory.path) == ("v2", str(root / "kubepods/pod1/ctr"))
    assert (memory.oom_kills, memory.limit_hits, memory.limit, memory.peak) == (1, 7, 8 * GIB, 3 * GIB)


def test_v2_the_smallest_limit_up_the_tree_binds(tmp_path: Path) -> None:
    root = v2_tree(tmp_path, limit="max")
    memory = read_memory(str(root), "0::/kubepods/pod1/ctr\n")
    assert memory is not None and memory.limit == 16 * GIB  # the pod's limit; the container has none


def test_v2_without_peak_or_limit(tmp_path: Path) -> None:
    root = fake_tree(tmp_path, {"ctr/memory.events": V2_EVENTS.format(kills=0), "ctr/memory.max": "max\n"})
    memory = read_memory(str(root), "0::/ctr\n")
    assert memory is not None
    assert (memory.oom_kills, memory.limit, memory.peak) == (0, None, None)


def test_a_container_sees_its_own_cgroup_as_the_root(tmp_path: Path) -> None:
    """/proc/self/cgroup may name the host's path while /sys/fs/cgroup is the container's cgroup."""
    root = fake_tree(tmp_path, {"memory.events": V2_EVENTS.format(kills=3), "memory.max": str(GIB)})
    memory = read_memory(str(root), "0::/kubepods/burstable/pod9/abc\n")
    assert memory is not None and memory.path == str(root) and memory.oom_kills == 3
    # ... and a path whose tail is a directory below the root is found without its leading components
    nested = fake_tree(tmp_path / "n", {"job/memory.events": V2_EVENTS.format(kills=5)})
    found = read_memory(str(nested), "0::/host/slice/job\n")
    assert found is not None and found.path == str(nested / "job") and found.oom_kills == 5


def test_v1_memory_controller(tmp_path: Path) -> None:
    root = fake_tree(
        tmp_path,
        {
            "memory/docker/abc/memory.oom_control": V1_CONTROL.format(kills=2),
            "memory/docker/abc/memory.failcnt": "40\n",
            "memory/docker/abc/memory.limit_in_bytes": str(2 * GIB),
            "memory/docker/abc/memory.max_usage_in_bytes": str(GIB),
            "memory/docker/memory.limit_in_bytes": "9223372036854771712\n",  # "unlimited"
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
        },
    )
    membership = "12:pids:/docker/abc\n4:memory:/docker/abc\n0::/\n"
    memory = read_memory(str(root), membership)
    assert memory is not None and memory.version == "v1"
    assert (memory.oom_kills, memory.limit_hits, memory.limit, memory.peak) == (2, 40, 2 * GIB, GIB)


def test_v1_before_linux_4_13_has_no_oom_kill_line(tmp_path: Path) -> None:
    root = fake_tree(
        tmp_path,
        {
            "memory/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n",
            "memory/memory.failcnt": "3\n",
            "memory/memory.limit_in_bytes": str(GIB),
        },
    )
    memory = read_memory(str(root), "4:memory:/docker/abc\n")
    assert memory is not None and memory.oom_kills is None and memory.limit_hits == 3


def test_v1_controllers_mounted_together(tmp_path: Path) -> None:
    root = fake_tree(tmp_path, {"memory/memory.limit_in_bytes": str(GIB)})
    memory = read_memory(str(root), "7:cpuset,memory:/x\n")
    assert memory is not None and memory.limit == GIB and memory.oom_kills is None


def test_v2_wins_over_v1_when_both_have_memory_files(tmp_path: Path) -> None:
    root = fake_tree(
        tmp_path,
        {"memory.events": V2_EVENTS.format(kills=4), "memory/memory.limit_in_bytes": str(GIB)},
    )
    memory = read_memory(str(root), "4:memory:/\n0::/\n")
    assert memory is not None and memory.version == "v2" and memory.oom_kills == 4


def test_nothing_to_read(tmp_path: Path) -> None:
    assert read_memory(str(tmp_path), "0::/\n4:memory:/\n") is None
    assert read_memory(str(tmp_path / "missing"), "") is None
    assert read_memory(str(tmp_path), "garbage\n::\n") is None


def test_odd_files_give_unknown_values(tmp_path: Path) -> None:
    root = fake_tree(
        tmp_path,
        {
            "memory.events": "oom_kill lots\nmax -1\n\n",
            "memory.max": "-5\n",
            "memory.peak": "9" * 40 + "\n",
        },
    )
    memory = read_memory(str(root), "0::/\n")
    assert memory is not None
    assert (memory.oom_kills, memory.limit_hits, memory.limit, memory.peak) == (None, None, None, None)


def test_this_machine_reads_without_error() -> None:
    """Whatever this machine offers, reading it never raises (None when there is no memory cgroup)."""
    memory = read_memory()
    assert memory is None or memory.version in ("v1", "v2")
