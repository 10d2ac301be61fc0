"""Benchmark of the targeted LD_LIBRARY_PATH analysis: what ``--ld-library-path auto`` adds to a launch.

    python bench/ld_bench.py [--rounds 31] [--python PATH] [--workdir DIR] [--keep] [--sizes 500,2000,8000]

Builds a synthetic conda env of the shape of a TensorFlow env with CUDA wheels (about 30,000 files, about
170 ELF objects linked with ``ld``/``gcc``: the env's ``lib/`` and ``lib-dynload``, tensorflow's
``_pywrap`` modules with RUNPATHs into ``nvidia/*/lib``, numpy/h5py with vendored ``*.libs``, a plugin
needing a soname nothing provides, thousands of headers and pure-Python files in deep trees), a second
copy of it at another prefix, and saves the analysis of the first with ``ma-launch --ld-report --save``
(as an image build would). Then, in paired rounds, it times whole launches
``ma-launch -q -p ENV --workdir DIR -- ENV/bin/python3 -c pass`` with:

* ``off``: ``--ld-library-path off`` (the baseline);
* ``precomputed``: auto, an empty cache (a fresh container), the saved analysis in the env;
* ``cold``: auto, an empty cache, nothing saved (the other copy);
* ``repeated``: auto again with the cache the cold launch left.

Each launch is one process started with posix_spawn and reaped with wait4. The table gives the median of
each variant, the median of the per-round differences to ``off`` and the ratio of medians, then the
budgets (issue 11): precomputed <= +5 ms, cold <= +100 ms, repeated <= +3 ms over off. The interpreter is
``/usr/bin/python3`` when it exists (a fast, optimized build: a slow interpreter hides the launcher's
cost), else this one; it runs both ma-launch and the env's python. ``--sizes`` also runs the older
scaling benchmark (``analyze()`` in a child process on envs of 500, 2,000 and 8,000 objects).
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
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NVIDIA = ["cublas", "cudnn", "cufft", "curand", "cusolver", "cusparse", "nccl", "nvjitlink", "cuda_runtime"]
BUDGETS = {"precomputed": 5.0, "cold": 100.0, "repeated": 3.0}


class Linker:
    """Links shared objects and programs from one compiled object file, two at a time."""

    def __init__(self, work: str) -> None:
        self.ld = shutil.which("ld")
        self.gcc = shutil.which("gcc")
        if not (self.ld or self.gcc):
            sys.exit("ld_bench: needs ld or gcc")
        src = os.path.join(work, "obj.c")
        with open(src, "w") as f:
            f.write("int bench_fn(void) { return 42; }\nint main(void) { return 0; }\n")
        self.obj = os.path.join(work, "obj.o")
        subprocess.run([self.gcc or "cc", "-c", "-fPIC", "-O0", src, "-o", self.obj], check=True)
        self.jobs: list[list[str]] = []

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

    def lib(
        self, out: str, needs: tuple[str, ...] = (), rpath: str | None = None, runpath: str | None = None
    ) -> str:
        """Queue a shared object (soname: its file name); returns its path."""
        self.jobs.append(self.argv(out, os.path.basename(out), list(needs), rpath, runpath))
        return out

    def link(self) -> None:
        """Link everything queued, in order of queueing rounds (dependencies first)."""

        def one(argv: list[str]) -> None:
            os.makedirs(os.path.dirname(argv[argv.index("-o") + 1]), exist_ok=True)
            subprocess.run(argv, check=True, capture_output=True)

        jobs, self.jobs = self.jobs, []
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(one, jobs))


# ---------------------------------------------------------------------------------------------------
# A TensorFlow-shaped env


def _files(directory: str, names: list[str], text: str = "x = 1\n") -> int:
    os.makedirs(directory, exist_ok=True)
    for name in names:
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)
    return len(names)


def _py_tree(root: str, dirs: int, per_dir: int, fanout: int = 4, headers: bool = False) -> int:
    """``dirs`` package directories below ``root`` in a tree of the given fan-out (deep, like real
    packages), each with ``per_dir`` modules and their ``__pycache__`` (or headers): returns files made."""
    made, queue, count = 0, [root], 0
    while queue and count < dirs:
        directory = queue.pop(0)
        if headers:
            made += _files(directory, [f"h{i}.h" for i in range(per_dir)], "#pragma once\n")
        else:
            made += _files(directory, ["__init__.py", *(f"m{i}.py" for i in range(per_dir - 1))])
            made += _files(
                os.path.join(directory, "__pycache__"), [f"m{i}.cpython-311.pyc" for i in range(per_dir)]
            )
        count += 1
        queue += [os.path.join(directory, f"d{count}_{j}") for j in range(fanout)]
    return made


def build_tf_shape(prefix: str, linker: Linker, python: str) -> tuple[int, int]:
    """The env; returns (files, ELF objects)."""
    for sub in ("conda-meta", "bin", "etc"):
        os.makedirs(os.path.join(prefix, sub), exist_ok=True)
    open(os.path.join(prefix, "conda-meta", "history"), "w").close()
    os.symlink(python, os.path.join(prefix, "bin", "python3"))
    _files(os.path.join(prefix, "bin"), [f"tool{i}" for i in range(40)], f"#!{prefix}/bin/python3\n")
    for i in range(40):
        os.chmod(os.path.join(prefix, "bin", f"tool{i}"), 0o755)  # noqa: S103 - a program
    _link_objects(prefix, linker)
    _pure_python(prefix)
    elves = sum(1 for _r, _d, fs in os.walk(prefix) for f in fs if f.endswith(".so") or ".so." in f)
    total = sum(len(fs) for _r, _d, fs in os.walk(prefix))
    return total, elves + 4 + 1  # + the ELF programs and the python


def _link_objects(prefix: str, linker: Linker) -> None:
    """The env's ELF objects: conda's lib/ and lib-dynload, tensorflow with RUNPATHs into nvidia/*/lib,
    numpy and h5py with vendored .libs, a probe needing the driver, a plugin needing what nothing has."""
    lib, sp = os.path.join(prefix, "lib"), os.path.join(prefix, "lib", "python3.11", "site-packages")
    conda = [linker.lib(f"{lib}/libc{i}.so.{i % 3 + 1}", rpath="$ORIGIN") for i in range(32)]
    nvidia = [linker.lib(f"{sp}/nvidia/{n}/lib/lib{n}.so.12", rpath="$ORIGIN") for n in NVIDIA]
    cuda = linker.lib(f"{prefix}/../stubs/libcuda.so.1")
    linker.link()
    for path in conda[:10]:  # development links, as conda ships them
        os.symlink(os.path.basename(path), path.rsplit(".so", 1)[0] + ".so")
    for i in range(4):
        linker.jobs.append(linker.argv(f"{prefix}/bin/elf{i}", None, [conda[i]], "$ORIGIN/../lib", None))
    for i in range(40):
        linker.lib(
            f"{lib}/python3.11/lib-dynload/_m{i}.cpython-311-x86_64-linux-gnu.so",
            (conda[i % 32],),
            "$ORIGIN/../..",
        )
    tf = os.path.join(sp, "tensorflow")
    framework = linker.lib(
        f"{tf}/libtensorflow_framework.so.2",
        tuple(nvidia[:4]),
        runpath="$ORIGIN/../nvidia/cublas/lib:$ORIGIN/../nvidia/cudnn/lib:$ORIGIN/../nvidia/cufft/lib:$ORIGIN/../nvidia/curand/lib",
    )
    libs_np = [linker.lib(f"{sp}/numpy.libs/libopenblas{i}-r0.so", rpath="$ORIGIN") for i in range(2)]
    libs_h5 = [linker.lib(f"{sp}/h5py.libs/libhdf5{i}-ab12.so.310", rpath="$ORIGIN") for i in range(5)]
    linker.link()
    runpath = ":".join(f"$ORIGIN/../../nvidia/{n}/lib" for n in NVIDIA) + ":$ORIGIN/.."
    for i in range(24):
        linker.lib(f"{tf}/python/_pywrap_{i}.so", (framework, nvidia[i % len(NVIDIA)]), runpath=runpath)
    linker.lib(f"{tf}/libtensorflow_cc.so.2", (framework,), runpath="$ORIGIN")
    linker.lib(f"{tf}/python/platform/_cuda_probe.so", (cuda,), runpath="$ORIGIN")  # the driver's soname
    ghost = linker.lib(f"{prefix}/../stubs/libmlx5.so.1")
    linker.link()
    linker.lib(f"{tf}/lite/delegates/libtransport_plugin.so", (ghost,))  # optional, needs what nothing has
    for i in range(16):
        linker.lib(
            f"{sp}/numpy/core/_m{i}.cpython-311-x86_64-linux-gnu.so",
            (libs_np[i % 2],),
            "$ORIGIN/../../numpy.libs",
        )
    for i in range(22):
        linker.lib(
            f"{sp}/h5py/_h{i}.cpython-311-x86_64-linux-gnu.so", (libs_h5[i % 5],), "$ORIGIN/../h5py.libs"
        )
    linker.lib(
        f"{sp}/grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so", (conda[3],), "$ORIGIN/../../../.."
    )
    linker.link()
    os.remove(cuda)
    os.remove(ghost)


def _pure_python(prefix: str) -> None:
    """The pure-Python and header trees, deep like the real ones."""
    lib, sp = os.path.join(prefix, "lib"), os.path.join(prefix, "lib", "python3.11", "site-packages")
    tf = os.path.join(sp, "tensorflow")
    _py_tree(os.path.join(lib, "python3.11"), 60, 12)
    _py_tree(tf, 700, 9)
    _py_tree(os.path.join(tf, "include"), 500, 9, fanout=3, headers=True)
    _py_tree(os.path.join(sp, "keras"), 250, 9)
    _py_tree(os.path.join(sp, "numpy"), 80, 10)
    for n in NVIDIA:
        _py_tree(os.path.join(sp, "nvidia", n, "include"), 20, 8, headers=True)
    for p in range(20):
        _py_tree(os.path.join(sp, f"pkg{p}"), 20, 8)
        _files(os.path.join(sp, f"pkg{p}-1.0.dist-info"), ["METADATA", "RECORD", "WHEEL"])


# ---------------------------------------------------------------------------------------------------
# Timing whole launches


def spawn_ms(argv: list[str], env: dict[str, str]) -> float:
    """Wall time of one process, started with posix_spawn, in milliseconds (its output discarded)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        start = time.perf_counter()
        pid = os.posix_spawn(
            argv[0],
            argv,
            env,
            file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)],
        )
        _pid, status, _usage = os.wait4(pid, 0)
        elapsed = 1000 * (time.perf_counter() - start)
    finally:
        os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"ld_bench: {' '.join(argv)} failed")
    return elapsed


def paired_launches(saved: str, plain: str, work: str, python: str, rounds: int) -> dict[str, list[float]]:
    """Per variant, the wall times of ``rounds`` paired rounds (after two warm-up rounds). The order of
    the variants changes from round to round (a fixed order would charge each one the after-effects of
    the one before); ``repeated`` uses the cache an earlier round's cold launch left."""
    import random

    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT, "PYTHONPYCACHEPREFIX": os.path.join(work, "pycache")}
    times: dict[str, list[float]] = {"off": [], "precomputed": [], "cold": [], "repeated": []}
    shuffle = random.Random(42).shuffle

    def run(prefix: str, mode: str, home: str) -> float:
        argv = [python, "-m", "launcher", "-q", "-p", prefix, "--workdir", work, "--ld-library-path", mode]
        return spawn_ms([*argv, "--", f"{prefix}/bin/python3", "-c", "pass"], {**base, "HOME": home})

    homes = os.path.join(work, "homes")
    run(plain, "auto", os.path.join(homes, "cold-1"))  # the first cache for "repeated"
    for i in range(rounds + 2):
        variants = {
            "off": (plain, "off", os.path.join(homes, f"off{i}")),
            "precomputed": (saved, "auto", os.path.join(homes, f"pre{i}")),
            "cold": (plain, "auto", os.path.join(homes, f"cold{i}")),
            "repeated": (plain, "auto", os.path.join(homes, f"cold{i - 1}")),
        }
        order = list(variants)
        shuffle(order)
        sample = {name: run(*variants[name]) for name in order}
        if i >= 2:
            for name, value in sample.items():
                times[name].append(value)
    return times


def report(times: dict[str, list[float]], python: str, shape: tuple[int, int]) -> bool:
    """Print the table; whether every budget holds."""
    off = times["off"]
    print(f"interpreter: {python}; env: {shape[0]:,} files, {shape[1]} ELF objects; {len(off)} paired rounds")
    print(f"{'variant':<12} {'median ms':>9} {'+ms (paired)':>12} {'ratio':>6} {'budget':>8}")
    ok = True
    for name, values in times.items():
        med = statistics.median(values)
        if name == "off":
            print(f"{name:<12} {med:>9.1f} {'':>12} {'1.00':>6} {'':>8}")
            continue
        delta = statistics.median(v - o for v, o in zip(values, off))
        budget = BUDGETS[name]
        ok = ok and delta <= budget
        verdict = "ok" if delta <= budget else "OVER"
        ratio = med / statistics.median(off)
        print(f"{name:<12} {med:>9.1f} {delta:>+12.1f} {ratio:>6.2f} {f'+{budget:g} ms':>8} {verdict}")
    return ok


def in_process(saved: str, plain: str, work: str, python: str) -> None:
    """The analysis alone, in one process (no interpreter start-up): medians of 11 runs."""
    code = r"""
import json, os, shutil, statistics, sys, time
sys.path.insert(0, sys.argv[1])
t = time.perf_counter()
from launcher.ld.analysis import analyze
from launcher.run.ldstore import DiskStore
imported = 1000 * (time.perf_counter() - t)
saved, plain, work = sys.argv[2:5]
env = {"PATH": "/usr/bin:/bin"}
def once(prefix, cache):
    t = time.perf_counter()
    analyze(prefix, prefix + "/bin/python3", env, store=DiskStore(cache))
    return 1000 * (time.perf_counter() - t)
out = {"import": imported, "precomputed": [], "cold": [], "repeated": []}
for i in range(11):
    out["precomputed"].append(once(saved, f"{work}/ip/p{i}"))
    out["cold"].append(once(plain, f"{work}/ip/c{i}"))
    out["repeated"].append(once(plain, f"{work}/ip/c{i}"))
print(json.dumps({k: v if k == "import" else statistics.median(v) for k, v in out.items()}))
"""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPYCACHEPREFIX": os.path.join(work, "pycache")}
    data = json.loads(
        subprocess.run(
            [python, "-c", code, ROOT, saved, plain, work],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    print(
        f"in one process: import of the analysis {data['import']:.1f} ms; analyze() precomputed "
        f"{data['precomputed']:.1f} ms, cold {data['cold']:.1f} ms, repeated {data['repeated']:.2f} ms"
    )


def tf_bench(work: str, python: str, rounds: int) -> bool:
    linker = Linker(work)
    saved, plain = os.path.join(work, "envs", "tf"), os.path.join(work, "envs", "tf-copy")
    t = time.perf_counter()
    shape = build_tf_shape(saved, linker, python)
    shutil.copytree(saved, plain, symlinks=True)
    past = time.time() - 120  # built in earlier image layers than the one that saves the analysis
    for prefix in (saved, plain):
        for root, dirs, files in os.walk(prefix):
            for name in [*dirs, *files, ""]:
                os.utime(os.path.join(root, name) if name else root, (past, past), follow_symlinks=False)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT, "HOME": os.path.join(work, "build-home")}
    save = [python, "-m", "launcher", "--ld-report", "-p", saved, "--save"]
    subprocess.run(save, env=env, check=True, capture_output=True)
    print(f"built the env and saved its analysis in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    times = paired_launches(saved, plain, work, python, rounds)
    ok = report(times, python, shape)
    in_process(saved, plain, work, python)
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=31, help="paired rounds of whole launches")
    ap.add_argument("--python", default=None, help="interpreter (default: /usr/bin/python3 if it exists)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--sizes", default="", help="also the scaling benchmark, e.g. 500,2000,8000")
    ap.add_argument("--check", action="store_true", help="exit 1 when a budget is over")
    opts = ap.parse_args()
    python = opts.python or ("/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable)
    work = opts.workdir or tempfile.mkdtemp(prefix="ld-bench-")
    os.makedirs(work, exist_ok=True)
    try:
        ok = tf_bench(work, python, opts.rounds)
        if opts.sizes:
            from ld_scaling import scaling

            scaling(work, [int(s) for s in opts.sizes.split(",")], python)
    finally:
        if not opts.keep and not opts.workdir:
            shutil.rmtree(work, ignore_errors=True)
    if opts.check and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
