"""The memory cgroup read on this machine's real cgroups: a child memory cgroup with a small limit, a program
in it that allocates until the kernel's OOM killer kills it, and the counter read before and after.

Needs root and a cgroup the test may make children in (cgroup v1's memory controller, or a cgroup v2 tree
with the memory controller delegated, which .ci/run prepares); skips locally otherwise, fails under CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from cgroupkit import HOG, child_memory_cgroup, in_cgroup
from launchkit import REPO

MIB = 1 << 20

PROBE = textwrap.dedent(
    """
    import json, subprocess, sys
    from launcher.run.memcg import read_memory
    before = read_memory()
    hog = subprocess.run([sys.executable, "-c", sys.argv[1]])
    after = read_memory()
    print(json.dumps({
        "status": hog.returncode,
        "before": None if before is None else [before.version, before.path, before.oom_kills, before.limit],
        "after": None if after is None else [after.version, after.path, after.oom_kills, after.limit,
                                             after.peak],
    }))
    """
)


def test_a_real_oom_kill_is_counted() -> None:
    with child_memory_cgroup(96 * MIB) as child:
        done = subprocess.run(
            in_cgroup(child, [sys.executable, "-c", PROBE, HOG]),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=str(REPO),
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        )
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
        assert seen["status"] == -9  # SIGKILL
        version, path, kills_before, limit = seen["before"]
        after_version, after_path, kills_after, after_limit, peak = seen["after"]
        assert (version, path) == (child.version, str(child.path)) == (after_version, after_path)
        assert limit == after_limit == 96 * MIB
        assert kills_after == kills_before + 1 == child.oom_kills()
        assert peak is None or 80 * MIB < peak <= 96 * MIB
