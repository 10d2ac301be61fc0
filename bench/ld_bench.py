"""Benchmark of the targeted LD_LIBRARY_PATH analysis (``launcher.ld.analysis.analyze``).

Builds synthetic envs shaped like real ones - conda libraries in ``lib/`` with ``RPATH $ORIGIN``,
packages in ``site-packages`` with extension modules (some with ``RUNPATH $ORIGIN/...``), vendored
``pkg.libs`` directories, ``nvidia/*/lib`` providers that some modules need without any search path,
a few ``libcuda.so.1`` needers, and many pure-Python directories - and measures, each in a fresh
process: the cold analysis (empty analysis cache; files in the page cache), the repeated analysis (from
the cache), their peak RSS, and the baseline ``python -c pass`` of the same interpreter. Sizes: 500, 2,000
and 8,000 objects (8,000 reuses copies of the 2,000-object tree in more package directories).

    python bench/ld_bench.py [--sizes 500,2000,8000] [--workdir DIR] [--keep]

The objects are linked with ``ld`` (or ``gcc``) from one compiled object file, with a distinct soname
each, two links at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYVER = f"python{sys.version_info[0]}.{sys.version_info[1]}"
EXT = str(sysconfig.get_config_var("EXT_SUFFIX") or ".so")
NVIDIA = ["cublas", "cudnn", "cufft", "curand", "cusolver", "cusparse", "nccl", "nvjitlink", "cuda_runtime"]


class Linker:
    def __init__(self, work: str) -> None:
        self.ld = shutil.which("ld")
        self.gcc = shutil.which("gcc")
        if not (self.ld or self.gcc):
            sys.exit("ld_bench: needs ld or gcc")
        src = os.path.join(work, "obj.c")
        with open(src, "w") as f:
            f.write("int bench_fn(void) { return 42; }\n")
        self.obj = os.path.join(work, "obj.o")
        subprocess.run([self.gcc or "cc", "-c", "-fPIC", "-O0", src, "-o", self.obj], check=True)

    def argv(
        self, out: str, soname: str | None, needs: list[str], rpath: str | None, runpath: str | None
    ) -> list[str]:
        if self.ld:
            argv = [self.ld, "-shared", "-o", out, self.obj]
            if soname:
                argv += ["-soname", soname]
            if rpath:
                argv += ["--disable-new-dtags", "-rpath", rpath]
            if runpath:
                argv += ["--enable-new-dtags", "-rpath", runpath]
            return [*argv, "--no-as-needed", *needs]
        argv = [str(self.gcc), "-shared", "-o", out, self.obj]
        if soname:
            argv.append(f"-Wl,-soname,{soname}")
        if rpath:
            argv += ["-Wl,--disable-new-dtags", f"-Wl,-rpath,{rpath}"]
        if runpath:
            argv += ["-Wl,--enable-new-dtags", f"-Wl,-rpath,{runpath}"]
        return [*argv, "-Wl,--no-as-needed", *needs]

    def link_all(self, jobs: list[list[str]]) -> None:
        def one(argv: list[str]) -> None:
            os.makedirs(os.path.dirname(argv[argv.index("-o") + 1]), exist_ok=True)
            subprocess.run(argv, check=True, capture_output=True)

        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(one, jobs))


def build_env(prefix: str, n: int, linker: Linker, stub_dir: str) -> int:
    """A synthetic env with about ``n`` ELF objects; returns the number built."""
    lib = os.path.join(prefix, "lib")
    sp = os.path.join(lib, PYVER, "site-packages")
    os.makedirs(os.path.join(prefix, "bin"), exist_ok=True)
    os.makedirs(sp, exist_ok=True)
    os.symlink(sys.executable, os.path.join(prefix, "bin", "python3"))
    cuda = os.path.join(stub_dir, "libcuda.so.1")
    if not os.path.exists(cuda):
        linker.link_all([linker.argv(cuda, "libcuda.so.1", [], None, None)])

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
    linker.link_all(layer1)

    # Layer 2: packages with extension modules and vendored libraries.
    rest = n - len(layer1)
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
    # vendored libraries first (extension modules link against them)
    vend = [j for j in jobs if ".libs" in j[j.index("-o") + 1]]
    linker.link_all(vend)
    linker.link_all([j for j in jobs if j not in vend])
    return len(layer1) + len(jobs)


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
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from launcher.ld.analysis import analyze
t1 = time.perf_counter()
r = analyze(sys.argv[2], sys.argv[3], {"PATH": "/usr/bin:/bin"}, cache_dir=sys.argv[4])
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "analyze": t2 - t1, "objects": r.objects_scanned,
                  "cache": r.from_cache, "added": len(r.added), "unresolved": len(r.unresolved),
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

BASE = r"""
import json, resource
print(json.dumps({"rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def child(args: list[str]) -> tuple[float, dict[str, float]]:
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=True, env=CHILD_ENV
    ).stdout
    return time.perf_counter() - t, json.loads(out)


def measure(prefix: str, cache_root: str, runs: int) -> dict[str, float]:
    program = os.path.join(prefix, "bin", "python3")
    cold, warm = [], []
    for i in range(runs):
        cache = os.path.join(cache_root, f"c{i}")
        wall, data = child(["-c", CHILD, ROOT, prefix, program, cache])
        assert not data["cache"]
        cold.append((wall, data))
        for _ in range(2):
            wall, data = child(["-c", CHILD, ROOT, prefix, program, cache])
            assert data["cache"]
            warm.append((wall, data))
    return {
        "objects": cold[0][1]["objects"],
        "added": cold[0][1]["added"],
        "unresolved": cold[0][1]["unresolved"],
        "cold_ms": 1000 * statistics.median(d["analyze"] for _w, d in cold),
        "cold_wall_ms": 1000 * statistics.median(w for w, _d in cold),
        "warm_ms": 1000 * statistics.median(d["analyze"] for _w, d in warm),
        "import_ms": 1000 * statistics.median(d["import"] for _w, d in warm),
        "warm_wall_ms": 1000 * statistics.median(w for w, _d in warm),
        "cold_rss_mb": max(d["rss_kb"] for _w, d in cold) / 1024,
        "warm_rss_mb": max(d["rss_kb"] for _w, d in warm) / 1024,
    }


PLAN = r"""
import json, os, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from launcher.core.build import build_plan
from launcher.core.request import Request
from launcher.run.activate import run_bash_program
prefix, env = sys.argv[2], {"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": sys.argv[3]}
def once(mode):
    command = (prefix + "/bin/python3", "-c", "pass")
    request = Request(command=command, prefix=prefix, workdir=prefix, ld_mode=mode)
    t = time.perf_counter()
    build_plan(request, env, prefix, script_runner=run_bash_program)
    return 1000 * (time.perf_counter() - t)
t = time.perf_counter(); import launcher.ld.analysis; imp = 1000 * (time.perf_counter() - t)
once("auto")
off = statistics.median(once("off") for _ in range(int(sys.argv[4])))
auto = statistics.median(once("auto") for _ in range(int(sys.argv[4])))
print(json.dumps({"import": imp, "off": off, "auto": auto}))
"""


def plan_delta(prefix: str, cache_root: str, runs: int) -> dict[str, float]:
    """The low-noise view of a repeated launch: building the plan in one process with ``auto`` (warm
    cache) against ``off``, plus the one-off import of the analysis modules."""
    os.makedirs(os.path.join(prefix, "conda-meta"), exist_ok=True)
    _wall, data = child(["-c", PLAN, ROOT, prefix, os.path.join(cache_root, "plan"), str(runs)])
    return data


def launches(prefix: str, cache_root: str, runs: int) -> dict[str, float]:
    """Whole launches through the real command, paired round by round: ``--ld-library-path off``, then
    ``auto`` with an empty analysis cache (cold), then ``auto`` again with that cache (repeated)."""
    os.makedirs(os.path.join(prefix, "conda-meta"), exist_ok=True)  # a conda env for ``-p``
    program = [os.path.join(prefix, "bin", "python3"), "-c", "pass"]
    off, cold, warm = [], [], []
    for i in range(runs):
        env = {**CHILD_ENV, "PYTHONPATH": ROOT, "XDG_CACHE_HOME": os.path.join(cache_root, f"l{i}")}

        def timed(mode: str, env: dict[str, str] = env) -> float:
            argv = [sys.executable, "-m", "launcher", "-q", "-p", prefix, "--workdir", prefix]
            t = time.perf_counter()
            subprocess.run([*argv, "--ld-library-path", mode, "--", *program], env=env, check=True)
            return 1000 * (time.perf_counter() - t)

        off.append(timed("off"))
        cold.append(timed("auto"))
        warm.append(timed("auto"))
    m_off, m_cold, m_warm = (statistics.median(v) for v in (off, cold, warm))
    return {"off": m_off, "cold": m_cold, "warm": m_warm}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="500,2000,8000")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--launch-runs", type=int, default=7, help="paired launches per size")
    opts = ap.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]
    work = opts.workdir or tempfile.mkdtemp(prefix="ld-bench-")
    os.makedirs(work, exist_ok=True)
    try:
        linker = Linker(work)
        stub = os.path.join(work, "stubs")
        os.makedirs(stub, exist_ok=True)
        envs: dict[int, str] = {}
        for n in sorted(sizes):
            prefix = os.path.join(work, f"env{n}")
            if os.path.exists(prefix):
                envs[n] = prefix
                continue
            base = max((m for m in envs if n % m == 0 and n // m > 1 and m >= 2000), default=None)
            t = time.perf_counter()
            if base:
                replicate(envs[base], prefix, n)
            else:
                build_env(prefix, n, linker, stub)
            print(f"built env{n} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
            envs[n] = prefix

        # Byte-compiled modules, as an installed ma-launch has them (kept out of the source tree).
        CHILD_ENV["PYTHONPYCACHEPREFIX"] = os.path.join(work, "pycache")
        child(
            [
                "-c",
                CHILD,
                ROOT,
                envs[min(envs)],
                os.path.join(envs[min(envs)], "bin", "python3"),
                os.path.join(work, "warmup"),
            ]
        )
        base_walls, base_rss = [], 0.0
        for _ in range(5):
            wall, data = child(["-c", BASE])
            base_walls.append(wall)
            base_rss = max(base_rss, data["rss_kb"] / 1024)
        base_ms = 1000 * statistics.median(base_walls)

        rows = []
        for n in sorted(sizes):
            r = measure(envs[n], os.path.join(work, f"cache{n}"), opts.runs)
            rows.append(r)
        print(f"baseline: python -c pass = {base_ms:.1f} ms wall, peak RSS {base_rss:.1f} MB")
        head = (
            f"{'objects':>8} {'dirs+':>5} {'unres':>5} {'cold ms':>8} {'per obj':>8} "
            f"{'warm ms':>8} {'import':>6} "
            f"{'cold wall':>9} {'warm wall':>9} {'warm/base':>9} {'RSS cold':>8} {'RSS warm':>8}"
        )
        print(head)
        for r in rows:
            print(
                f"{r['objects']:>8} {r['added']:>5} {r['unresolved']:>5} {r['cold_ms']:>8.1f} "
                f"{1000 * r['cold_ms'] / max(1, r['objects']):>6.1f}us "
                f"{r['warm_ms']:>8.1f} {r['import_ms']:>6.1f} "
                f"{r['cold_wall_ms']:>9.1f} {r['warm_wall_ms']:>9.1f} {r['warm_wall_ms'] / base_ms:>8.2f}x "
                f"{r['cold_rss_mb']:>6.1f}MB {r['warm_rss_mb']:>6.1f}MB"
            )
        print(
            "cold/warm ms: analyze() in the child; import: importing the LD analysis module;"
            " wall: the whole child process, interpreter start-up included"
        )
        print()
        print("whole launches, ma-launch -q -p ENV -- ENV/bin/python3 -c pass (medians, paired rounds):")
        print(
            f"{'objects':>8} {'off ms':>8} {'auto cold':>9} {'+cold':>7} {'auto repeat':>11} {'+repeat':>8}"
            f" | plan: {'+repeat':>8} {'import':>7} {'total':>7}"
        )
        for n, r in zip(sorted(sizes), rows):
            lr = launches(envs[n], os.path.join(work, f"launch{n}"), opts.launch_runs)
            pd = plan_delta(envs[n], os.path.join(work, f"launch{n}"), 30)
            added = pd["auto"] - pd["off"]
            print(
                f"{r['objects']:>8} {lr['off']:>8.1f} {lr['cold']:>9.1f} {lr['cold'] - lr['off']:>+7.1f} "
                f"{lr['warm']:>11.1f} {lr['warm'] - lr['off']:>+8.1f}"
                f" |       {added:>+8.1f} {pd['import']:>7.1f} {added + pd['import']:>+7.1f}"
            )
        print(
            "whole launches: wall-time medians (interpreter start-up noise included); plan: build_plan "
            "in one "
            "process, auto (warm cache) minus off, plus the one-off import of the analysis modules"
        )
        print(
            "budget: a repeated launch adds <= 20 ms; a cold analysis of 2,000 objects <= 1 s, linear growth"
        )
    finally:
        if not opts.keep and not opts.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
