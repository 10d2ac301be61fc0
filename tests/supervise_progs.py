"""Small programs for the supervisor tests: ``python supervise_progs.py NAME ARGS...``.

Each writes what it observed to files named on its command line (never to the test's pipes, so buffering
cannot hide anything) and touches a "ready" file once its signal handlers are in place.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def touch(path: str) -> None:
    with open(path, "w") as handle:
        handle.write(str(os.getpid()))


def append(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def sleep_forever() -> None:
    while True:
        time.sleep(3600)


def prog_sleep(seconds: str, ready: str = "") -> None:
    """No signal handlers at all: SIGTERM's default action applies."""
    if ready:
        touch(ready)
    time.sleep(float(seconds))


def prog_exit(code: str) -> None:
    sys.exit(int(code))


def prog_die(name: str) -> None:
    """Die of a signal, the way a crashing program does."""
    sig = signal.Signals[name]
    if sig != signal.SIGKILL:
        signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    time.sleep(5)
    sys.exit(99)


def prog_ignore_term(ready: str) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    touch(ready)
    sleep_forever()


def prog_record(out: str, ready: str) -> None:
    """Append the name of every forwarded signal but TERM to ``out``; SIGTERM ends it (default action)."""

    def handler(sig: int, _frame: object) -> None:
        append(out, signal.Signals(sig).name + "\n")

    for name in ("SIGUSR1", "SIGUSR2", "SIGHUP", "SIGINT", "SIGQUIT", "SIGWINCH", "SIGALRM", "SIGCONT"):
        signal.signal(signal.Signals[name], handler)
    touch(ready)
    sleep_forever()


def prog_count_usr1(out: str, ready: str) -> None:
    """Count SIGUSR1; on SIGTERM write the count to ``out`` and exit 0."""
    count = 0

    def on_usr1(_sig: int, _frame: object) -> None:
        nonlocal count
        count += 1

    def on_term(_sig: int, _frame: object) -> None:
        append(out, str(count))
        os._exit(0)

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, on_term)
    touch(ready)
    sleep_forever()


def prog_slow_term(ready: str, delay: str, code: str) -> None:
    """On SIGTERM, take ``delay`` seconds to clean up, then exit ``code`` (ends inside the grace period)."""

    def on_term(_sig: int, _frame: object) -> None:
        time.sleep(float(delay))
        os._exit(int(code))

    signal.signal(signal.SIGTERM, on_term)
    touch(ready)
    sleep_forever()


def prog_zombies(count: str, ready: str) -> None:
    """Make zombies: children never waited for, and double-forked orphans that exit after 0.2 s."""
    for _ in range(int(count)):
        if os.fork() == 0:
            os._exit(0)  # our child: never waited for while we live
        pid = os.fork()
        if pid == 0:
            if os.fork() == 0:
                time.sleep(0.2)
                os._exit(0)  # orphan: re-parented to the supervisor (subreaper or PID 1)
            os._exit(0)
        os.waitpid(pid, 0)
    touch(ready)
    sleep_forever()


def prog_tree(token: str, ready: str, mode: str) -> None:
    """torchrun-like: two workers in their own sessions, one ignoring SIGTERM.

    ``mode`` "wait": stay until signalled (no handler, the workers get no signal from us);
    ``mode`` "exit": exit 0 at once, leaving the workers running.
    """
    workers = []
    for ignore in ("0", "1"):
        marker = f"{ready}.worker{ignore}"
        workers.append(
            subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "worker", f"{token}-worker", ignore, marker],
                start_new_session=True,
            )
        )
        while not os.path.exists(marker):
            time.sleep(0.01)
    touch(ready)
    if mode == "exit":
        os._exit(0)
    sleep_forever()


def prog_worker(token: str, ignore: str, ready: str) -> None:
    del token  # only there so the test can find us by command line
    if ignore == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    touch(ready)
    sleep_forever()


def prog_interactive() -> None:
    """Read a line from the terminal, echo it, then count SIGINTs (Ctrl-C) and die of the first one."""
    print("ready", flush=True)
    line = sys.stdin.readline().strip()
    print(f"got {line}", flush=True)
    hits = 0

    def on_int(_sig: int, _frame: object) -> None:
        nonlocal hits
        hits += 1

    signal.signal(signal.SIGINT, on_int)
    print("waiting", flush=True)
    while not hits:
        time.sleep(0.01)
    time.sleep(0.5)  # a second, forwarded SIGINT would arrive here
    print(f"sigint {hits}", flush=True)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


def prog_latency(out: str, ready: str) -> None:
    """Record CLOCK_MONOTONIC at each SIGUSR1; on SIGTERM write them to ``out``, one a line, and exit 0."""
    stamps: list[float] = []

    def on_usr1(_sig: int, _frame: object) -> None:
        stamps.append(time.monotonic())

    def on_term(_sig: int, _frame: object) -> None:
        append(out, "".join(f"{stamp!r}\n" for stamp in stamps))
        os._exit(0)

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, on_term)
    touch(ready)
    sleep_forever()


def prog_checkpoint(name: str, ready: str, out: str, delay: str, code: str) -> None:
    """Checkpoint on signal ``name`` (write its name to ``out``), take ``delay`` seconds, exit ``code``; any
    other stop signal is written too, and ends it at once with code 99."""

    def on_stop(sig: int, _frame: object) -> None:
        append(out, signal.Signals(sig).name + "\n")
        if sig != signal.Signals[name]:
            os._exit(99)
        time.sleep(float(delay))
        os._exit(int(code))

    for stop in ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2", "SIGHUP", "SIGQUIT"):
        signal.signal(signal.Signals[stop], on_stop)
    touch(ready)
    sleep_forever()


def prog_fake_oom(events: str) -> None:
    """What the kernel does on an OOM kill, in a fake cgroup tree: count it in ``events``, then SIGKILL."""
    with open(events) as handle:
        lines = handle.read().splitlines()
    counted = [
        f"oom_kill {int(line.split()[1]) + 1}" if line.startswith("oom_kill ") else line for line in lines
    ]
    with open(events, "w") as handle:
        handle.write("\n".join(counted) + "\n")
    os.kill(os.getpid(), signal.SIGKILL)


def prog_device_holder(device: str, ready: str) -> None:
    """Leave a worker behind (in its own session, as a dataloader worker of torchrun's would be) that
    holds ``device`` open, then exit 0."""
    worker = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "hold-open", device, ready], start_new_session=True
    )
    while not os.path.exists(ready):
        time.sleep(0.01)
    del worker
    os._exit(0)


def prog_hold_open(device: str, ready: str) -> None:
    fd = os.open(device, os.O_RDONLY)  # held until the process ends
    touch(ready)
    assert fd >= 0
    sleep_forever()


PROGRAMS = {
    name[len("prog_") :].replace("_", "-"): func for name, func in globals().items() if name[:5] == "prog_"
}


if __name__ == "__main__":
    PROGRAMS[sys.argv[1]](*sys.argv[2:])
