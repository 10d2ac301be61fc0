"""Cost of supervisor mode: memory while a job runs, signal-forwarding latency, start-up time.

    python bench/supervise_bench.py [--rounds N] [--samples N]

Every number is paired against a baseline measured in the same run:

* RSS: VmRSS of the supervisor while its child sleeps, against a minimal Python process that only waits
  for the same child (``os.waitpid(os.spawnvp(...))``);
* forwarding latency: time from ``kill()`` of SIGUSR1 to the program's handler, sent through the
  supervisor and sent straight to the program (median and p95);
* start-up: wall time of ``python -c pass`` run by the supervisor against ``python`` exec'ing it in place
  (what ma-launch does outside supervisor mode), and the same through the real command line,
  ``--init always`` against ``--init never``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGS = str(ROOT / "tests" / "supervise_progs.py")
PY = sys.executable


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure with compiled modules, as installed
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


ENV = environment()


def supervised(argv: list[str], *flags: str) -> list[str]:
    code = (
        "import os\nfrom launcher.run.supervise import run_supervised\n"
        f"run_supervised({argv!r}, os.environ, quiet=True)"
    )
    return [PY, *flags, "-c", code]


def waiter(argv: list[str], *flags: str) -> list[str]:
    code = f"import os\nos.waitpid(os.spawnvp(os.P_NOWAIT, {argv[0]!r}, {argv!r}), 0)"
    return [PY, *flags, "-c", code]


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def rss_of(command: list[str]) -> int:
    proc = subprocess.Popen(command, env=ENV, cwd=str(ROOT))
    try:
        time.sleep(0.6)
        return vm_rss_kib(proc.pid)
    finally:
        proc.wait()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def latencies(through_supervisor: bool, samples: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        out, ready = os.path.join(tmp, "out"), os.path.join(tmp, "ready")
        program = [PY, PROGS, "latency", out, ready]
        proc = subprocess.Popen(
            supervised(program) if through_supervisor else program, env=ENV, cwd=str(ROOT)
        )
        while not os.path.exists(ready):
            time.sleep(0.005)
        time.sleep(0.05)
        sent = []
        for _ in range(samples):
            sent.append(time.monotonic())
            os.kill(proc.pid, 10)  # SIGUSR1
            time.sleep(0.01)
        time.sleep(0.1)
        os.kill(proc.pid, 15)
        proc.wait()
        got = [float(line) for line in Path(out).read_text().split()]
    if len(got) != len(sent):
        raise RuntimeError(f"{len(sent)} signals sent, {len(got)} received (coalesced?)")
    return [(g - s) * 1000 for s, g in zip(sent, got)]


def wall_ms(commands: dict[str, list[str]], rounds: int) -> dict[str, tuple[float, float]]:
    """Median and minimum wall time of each command, the commands interleaved round by round."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, env=ENV, cwd=str(ROOT), check=True)
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: (statistics.median(values), min(values)) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    # compile the modules once, so every measured run loads bytecode
    subprocess.run([PY, "-c", "import launcher.run.supervise"], env=ENV, cwd=str(ROOT), check=True)

    job = ["sleep", "1"]
    rounds = max(3, args.rounds // 3)
    for flags, label in (((), "python"), (("-S",), "python -S (no site: the supervisor's own share)")):
        sup_rss = statistics.median(rss_of(supervised(job, *flags)) for _ in range(rounds))
        wait_rss = statistics.median(rss_of(waiter(job, *flags)) for _ in range(rounds))
        print(
            f"RSS while the job runs, {label}: supervisor {sup_rss / 1024:.1f} MiB, minimal Python waiter "
            f"{wait_rss / 1024:.1f} MiB, +{(sup_rss - wait_rss) / 1024:.1f} MiB, "
            f"ratio {sup_rss / wait_rss:.2f} (budget 12 MiB)"
        )

    # the same through the real command line, with everything the launch path imports
    cli = [PY, "-m", "launcher", "-q", "--init", "always", "--workdir", tempfile.gettempdir(), "--", *job]
    try:
        cli_rss = statistics.median(rss_of(cli) for _ in range(rounds))
        print(f"RSS while the job runs, python -m launcher --init always: {cli_rss / 1024:.1f} MiB")
    except (OSError, RuntimeError) as error:
        print(f"RSS through the command line: not measured ({error})")

    direct = latencies(False, args.samples)
    through = latencies(True, args.samples)
    d_med, d_p95 = statistics.median(direct), percentile(direct, 0.95)
    t_med, t_p95 = statistics.median(through), percentile(through, 0.95)
    print(
        f"SIGUSR1 latency, {args.samples} samples: direct median {d_med:.3f} ms p95 {d_p95:.3f} ms; "
        f"through supervisor median {t_med:.3f} ms p95 {t_p95:.3f} ms; "
        f"added median {t_med - d_med:.3f} ms, ratio {t_med / d_med:.2f}"
    )

    target = [PY, "-c", "pass"]
    timed = wall_ms(
        {
            "plain": target,
            "exec": [PY, "-c", f"import os\nos.execv({PY!r}, {target!r})"],
            "supervised": supervised(target),
        },
        args.rounds,
    )
    (plain, plain_min), (exec_ms, exec_min), (sup_ms, sup_min) = timed.values()
    print(
        f"start-up of python -c pass, median (min) of {args.rounds}: alone {plain:.1f} ({plain_min:.1f}) ms; "
        f"exec'd by python {exec_ms:.1f} ({exec_min:.1f}) ms; run by the supervisor {sup_ms:.1f} "
        f"({sup_min:.1f}) ms; supervisor - exec {sup_ms - exec_ms:+.1f} ({sup_min - exec_min:+.1f}) ms, "
        f"ratio {sup_ms / exec_ms:.2f}"
    )

    # Through the real command line: --init always (plan, then exec into the lean supervisor) against
    # --init never (plan, then exec the program): the budget is +10 ms.
    launch = [PY, "-m", "launcher", "-q", "--workdir", tempfile.gettempdir(), "--init"]
    timed = wall_ms(
        {"never": [*launch, "never", "--", *target], "always": [*launch, "always", "--", *target]},
        args.rounds,
    )
    (never, never_min), (always, always_min) = timed.values()
    print(
        f"start-up through ma-launch, median (min) of {args.rounds}: "
        f"--init never {never:.1f} ({never_min:.1f}) ms; "
        f"--init always {always:.1f} ({always_min:.1f}) ms; supervise - exec {always - never:+.1f} "
        f"({always_min - never_min:+.1f}) ms (budget +10 ms)"
    )


if __name__ == "__main__":
    main()
