"""Exit code 127 from a program that started: the LD analysis, run in its own interpreter by
:func:`launcher.run.loaderfix.explain_exit_127`, names the library the real loader could not find and the
fix. The programs are built by gcc; the loader's own exit code 127 is checked first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from condakit import make_env, write_exe
from elfkit import build_exe, build_lib
from launchkit import REPO

from launcher.run.loaderfix import explain_exit_127


def program_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    env.update(extra)
    return env


@pytest.fixture
def env_prefix(tmp_path: Path) -> Path:
    prefix = make_env(tmp_path / "env")
    lib = build_lib(str(prefix / "lib" / "extra" / "libtrain.so.3"), "libtrain.so.3", exports=["train"])
    build_exe(str(tmp_path / "bin" / "trainer"), calls=["train"], needs=[lib])
    return prefix


def loader_exit(program: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([program], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 127, done.stderr
    assert "error while loading shared libraries" in done.stderr
    return done


def test_the_env_provides_the_missing_library(tmp_path: Path, env_prefix: Path) -> None:
    env = program_env(tmp_path, CONDA_PREFIX=str(env_prefix))
    loader_exit(str(tmp_path / "bin" / "trainer"), env)
    found = explain_exit_127("trainer", env)
    trainer, directory = tmp_path / "bin" / "trainer", env_prefix / "lib" / "extra"
    assert found.missing
    assert found.lines == (
        f"exit code 127 from a program that started: the loader could not find libtrain.so.3 (needed by "
        f"{trainer}); the env has it in {directory} (fix: --ld-library-path auto, or "
        f"LD_LIBRARY_PATH={directory}:$LD_LIBRARY_PATH)",
    )
    assert found.data == {
        "program": str(trainer),
        "env": str(env_prefix),
        "provided": [{"soname": "libtrain.so.3", "needed_by": str(trainer), "directory": str(directory)}],
        "not_provided": [],
    }


def test_nothing_provides_it(tmp_path: Path, env_prefix: Path) -> None:
    (env_prefix / "lib" / "extra" / "libtrain.so.3").unlink()
    env = program_env(tmp_path, CONDA_PREFIX=str(env_prefix))
    loader_exit(str(tmp_path / "bin" / "trainer"), env)
    found = explain_exit_127("trainer", env)
    assert found.missing
    assert found.lines == (
        f"exit code 127 from a program that started: the loader could not find libtrain.so.3 (needed by "
        f"{tmp_path / 'bin' / 'trainer'}); the env does not provide it (fix: install it in the env; "
        f"ma-launch --ld-report -p {env_prefix} lists everything missing)",
    )


def test_without_an_env_the_program_alone_is_checked(tmp_path: Path, env_prefix: Path) -> None:
    env = program_env(tmp_path)
    loader_exit(str(tmp_path / "bin" / "trainer"), env)
    found = explain_exit_127(str(tmp_path / "bin" / "trainer"), env)
    assert found.missing and found.data is not None and found.data["env"] is None
    assert "no conda env is active (fix: install it, or put its directory on LD_LIBRARY_PATH)" in "".join(
        found.lines
    )
    assert not (tmp_path / "cache").exists()  # nothing cached for "no env"


def test_a_shell_exit_127_is_not_a_loader_failure(tmp_path: Path, env_prefix: Path) -> None:
    script = write_exe(tmp_path / "bin" / "run.sh", "#!/bin/sh\nno-such-tool-xyz\n")
    env = program_env(tmp_path, CONDA_PREFIX=str(env_prefix))
    assert subprocess.run([str(script)], env=env, capture_output=True, timeout=30).returncode == 127
    found = explain_exit_127("run.sh", env)
    assert not found.missing
    assert found.lines[0].startswith("exit code 127 from a program that started, and no shared library of ")
    assert found.lines[0].endswith(": a command it ran was probably not found (a shell's exit code 127)")


def test_an_analysis_that_fails_or_runs_out_of_time_says_so(tmp_path: Path, env_prefix: Path) -> None:
    env = program_env(tmp_path, CONDA_PREFIX=str(env_prefix))
    late = explain_exit_127("trainer", env, deadline=0.001)
    assert not late.missing and "the analysis did not run" in late.lines[0]
    assert "ma-launch --ld-report" in late.lines[0]


def test_the_checker_refuses_a_malformed_request() -> None:
    boot = "import sys; sys.path.insert(0, sys.argv.pop(1)); import launcher.run.loadercheck as c; c.main()"
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", boot, str(REPO)], input=b"[1, 2]", capture_output=True, timeout=30
    )
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().startswith("ma-launch: error: a malformed request: ")
    assert len(done.stderr.splitlines()) == 1


def test_a_missing_driver_library_points_at_the_flavor(tmp_path: Path) -> None:
    driver = build_lib(str(tmp_path / "gone" / "libcuda.so.1"), "libcuda.so.1", exports=["cuInit"])
    build_exe(str(tmp_path / "bin" / "gpu-tool"), calls=["cuInit"], needs=[driver])
    (tmp_path / "gone" / "libcuda.so.1").unlink()
    env = program_env(tmp_path)
    loader_exit(str(tmp_path / "bin" / "gpu-tool"), env)
    found = explain_exit_127("gpu-tool", env)
    assert found.missing
    assert found.lines[0].endswith(
        "libcuda.so.1 (needed by " + str(tmp_path / "bin" / "gpu-tool") + "); it comes with the accelerator "
        "driver the platform mounts at run time (fix: a GPU/NPU flavor)"
    )
