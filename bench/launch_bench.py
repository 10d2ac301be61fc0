"""How much a launch through ma-launch costs over running the program directly.

    python bench/launch_bench.py [--runs N] [--warmup N] [--check]

Builds a throw-away conda root with an env whose ``bin/python`` is a link to the real interpreter, then
times, paired and interleaved in one run, ``ENV/bin/python -c pass`` against the same command under
``ma-launch -q -p ENV --workdir DIR --``, started as ``python -m launcher`` and (when installed) as the
``ma-launch`` console script. Two more variants: an env with one activate.d script (ma-launch sources it
with one bash process) and ``--dry-run --shell sh`` (plans, prints the line, runs nothing).

Each run is one process started with posix_spawn and reaped with wait4, which gives its wall time and its
peak resident memory (ru_maxrss, which covers the program ma-launch exec'd into and the bash it ran).
The budget: a plain launch takes at most 3× the direct run (median against median).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
REAL_PYTHON = os.path.realpath(sys.executable)
BUDGET = 3.0
#: Variables that would change which env ma-launch chooses or how it behaves.
_CLEARED = ("CONDA_PREFIX", "CONDA_SHLVL", "CONDA_DEFAULT_ENV", "ANACONDA_DIR", "DEFAULT_CONDA_ENV_NAME")

ACTIVATE_SH = "export BENCH_ACTIVATED=1\n"


def make_env(prefix: str, *, activate_script: bool = False) -> str:
    """A conda env at ``prefix``: conda-meta/history and bin/python → the real interpreter."""
    os.makedirs(os.path.join(prefix, "conda-meta"), exist_ok=True)
    with open(os.path.join(prefix, "conda-meta", "history"), "w", encoding="utf-8"):
        pass
    os.makedirs(os.path.join(prefix, "bin"), exist_ok=True)
    os.makedirs(os.path.join(prefix, "lib"), exist_ok=True)
    os.symlink(REAL_PYTHON, os.path.join(prefix, "bin", "python"))
    if activate_script:
        folder = os.path.join(prefix, "etc", "conda", "activate.d")
        os.makedirs(folder)
        with open(os.path.join(folder, "bench.sh"), "w", encoding="utf-8") as handle:
            handle.write(ACTIVATE_SH)
    return prefix


def console_script() -> tuple[str | None, str]:
    """The ``ma-launch`` console script, and a note. Prefer the one beside this interpreter: a version
    manager's shim on PATH (a shell script) would time the shim, not ma-launch."""
    beside = os.path.join(os.path.dirname(sys.executable), "ma-launch")
    if os.access(beside, os.X_OK):
        return beside, ""
    found = shutil.which("ma-launch")
    if found is None:
        return None, "the ma-launch console script is not installed; its rows are skipped"
    with open(found, "rb") as handle:
        head = handle.readline()
    if b"python" not in head:
        return None, f"{found} is not a Python console script (a shim?); its rows are skipped"
    return found, ""


def launch_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MA_LAUNCH_") and k not in _CLEARED}
    # `python -m launcher` must import this checkout even when it is not installed.
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_once(argv: list[str], env: dict[str, str], devnull: int) -> tuple[float, int, int]:
    """Start ``argv``, wait for it; return (seconds, peak RSS in KiB, exit status)."""
    actions = [
        (os.POSIX_SPAWN_DUP2, devnull, 0),
        (os.POSIX_SPAWN_DUP2, devnull, 1),
        (os.POSIX_SPAWN_DUP2, devnull, 2),
    ]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _pid, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    return elapsed, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each variant (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each variant first")
    parser.add_argument("--check", action="store_true", help="exit 1 when a plain launch is over budget")
    args = parser.parse_args(argv)

    base = tempfile.mkdtemp(prefix="ma-launch-bench-")
    try:
        return _bench(base, args.runs, args.warmup, args.check)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _bench(base: str, runs: int, warmup: int, check: bool) -> int:
    root = make_env(os.path.join(base, "conda"))
    plain = make_env(os.path.join(root, "envs", "bench"))
    scripted = make_env(os.path.join(root, "envs", "bench-activate"), activate_script=True)
    workdir = os.path.join(base, "work")
    os.makedirs(workdir)
    direct = [os.path.join(plain, "bin", "python"), "-c", "pass"]

    def opts(prefix: str, *extra: str) -> list[str]:
        return ["-q", *extra, "-p", prefix, "--workdir", workdir, "--", os.path.join(prefix, "bin", "python"),
                "-c", "pass"]  # fmt: skip

    starters = [("python -m launcher", [sys.executable, "-m", "launcher"])]
    script, note = console_script()
    if script:
        starters.append(("ma-launch script", [script]))
    # (label, argv, counts against the budget)
    variants: list[tuple[str, list[str], bool]] = [("direct: ENV/bin/python -c pass", direct, False)]
    for name, start in starters:
        variants.append((f"{name}", [*start, *opts(plain)], True))
        variants.append((f"{name}, activate.d", [*start, *opts(scripted)], False))
        variants.append(
            (f"{name}, --dry-run --shell sh", [*start, *opts(plain, "--dry-run", "--shell", "sh")], False)
        )

    env = launch_env()
    devnull = os.open(os.devnull, os.O_RDWR)
    times: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    rss: dict[str, list[int]] = {label: [] for label, _, _ in variants}
    try:
        for _ in range(warmup):
            for label, command, _budget in variants:
                _t, _m, code = run_once(command, env, devnull)
                if code != 0:
                    print(
                        f"launch_bench: {label} failed with status {code}: {' '.join(command)}",
                        file=sys.stderr,
                    )
                    return 1
        for i in range(runs):
            # Interleaved and paired: every round runs each variant once; the order alternates so that
            # no variant always runs right after the same neighbour.
            order = variants if i % 2 == 0 else variants[::-1]
            for label, command, _budget in order:
                elapsed, peak, code = run_once(command, env, devnull)
                if code != 0:
                    print(f"launch_bench: {label} failed with status {code}", file=sys.stderr)
                    return 1
                times[label].append(elapsed)
                rss[label].append(peak)
    finally:
        os.close(devnull)

    base_label = variants[0][0]
    base_median = statistics.median(times[base_label])
    print(f"ma-launch start-up cost: {runs} paired runs after {warmup} warm-up, {sys.executable}")
    if note:
        print(note)
    header = (
        f"{'variant':<42} {'median ms':>9} {'p90 ms':>7} {'ratio':>6} {'paired':>6} {'extra ms':>8} "
        f"{'peak RSS':>9}  budget"
    )
    print(header)
    print("-" * len(header))
    over = False
    for label, _command, budgeted in variants:
        median = statistics.median(times[label])
        ratio = median / base_median
        paired = statistics.median(t / b for t, b in zip(times[label], times[base_label]))
        peak_mib = max(rss[label]) / 1024
        if label == base_label:
            verdict = ""
        elif budgeted:
            verdict = f"≤ {BUDGET:g}×: {'ok' if ratio <= BUDGET else 'OVER'}"
            over = over or ratio > BUDGET
        else:
            verdict = "(not budgeted)"
        print(
            f"{label:<42} {median * 1000:>9.1f} {percentile(times[label], 0.9) * 1000:>7.1f} "
            f"{ratio:>5.2f}× {paired:>5.2f}× {(median - base_median) * 1000:>+8.1f} "
            f"{peak_mib:>5.1f} MiB  {verdict}"
        )
    print("ratio = median / direct median; paired = median of per-round ratios;")
    print("extra ms = median - direct median; peak RSS = the largest ru_maxrss of any run")
    return 1 if check and over else 0


if __name__ == "__main__":
    sys.exit(main())
