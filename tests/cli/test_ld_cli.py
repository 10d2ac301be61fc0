"""``--ld-library-path auto`` (the default) and ``--ld-report`` through the real command, with objects
built by gcc and the real loader as the judge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from condakit import make_env, write_exe
from elfkit import build_exe, build_lib, build_pyext
from launchkit import LAUNCH, REPO

PYVER = f"python{sys.version_info[0]}.{sys.version_info[1]}"


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "MA_", "LD_"))}
    env.update(
        PYTHONPATH=str(REPO),
        MA_HOME=str(tmp_path),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        HOME=str(tmp_path / "home"),
    )
    env.update(extra)
    return env


def launch(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAUNCH, *args], env=clean_env(tmp_path, **extra), capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def env(tmp_path: Path) -> Path:
    return make_env(tmp_path / "envs" / "py")


def test_binary_needing_env_lib_runs_only_with_auto(env: Path, tmp_path: Path) -> None:
    lib = build_lib(f"{env}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    build_exe(f"{env}/bin/app", calls=["foo"], needs=[lib])
    ok = launch(tmp_path, "-v", "-p", str(env), "--", "app")
    assert ok.returncode == 0, ok.stderr
    assert f"prepend {env}/lib - it provides libfoo.so.1 (needed by {env}/bin/app)" in ok.stderr
    off = launch(tmp_path, "-q", "--ld-library-path", "off", "-p", str(env), "--", "app")
    assert off.returncode == 127 and "libfoo.so.1: cannot open shared object file" in off.stderr
    data = json.loads(launch(tmp_path, "--json", "-p", str(env), "--", "app").stdout)
    assert data["ld_library_path"]["added"] == [f"{env}/lib"]
    assert data["ld_library_path"]["analysis"]["added"][0]["provides"] == [["libfoo.so.1", f"{env}/bin/app"]]


def test_extension_module_gets_the_nvidia_lib_dir_not_env_lib(env: Path, tmp_path: Path) -> None:
    site = f"{env}/lib/{PYVER}/site-packages"
    nv = build_lib(f"{site}/nvidia/x/lib/libnvx.so.1", "libnvx.so.1", exports=["nvx"])
    build_lib(f"{env}/lib/libother.so.1", "libother.so.1")
    build_pyext(f"{site}/mod", "_core", calls=["nvx"], needs=[nv])
    Path(site, "mod", "__init__.py").write_text("from mod._core import *\n")
    pythonpath = f"{site}:{REPO}"
    code = "import os, mod; print(os.environ['LD_LIBRARY_PATH'])"
    ok = launch(tmp_path, "-q", "-p", str(env), "--", "python", "-c", code, PYTHONPATH=pythonpath)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"{site}/nvidia/x/lib"
    off = launch(
        tmp_path,
        "-q",
        "--ld-library-path",
        "off",
        "-p",
        str(env),
        "--",
        "python",
        "-c",
        code,
        PYTHONPATH=pythonpath,
    )
    assert off.returncode != 0 and "libnvx.so.1" in off.stderr


def test_shadowing_library_with_nothing_missing_adds_nothing(env: Path, tmp_path: Path) -> None:
    build_lib(f"{env}/lib/libz.so.1", "libz.so.1", exports=["fake_inflate"])
    build_lib(f"{env}/lib/libcrypto.so.3", "libcrypto.so.3", exports=["fake_crypto"])
    result = launch(tmp_path, "-q", "-p", str(env), "--", "sh", "-c", 'echo "[${LD_LIBRARY_PATH-unset}]"')
    assert result.stdout.strip() == "[unset]"
    result = launch(
        tmp_path, "-q", "-p", str(env), "--", "sh", "-c", 'echo "$LD_LIBRARY_PATH"', LD_LIBRARY_PATH="/opt/x"
    )
    assert result.stdout.strip() == "/opt/x"


def test_unresolved_sonames_quiet_by_default(env: Path, tmp_path: Path) -> None:
    gone = tmp_path / "elsewhere"
    fake_cuda = build_lib(f"{gone}/libcuda.so.1", "libcuda.so.1", exports=["cuInit"])
    ghost = build_lib(f"{gone}/libghost.so.1", "libghost.so.1", exports=["boo"])
    plugin_dep = build_lib(f"{gone}/libmlx5.so.1", "libmlx5.so.1", exports=["mlx"])
    build_lib(f"{env}/lib/libuses_cuda.so", "libuses_cuda.so", calls=["cuInit"], needs=[fake_cuda])
    plugin = build_lib(f"{env}/lib/libplugin.so", "libplugin.so", calls=["mlx"], needs=[plugin_dep])
    build_exe(f"{env}/bin/app", calls=["boo"], needs=[ghost])
    for child in gone.iterdir():
        child.unlink()

    result = launch(tmp_path, "-p", str(env), "--", "echo", "ran")
    assert result.returncode == 0 and result.stdout == "ran\n"
    lines = result.stderr.splitlines()
    assert not [line for line in lines if line.startswith("ma-launch: warning:")]
    assert (
        "ma-launch: LD_LIBRARY_PATH: libcuda.so.1 is not in the env: "
        "provided by the driver the platform mounts" in lines
    )
    summary = [line for line in lines if "may never load" in line]
    assert summary == [
        "ma-launch: LD_LIBRARY_PATH: 1 soname needed only by libraries the program may never load is found "
        "nowhere (libmlx5.so.1; -v or --ld-report lists them)"
    ]
    assert "libuses_cuda" not in result.stderr and plugin not in result.stderr

    # -v names the optional soname and its needer; the program itself needing one is a warning.
    verbose = launch(tmp_path, "-v", "-p", str(env), "--", "echo", "ran")
    assert any("libmlx5.so.1" in line and plugin in line for line in verbose.stderr.splitlines())
    own = launch(tmp_path, "-p", str(env), "--", "app")
    warnings = [line for line in own.stderr.splitlines() if line.startswith("ma-launch: warning:")]
    assert warnings == [
        f"ma-launch: warning: libghost.so.1 is not found by the loader and not provided by the env "
        f"(needed by {env}/bin/app); the launch continues"
    ]
    assert own.returncode == 127 and "libghost.so.1: cannot open shared object file" in own.stderr


def test_ld_report(env: Path, tmp_path: Path) -> None:
    lib = build_lib(f"{env}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    build_exe(f"{env}/bin/app", calls=["foo"], needs=[lib])
    marker = tmp_path / "ran"
    result = launch(tmp_path, "--ld-report", "-p", str(env), "--", "touch", str(marker))
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    assert f"prepend {env}/lib - it provides libfoo.so.1 (needed by {env}/bin/app)" in result.stdout
    data = json.loads(launch(tmp_path, "--ld-report", "--json", "-p", str(env)).stdout)
    assert data["added"][0]["directory"] == f"{env}/lib" and data["env"]["prefix"] == str(env)
    missing = launch(tmp_path, "--ld-report")
    assert missing.returncode == 2 and "needs an env" in missing.stderr


def test_unwritable_cache_never_breaks_a_launch(env: Path, tmp_path: Path) -> None:
    lib = build_lib(f"{env}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    build_exe(f"{env}/bin/app", calls=["foo"], needs=[lib])
    (tmp_path / "notadir").write_text("")
    result = launch(tmp_path, "-q", "-p", str(env), "--", "app", XDG_CACHE_HOME=str(tmp_path / "notadir"))
    assert result.returncode == 0, result.stderr


def wheel_with_runpath(env: Path) -> tuple[str, str]:
    """A package whose library finds its dependency through RUNPATH $ORIGIN/../dep (as pip wheels do),
    loaded by an importable extension module; returns (site-packages, the dependency's directory)."""
    site = f"{env}/lib/{PYVER}/site-packages"
    dep = build_lib(f"{site}/pkg/dep/libdep.so.1", "libdep.so.1", exports=["dep_one", "dep_new"])
    wrap = build_lib(
        f"{site}/pkg/lib/libwrap.so.1",
        "libwrap.so.1",
        exports=["wrap"],
        calls=["dep_new"],
        needs=[dep],
        runpath="$ORIGIN/../dep",
    )
    build_pyext(f"{site}/pkg", "_core", calls=["wrap"], needs=[wrap], runpath="$ORIGIN/lib")
    Path(site, "pkg", "__init__.py").write_text("from pkg._core import *\n")
    return site, f"{site}/pkg/dep"


def test_inherited_ld_library_path_no_longer_shadows_the_env_copy(env: Path, tmp_path: Path) -> None:
    site, dep_dir = wheel_with_runpath(env)
    # The platform's directory holds an older copy of the same soname, without the symbol.
    cuda = tmp_path / "usr-local-cuda" / "lib64"
    build_lib(f"{cuda}/libdep.so.1", "libdep.so.1", exports=["dep_one"])
    extra = {"PYTHONPATH": f"{site}:{Path(__file__).resolve().parent.parent}", "LD_LIBRARY_PATH": str(cuda)}
    code = "import os, pkg; print(os.environ['LD_LIBRARY_PATH'])"
    off = launch(
        tmp_path, "-q", "--ld-library-path", "off", "-p", str(env), "--", "python", "-c", code, **extra
    )
    assert off.returncode != 0 and "undefined symbol: dep_new" in off.stderr

    auto = launch(tmp_path, "-p", str(env), "--", "python", "-c", code, **extra)
    assert auto.returncode == 0, auto.stderr
    assert auto.stdout.strip() == f"{dep_dir}:{cuda}"
    assert (
        f"ma-launch: LD_LIBRARY_PATH: prepend {dep_dir} - it comes before {cuda} "
        "(inherited LD_LIBRARY_PATH), whose libdep.so.1 would otherwise replace the env's own"
    ) in auto.stderr.splitlines()
    report = json.loads(launch(tmp_path, "--ld-report", "--json", "-p", str(env), **extra).stdout)
    assert report["added"][0]["overrides"] == [
        ["libdep.so.1", f"{site}/pkg/lib/libwrap.so.1", f"{cuda}/libdep.so.1"]
    ]

    # Without the outside copy there is nothing to fix, and nothing is added.
    (cuda / "libdep.so.1").unlink()
    quiet = launch(tmp_path, "-q", "-p", str(env), "--", "python", "-c", code, **extra)
    assert quiet.returncode == 0 and quiet.stdout.strip() == str(cuda)


def test_reach_shell_lines_and_scripts_get_what_env_programs_need(env: Path, tmp_path: Path) -> None:
    lib = build_lib(f"{env}/lib/libtool.so.1", "libtool.so.1", exports=["tool_fn"])
    build_exe(f"{env}/bin/envtool", calls=["tool_fn"], needs=[lib])  # no RPATH: needs env/lib
    site = f"{env}/lib/{PYVER}/site-packages"
    c10 = build_lib(f"{site}/torchish/lib/libc10ish.so", "libc10ish.so", exports=["c10"])
    shim = build_exe(f"{site}/torchish/bin/test_shim", calls=["c10"], needs=[c10], runpath="$ORIGIN")
    plain = tmp_path / "plain.sh"
    plain.write_text(f"envtool && {shim}\n")
    script = write_exe(tmp_path / "run.sh", f"#!/bin/bash\nenvtool && {shim}\n")
    lines = [
        ("-c", "envtool"),
        ("-c", shim),
        ("-c", f"cd {tmp_path} && bash plain.sh"),
        ("--", "bash", str(plain)),
        ("--", str(script)),
        ("--", "sh", "-c", f"envtool; {shim}"),
    ]
    for words in lines:
        off = launch(tmp_path, "-q", "--ld-library-path", "off", "-p", str(env), *words)
        assert off.returncode == 127 and "cannot open shared object file" in off.stderr, words
        auto = launch(tmp_path, "-q", "-p", str(env), *words)
        assert auto.returncode == 0, (words, auto.stderr)
    # The documented fix (the env's lib first) is not enough for the package's own program.
    prefix_mode = launch(tmp_path, "-q", "--ld-library-path", "prefix", "-p", str(env), "-c", shim)
    assert prefix_mode.returncode == 127

    plan = json.loads(launch(tmp_path, "--json", "-p", str(env), "-c", "envtool").stdout)
    report = json.loads(launch(tmp_path, "--ld-report", "--json", "-p", str(env), "-c", "envtool").stdout)
    assert plan["ld_library_path"]["added"] == [a["directory"] for a in report["added"]]
    assert plan["ld_library_path"]["added"] == [f"{env}/lib", f"{site}/torchish/lib"]
    # A Python program is judged by what Python loads: the env's programs are not its business.
    python = json.loads(launch(tmp_path, "--json", "-p", str(env), "--", "python", "-c", "pass").stdout)
    assert python["ld_library_path"]["added"] == []
