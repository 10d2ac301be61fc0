"""The real command in supervise mode, as PID 1 of a PID namespace: what the launcher hands to the
supervisor across the exec (the program's environment, a stop request that came while planning), with
gcc-built libraries and real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from condakit import make_env
from elfkit import build_lib, require_tool
from launchkit import clean_env
from needs import missing
from supervisekit import (  # the PID-namespace and process-table helpers
    PY,
    _no_leftovers,  # noqa: F401 - autouse fixture: fail on leftover processes
    as_pid1,
    assert_clean,
    child_of,
    finish,
    prog,
    start,
    wait_file,
)

#: A C program that writes its LD_LIBRARY_PATH to the file named by its first argument and exits 7.
_JOB = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    const char *v = getenv("LD_LIBRARY_PATH");
    fprintf(f, "%s", v ? v : "");
    fclose(f);
    return 7;
}
"""


def launcher(*args: str) -> list[str]:
    return [PY, "-m", "launcher", *args]


def _interpreter_libraries() -> list[str]:
    """The shared libraries the interpreter maps (``python -I -S``: the least it loads), but the C library
    and the loader, which every program needs."""
    maps = subprocess.run(
        [PY, "-I", "-S", "-c", "print(open('/proc/self/maps').read())"], capture_output=True, text=True
    ).stdout
    paths = [line.split()[-1] for line in maps.splitlines() if len(line.split()) >= 6]
    names = {os.path.basename(path) for path in paths if ".so" in os.path.basename(path)}
    return sorted(n for n in names if not n.startswith(("libc.so", "ld-linux", "ld64", "libc-")))


def _poison(lib_dir: Path, elsewhere: Path) -> str:
    """Put into ``lib_dir`` a gcc-built stand-in for a library of the interpreter that cannot be loaded (it
    needs a library that is nowhere to be found), so that ``python -I -S`` dies with "error while loading
    shared libraries" when ``lib_dir`` is first on LD_LIBRARY_PATH; its soname."""
    gone = build_lib(str(elsewhere / "libma-launch-gone.so.1"), "libma-launch-gone.so.1")
    try:
        for soname in _interpreter_libraries():
            stand_in = build_lib(str(lib_dir / soname), soname, needs=[gone])
            broken = subprocess.run(
                [PY, "-I", "-S", "-c", "pass"],
                env={"LD_LIBRARY_PATH": str(lib_dir)},
                capture_output=True,
                text=True,
            )
            if broken.returncode != 0 and "error while loading shared libraries" in broken.stderr:
                return soname
            os.unlink(stand_in)
    finally:
        os.unlink(gone)
    return missing("no library of this interpreter is found through LD_LIBRARY_PATH")


def test_the_supervisor_does_not_run_with_the_programs_libraries(tmp_path: Path) -> None:
    """The env's lib holds a library the supervisor's interpreter needs, in a build that breaks it (an
    env's libpython, libz or libffi): the program is fine with it, and so must the job be."""
    gcc = require_tool("gcc")
    env_dir = make_env(tmp_path / "env", python=False)
    soname = _poison(env_dir / "lib", tmp_path / "elsewhere")
    subprocess.run(
        [gcc, "-x", "c", "-", "-o", str(env_dir / "bin" / "job")], input=_JOB, text=True, check=True
    )
    seen = tmp_path / "seen"
    command = launcher("--init", "auto", "--grace", "5", "-p", str(env_dir), "--ld-library-path", "prefix")
    command += ["--workdir", str(tmp_path), "--", "job", str(seen)]
    result = subprocess.run(
        as_pid1(command), env=clean_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert "error while loading shared libraries" not in result.stderr, (soname, result.stderr)
    assert result.returncode == 7, result.stderr
    assert "program ended: exit code 7" in result.stderr
    assert seen.read_text().split(":")[0] == str(env_dir / "lib")  # the program did get the env's libraries
    assert_clean(result.stderr)


def test_the_programs_environment_reaches_it_exactly_and_only_it(tmp_path: Path) -> None:
    """The supervisor keeps the launcher's environment; the program's (the env's variables, large and
    non-UTF-8 values) arrives byte for byte, on no command line; the program inherits no descriptor, and
    the supervisor holds only the launch record besides its standard streams."""
    ready = tmp_path / "ready"
    env_dir = make_env(tmp_path / "env", state={"PLANNED_ONLY": "planned-secret"})
    big = {f"BIG_{i}": str(i) * 100_000 for i in range(6)}  # 600 kB: more than a pipe holds
    odd = os.fsdecode(b"caf\xe9 \xff=\x01")
    env = {**clean_env(tmp_path), **big, "ODD_VALUE": odd}
    check = (
        "import os, sys; e = os.environb;"
        "ok = all(e[b'BIG_%d' % i] == str(i).encode() * 100_000 for i in range(6));"
        f"ok = ok and e[b'ODD_VALUE'] == {os.fsencode(odd)!r};"
        "ok = ok and e[b'PLANNED_ONLY'][::-1] == b'terces-dennalp';"  # the value is not on any command line
        "fds = sorted(int(f) for f in os.listdir('/proc/self/fd'));"
        f"open({str(tmp_path / 'report')!r}, 'w').write(repr((ok, fds)));"
        f"open({str(ready)!r}, 'w').close(); import time; time.sleep(60)"
    )
    command = launcher("-q", "--init", "always", "-p", str(env_dir), "--workdir", str(tmp_path))
    proc = start([*command, "--ld-library-path", "off", "--", PY, "-c", check], env=env)
    wait_file(ready)
    ok, fds = eval((tmp_path / "report").read_text())  # noqa: S307 - our own repr
    assert ok
    assert fds == [0, 1, 2, 3]  # stdin, stdout, stderr and the listing itself
    supervisor_environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
    assert b"PLANNED_ONLY=planned-secret" not in supervisor_environ
    assert f"BIG_0={big['BIG_0']}".encode() in supervisor_environ  # the launcher's own, as it was
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    assert b"planned-secret" not in cmdline
    held = {fd: os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")}
    others = {fd: target for fd, target in held.items() if fd not in ("0", "1", "2")}
    assert [target.split(" ")[0] for target in others.values()] == ["/memfd:ma-launch-record"], held
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == -signal.SIGTERM, err


# -- a stop request while planning ------------------------------------------------------------------------


def _slow_activation(tmp_path: Path, seconds: float) -> tuple[Path, Path]:
    """An env whose activate.d script marks that it runs, then takes ``seconds``; and that marker."""
    activating = tmp_path / "activating"
    env_dir = make_env(
        tmp_path / "env",
        scripts={"slow.sh": f"touch {activating}\nsleep {seconds}\nexport SLOW_DONE=1\n"},
    )
    return env_dir, activating


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_activation_ends_the_job_without_starting_the_program(tmp_path: Path, sig: int) -> None:
    env_dir, activating = _slow_activation(tmp_path, 2)
    started = tmp_path / "started"
    command = launcher("--init", "auto", "--grace", "20", "-p", str(env_dir), "--workdir", str(tmp_path))
    command += ["--ld-library-path", "off", "--", *prog("sleep", "30", str(started))]
    proc = start(as_pid1(command), env=clean_env(tmp_path))
    wait_file(activating)
    sent = time.monotonic()
    os.kill(child_of(proc.pid), sig)  # PID 1 of the namespace: the launcher, still planning
    code, err = finish(proc, timeout=30)
    assert code == 128 + sig, err
    assert time.monotonic() - sent < 8.0  # the rest of the 2 s script, then at once (not the 30 s program)
    assert not started.exists(), "the program was started after the stop request"
    assert f"{signal.Signals(sig).name} received before the program started: it was not started" in err
    assert_clean(err)


def test_a_stop_during_the_rank_table_wait_ends_it_at_once(tmp_path: Path) -> None:
    started = tmp_path / "started"
    env = clean_env(tmp_path, RANK_TABLE_FILE=str(tmp_path / "never"), MA_MOUNT_PATH=str(tmp_path))
    command = launcher("--init", "auto", "--rank-table-timeout", "8", "--workdir", str(tmp_path))
    command += ["--ld-library-path", "off", "--", *prog("sleep", "30", str(started))]
    proc = start(as_pid1(command), env=env)
    pid1 = child_of(proc.pid)
    time.sleep(1.0)  # planning is done by now; the launcher (PID 1's child) polls for the table
    planner = child_of(pid1)
    assert Path(f"/proc/{planner}/cmdline").read_bytes() == Path(f"/proc/{pid1}/cmdline").read_bytes()
    sent = time.monotonic()
    os.kill(pid1, signal.SIGTERM)
    code, err = finish(proc, timeout=30)
    assert code == 143, err
    assert time.monotonic() - sent < 4.0  # not the 8 s timeout
    assert not started.exists()
    assert "SIGTERM received before the program started" in err
    assert_clean(err)


def test_a_stop_while_planning_without_pid1_dies_of_it(tmp_path: Path) -> None:
    """``--init always`` outside PID 1: the stop is kept the same way and the launcher dies of it, after the
    activate.d script (not killed half-way) and without starting the program."""
    env_dir, activating = _slow_activation(tmp_path, 1)
    started = tmp_path / "started"
    command = launcher("--init", "always", "-p", str(env_dir), "--workdir", str(tmp_path))
    command += ["--ld-library-path", "off", "--", *prog("sleep", "30", str(started))]
    proc = start(command, env=clean_env(tmp_path))
    wait_file(activating)
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc, timeout=30)
    assert code == -signal.SIGTERM, err
    assert not started.exists()
    assert_clean(err)


def test_nohup_keeps_hangup_ignored(tmp_path: Path) -> None:
    """A HUP ignored by the launcher's parent is not turned into a stop request, and stays ignored."""
    nohup = require_tool("nohup")
    env_dir, activating = _slow_activation(tmp_path, 1)
    out = tmp_path / "sigign"
    show = f"grep SigIgn /proc/self/status > {out}"
    command = [nohup, *launcher("-q", "--init", "always", "-p", str(env_dir), "--workdir", str(tmp_path))]
    command += ["--ld-library-path", "off", "--", "sh", "-c", show]
    proc = start(command, env=clean_env(tmp_path), cwd=str(tmp_path))
    wait_file(activating)
    proc.send_signal(signal.SIGHUP)
    code, err = finish(proc, timeout=30)
    assert code == 0, err
    assert int(out.read_text().split()[1], 16) & (1 << (signal.SIGHUP - 1))
