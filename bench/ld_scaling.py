"""The scaling part of ``ld_bench.py --sizes``: ``analyze()`` cold and repeated, in a child process, on
synthetic envs of 500, 2,000 and 8,000 ELF objects (conda libraries in ``lib/`` with ``RPATH $ORIGIN``,
packages with extension modules, vendored ``pkg.libs``, ``nvidia/*/lib`` providers some modules need
without a search path, a few ``libcuda.so.1`` needers, many pure-Python directories; 8,000 reuses copies of
the 2,000-object tree). Budget: a cold analysis of 2,000 objects <= 1 s, linear growth.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig

from ld_bench import ROOT, Linker

PYVER = f"python{sys.version_info[0]}.{sys.version_info[1]}"
EXT = str(sysconfig.get_config_var("EXT_SUFFIX") or ".so")
NVIDIA = ["cublas", "cudnn", "cufft", "curand", "cusolver", "cusparse", "nccl", "nvjitlink", "cuda_runtime"]


def build_env(prefix: str, n: int, linker: Linker, stub_dir: str) -> int:
    """A synthetic env with about ``n`` ELF objects; returns the number built."""
    lib = os.path.join(prefix, "lib")
    sp = os.path.join(lib, PYVER, "site-packages")
    os.makedirs(os.path.join(prefix, "bin"), exist_ok=True)
    os.makedirs(sp, exist_ok=True)
    os.symlink(sys.executable, os.path.join(prefix, "bin", "python3"))
    cuda = os.path.join(stub_dir, "libcuda.so.1")
    if not os.path.exists(cuda):
        linker.jobs.append(linker.argv(cuda, "libcuda.so.1", [], None, None))
        linker.link()

    # Layer 1: providers (conda libs, nvidia libs).
    n_lib = max(10, n // 5)
    layer1: list[list[str]] = []
    conda_libs = [os.path.join(lib, f"libc{i}.so.{i % 3 + 1}") for i in range(n_lib)]
    for path in conda_libs:
        layer1.append(linker.argv(path, os.path.basename(path), [], "$ORIGIN", None))
    nv_libs = []
    for name in NVIDIA:
        path = os.path.join(sp, "nvidia", name, "lib", f"lib{name}.so.12")
        nv_libs.append(path)
        layer1.append(linker.argv(path, os.path.basename(path), [], "$ORIGIN", None))
    linker.jobs += layer1
    linker.link()

    # Layer 2: packages with extension modules and vendored libraries.
    jobs = _package_jobs(linker, sp, n - len(layer1), conda_libs, nv_libs, cuda)
    # vendored libraries first (extension modules link against them)
    vend = [j for j in jobs if ".libs" in j[j.index("-o") + 1]]
    linker.jobs += vend
    linker.link()
    linker.jobs += [j for j in jobs if j not in vend]
    linker.link()
    return len(layer1) + len(jobs)


def _package_jobs(
    linker: Linker, sp: str, rest: int, conda_libs: list[str], nv_libs: list[str], cuda: str
) -> list[list[str]]:
    """Link jobs for packages with extension modules and vendored libraries (about ``rest`` objects),
    with their pure-Python parts written."""
    n_lib = len(conda_libs)
    per_pkg = 10
    jobs: list[list[str]] = []
    for p in range(max(1, rest // per_pkg)):
        pkg = os.path.join(sp, f"pkg{p:04d}")
        vendored = os.path.join(sp, f"pkg{p:04d}.libs", f"libvend{p}-{p * 7919 % 100000:05x}.so.1")
        jobs.append(
            linker.argv(vendored, os.path.basename(vendored), [conda_libs[p % n_lib]], "$ORIGIN", None)
        )
        for j in range(per_pkg - 1):
            sub = os.path.join(pkg, f"sub{j % 3}")
            out = os.path.join(sub, f"_m{j}{EXT}")
            needs = [conda_libs[(p + j) % n_lib]]
            rpath = runpath = None
            kind = (p + j) % 10
            if kind < 5:
                rpath = "$ORIGIN/../../../.."  # conda-style: reaches lib/
            elif kind < 7:
                runpath = f"$ORIGIN/../../pkg{p:04d}.libs:$ORIGIN/../../../.."
                needs.append(vendored)
            elif kind < 9:
                needs.append(nv_libs[(p + j) % len(nv_libs)])  # found only through LD_LIBRARY_PATH
                rpath = "$ORIGIN/../../../.."
            else:
                needs.append(cuda)  # comes with the driver: unresolved
                rpath = "$ORIGIN/../../../.."
            jobs.append(linker.argv(out, None, needs, rpath, runpath))
        # pure-Python parts of the package
        for j in range(6):
            d = os.path.join(pkg, f"py{j}")
            os.makedirs(d, exist_ok=True)
            for k in range(4):
                with open(os.path.join(d, f"m{k}.py"), "w") as f:
                    f.write("x = 1\n")
        os.makedirs(os.path.join(sp, f"pkg{p:04d}-1.0.dist-info"), exist_ok=True)
    return jobs


def count_objects(prefix: str) -> int:
    return sum(1 for _r, _d, files in os.walk(prefix) for f in files if f.endswith(".so") or ".so." in f)


def replicate(src_prefix: str, dst_prefix: str, n: int) -> None:
    """Copy the env, then copy its package directories (with their ``.libs``) until ``n`` objects."""
    shutil.copytree(src_prefix, dst_prefix, symlinks=True)
    sp = os.path.join(dst_prefix, "lib", PYVER, "site-packages")
    pkgs = sorted(d for d in os.listdir(sp) if d.startswith("pkg") and "dist-info" not in d)
    total = count_objects(dst_prefix)
    c = 0
    while total < n:
        c += 1
        for d in pkgs:
            if total >= n:
                break
            shutil.copytree(os.path.join(sp, d), os.path.join(sp, f"c{c}{d}"), symlinks=True)
            total += count_objects(os.path.join(sp, d))


CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from launcher.ld.analysis import analyze
from launcher.run.ldstore import DiskStore
t = time.perf_counter()
r = analyze(sys.argv[2], sys.argv[3], {"PATH": "/usr/bin:/bin"}, store=DiskStore(sys.argv[4]))
print(json.dumps({"analyze": time.perf_counter() - t, "objects": r.objects_scanned, "cache": r.from_cache,
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def child(python: str, args: list[str], env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run([python, "-c", CHILD, *args], capture_output=True, text=True, check=True, env=env)
    data: dict[str, float] = json.loads(out.stdout)
    return data


def scaling(work: str, sizes: list[int], python: str, runs: int = 3) -> None:
    """Build the envs and print cold and repeated analysis times per size."""
    linker = Linker(work)
    stub = os.path.join(work, "stubs")
    os.makedirs(stub, exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPYCACHEPREFIX": os.path.join(work, "pycache")}
    envs: dict[int, str] = {}
    print(f"{'objects':>8} {'cold ms':>8} {'per obj':>8} {'repeated ms':>11} {'RSS cold':>8}")
    for n in sorted(sizes):
        prefix = os.path.join(work, f"env{n}")
        base = max((m for m in envs if n % m == 0 and n // m > 1 and m >= 2000), default=None)
        if base:
            replicate(envs[base], prefix, n)
        else:
            build_env(prefix, n, linker, stub)
        envs[n] = prefix
        program = os.path.join(prefix, "bin", "python3")
        cold, warm = [], []
        for i in range(runs):
            cache = os.path.join(work, f"cache{n}-{i}")
            cold.append(child(python, [ROOT, prefix, program, cache], env))
            warm.append(child(python, [ROOT, prefix, program, cache], env))
        c = statistics.median(1000 * d["analyze"] for d in cold)
        w = statistics.median(1000 * d["analyze"] for d in warm)
        objects = int(cold[0]["objects"])
        rss = max(d["rss_kb"] for d in cold) / 1024
        print(f"{objects:>8} {c:>8.1f} {1000 * c / max(1, objects):>6.1f}us {w:>11.2f} {rss:>6.1f}MB")
    print("budget: a cold analysis of 2,000 objects <= 1 s, linear growth", file=sys.stderr)
