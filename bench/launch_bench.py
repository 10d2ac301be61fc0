"""What a launch through ma-launch costs over the interpreter start itself, measured against a fast one.

    python bench/launch_bench.py [--runs N] [--warmup N] [--python PATH] [--check]

The physical limit of a launch is two interpreter starts: one for ma-launch, one for the program. The
baseline must be a fast interpreter (a slow one hides the launcher's own cost): ``/usr/bin/python3`` when
it exists (Debian's optimized build), else this interpreter; ``--python`` chooses another. The bench

1. makes a throw-away virtual environment from that interpreter and installs this checkout into it (no
   dependencies: the launch path imports none), so ``ma-launch`` runs as the console script a user has;
2. makes a conda-shaped env whose ``bin/python`` is a link to the same interpreter, with nothing to source
   (and a second one with one ``activate.d`` script);
3. times, paired and interleaved (every round runs each variant once, the order alternating), the bare
   ``ENV/bin/python -c pass`` against each variant, and prints per variant the median of the per-round
   ratios against the bare run, the median extra milliseconds, and the peak RSS.

Each run is one process started with posix_spawn and reaped with wait4 (wall time and ru_maxrss, which
covers the program ma-launch exec'd into). Budgets (issue "launch speed"): exec with a warm LD cache
≤ 2.5× bare; ``--dry-run`` and ``--json`` ≤ 3× bare; ``--init always`` ≤ exec + 10 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
#: Variables that would change which env ma-launch chooses or how it behaves.
_CLEARED = ("CONDA_PREFIX", "CONDA_SHLVL", "CONDA_DEFAULT_ENV", "ANACONDA_DIR", "DEFAULT_CONDA_ENV_NAME")
EXEC_BUDGET = 2.5
SHOW_BUDGET = 3.0
SUPERVISE_BUDGET_MS = 10.0


def fast_python(requested: str | None) -> str:
    """The baseline interpreter: ``--python``, else /usr/bin/python3, else this one."""
    if requested:
        return requested
    if os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"
    return os.path.realpath(sys.executable)


def install(python: str, where: str) -> str:
    """A venv made from ``python`` with this checkout installed (no dependencies), then without pip and
    setuptools, as the README installs it into an image; its ``ma-launch``."""
    subprocess.run([python, "-m", "venv", where], check=True)
    pip = [os.path.join(where, "bin", "python"), "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--no-deps", REPO], check=True, cwd=where)
    subprocess.run([*pip, "uninstall", "-y", "pip", "setuptools"], check=True, cwd=where)
    return os.path.join(where, "bin", "ma-launch")


def make_env(prefix: str, python: str, *, activate_script: bool = False) -> str:
    """A conda env at ``prefix``: conda-meta/history and bin/python → ``python``."""
    os.makedirs(os.path.join(prefix, "conda-meta"))
    with open(os.path.join(prefix, "conda-meta", "history"), "w", encoding="utf-8"):
        pass
    os.makedirs(os.path.join(prefix, "bin"))
    os.makedirs(os.path.join(prefix, "lib"))
    os.symlink(python, os.path.join(prefix, "bin", "python"))
    if activate_script:
        folder = os.path.join(prefix, "etc", "conda", "activate.d")
        os.makedirs(folder)
        with open(os.path.join(folder, "bench.sh"), "w", encoding="utf-8") as handle:
            handle.write("export BENCH_ACTIVATED=1\n")
    return prefix


def run_once(argv: list[str], env: dict[str, str], devnull: int) -> tuple[float, int, int]:
    """Start ``argv``, wait for it; (seconds, peak RSS in KiB, exit status)."""
    actions = [(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _pid, status, usage = os.wait4(pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


class Variant:
    """One command to time; ``fresh_cache`` gives every run an empty LD cache directory."""

    def __init__(self, label: str, argv: list[str], *, fresh_cache: bool = False) -> None:
        self.label = label
        self.argv = argv
        self.fresh_cache = fresh_cache
        self.times: list[float] = []
        self.rss: list[int] = []


def variants(launcher: str, python: str, base: str) -> list[Variant]:
    plain = make_env(os.path.join(base, "conda", "envs", "plain"), python)
    scripted = make_env(os.path.join(base, "conda", "envs", "scripted"), python, activate_script=True)
    work = os.path.join(base, "work")
    os.makedirs(work)

    def launch(prefix: str, *extra: str) -> list[str]:
        command = [os.path.join(prefix, "bin", "python"), "-c", "pass"]
        return [launcher, *extra, "-p", prefix, "--workdir", work, "--", *command]

    return [
        Variant("bare: ENV/bin/python -c pass", [os.path.join(plain, "bin", "python"), "-c", "pass"]),
        Variant("exec, warm LD cache", launch(plain)),
        Variant("exec, warm, -q", launch(plain, "-q")),
        Variant("exec, cold LD cache", launch(plain), fresh_cache=True),
        Variant("exec, --ld-library-path off", launch(plain, "--ld-library-path", "off")),
        Variant("exec, one activate.d script", launch(scripted)),
        Variant("supervise (--init always), warm", launch(plain, "--init", "always")),
        Variant("--dry-run --shell sh", launch(plain, "--dry-run", "--shell", "sh")),
        Variant("--dry-run (shell detected)", launch(plain, "--dry-run")),
        Variant("--json", launch(plain, "--json")),
        Variant("--version", [launcher, "--version"]),
        Variant("--help", [launcher, "--help"]),
    ]


def measure(items: list[Variant], env: dict[str, str], base: str, runs: int, warmup: int) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for round_ in range(warmup + runs):
            order = items if round_ % 2 == 0 else items[::-1]
            for item in order:
                run_env = env
                if item.fresh_cache:
                    run_env = {**env, "XDG_CACHE_HOME": tempfile.mkdtemp(dir=base)}
                elapsed, peak, code = run_once(item.argv, run_env, devnull)
                if code != 0:
                    raise SystemExit(f"launch_bench: {item.label} failed with status {code}: {item.argv}")
                if round_ >= warmup:
                    item.times.append(elapsed)
                    item.rss.append(peak)
    finally:
        os.close(devnull)


def report(items: list[Variant], python: str, runs: int, warmup: int) -> bool:
    """Print the ratio table; whether every budget holds."""
    bare, exec_warm = items[0], items[1]
    bare_ms = statistics.median(bare.times) * 1000
    print(f"baseline interpreter: {python} (bare start {bare_ms:.1f} ms median)")
    print(f"{runs} paired rounds after {warmup} warm-up; ratio = median of per-round ratios to the bare run")
    header = f"{'variant':<34} {'median ms':>9} {'ratio':>6} {'extra ms':>8} {'peak RSS':>9}  budget"
    print(header)
    print("-" * len(header))
    ok = True
    for item in items:
        ratio = statistics.median(t / b for t, b in zip(item.times, bare.times))
        extra = statistics.median((t - b) * 1000 for t, b in zip(item.times, bare.times))
        verdict = ""
        if item is exec_warm:
            verdict = f"≤ {EXEC_BUDGET:g}×: {'ok' if ratio <= EXEC_BUDGET else 'OVER'}"
            ok = ok and ratio <= EXEC_BUDGET
        elif item.label.startswith(("--dry-run", "--json")):
            verdict = f"≤ {SHOW_BUDGET:g}×: {'ok' if ratio <= SHOW_BUDGET else 'OVER'}"
            ok = ok and ratio <= SHOW_BUDGET
        elif item.label.startswith("supervise"):
            over = statistics.median((s - e) * 1000 for s, e in zip(item.times, exec_warm.times))
            verdict = f"exec +{over:.1f} ms (≤ +{SUPERVISE_BUDGET_MS:g}): "
            verdict += "ok" if over <= SUPERVISE_BUDGET_MS else "OVER"
            ok = ok and over <= SUPERVISE_BUDGET_MS
        print(
            f"{item.label:<34} {statistics.median(item.times) * 1000:>9.1f} {ratio:>5.2f}× {extra:>+8.1f} "
            f"{max(item.rss) / 1024:>5.1f} MiB  {verdict}"
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=21, help="paired rounds (default 21; at least 21)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--python", help="the baseline interpreter (default /usr/bin/python3)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a budget does not hold")
    args = parser.parse_args(argv)
    python = fast_python(args.python)
    base = tempfile.mkdtemp(prefix="ma-launch-bench-")
    try:
        launcher = install(python, os.path.join(base, "venv"))
        items = variants(launcher, python, base)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MA_LAUNCH_") and k not in _CLEARED}
        env["XDG_CACHE_HOME"] = os.path.join(base, "cache")
        env.pop("PYTHONPATH", None)
        measure(items, env, base, max(args.runs, 1), args.warmup)
        ok = report(items, python, args.runs, args.warmup)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
