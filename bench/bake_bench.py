"""Start-up of a baked boot script (``ma-launch bake``) against a bare ``sh -c true``.

    python bench/bake_bench.py [--runs N]

Builds a conda-shaped env with ``conda-meta/state`` variables and an ``activate.d`` script, bakes
``ma-launch … -- true`` into a script, then times, interleaved and paired in one run: ``sh -c true``,
``sh boot.sh`` (the baked script: ``cd``, ``env`` and the program, no Python), and, for scale,
``ma-launch … -- true`` itself. Budget: the baked script adds at most 5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_env(prefix: str) -> None:
    os.makedirs(os.path.join(prefix, "conda-meta"))
    os.makedirs(os.path.join(prefix, "bin"))
    os.makedirs(os.path.join(prefix, "etc", "conda", "activate.d"))
    with open(os.path.join(prefix, "conda-meta", "state"), "w") as handle:
        json.dump({"env_vars": {"STAGE": "train", "OMP_NUM_THREADS": "8"}}, handle)
    with open(os.path.join(prefix, "etc", "conda", "activate.d", "x.sh"), "w") as handle:
        handle.write('export FROM_SCRIPT="$CONDA_PREFIX/share"\n')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=60)
    opts = ap.parse_args()
    sh = shutil.which("sh") or "/bin/sh"
    work = tempfile.mkdtemp(prefix="bake-bench-")
    try:
        prefix = os.path.join(work, "envs", "py")
        make_env(prefix)
        cache = os.path.join(work, "cache")  # the LD cache of the timed launches: not ~/.cache
        env = {**os.environ, "PYTHONPATH": ROOT, "XDG_CACHE_HOME": cache}
        launch = [sys.executable, "-m", "launcher", "-q", "-p", prefix, "--workdir", work]
        script = os.path.join(work, "boot.sh")
        subprocess.run([*launch[:3], "bake", "-o", script, *launch[3:], "--", "true"], env=env, check=True)
        commands = {
            "sh -c true": [sh, "-c", "true"],
            "sh boot.sh (baked)": [sh, script],
            "ma-launch -- true": [*launch, "--", "true"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(3):
            for command in commands.values():
                subprocess.run(command, env=env, check=True)
        for _ in range(opts.runs):
            for name, command in commands.items():
                start = time.perf_counter()
                subprocess.run(command, env=env, check=True)
                times[name].append(1000 * (time.perf_counter() - start))
        base = statistics.median(times["sh -c true"])
        print(f"start-up, {opts.runs} interleaved runs each (median, min):")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:<22} {median:7.2f} ms  min {min(values):6.2f} ms  +{median - base:6.2f} ms")
        added = statistics.median(times["sh boot.sh (baked)"]) - base
        verdict = "ok" if added <= 5 else "OVER"
        print(f"baked script adds {added:.2f} ms over sh -c true (budget 5 ms): {verdict}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
