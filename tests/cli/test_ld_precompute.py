"""Warm on the first boot: ``ma-launch --ld-report --save`` pre-computes an env's analysis at image build;
a launch in a fresh container (empty cache) reads it, checks it against the env's directories, and never
writes it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest
from condakit import REAL_PYTHON, make_env
from elfkit import build_exe, build_lib, build_pyext, run
from launchkit import REPO
from unprivileged import as_nobody

import launcher.ld.fresh as fresh_module
from launcher.ld.analysis import analyze
from launcher.ld.elf import read_elf
from launcher.ld.elfinfo import ElfInfo
from launcher.ld.store import NullStore
from launcher.run.ldstore import DiskStore, encode, precomputed_dir

ROOT = str(REPO)
PYVER = f"python{sys.version_info[0]}.{sys.version_info[1]}"
CLEAN = {"PATH": "/usr/bin:/bin"}


def launch(cwd: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT, "MA_HOME": str(cwd), "HOME": str(home)}
    return subprocess.run(
        [REAL_PYTHON, "-m", "launcher", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def env(tmp_path: Path) -> Path:
    prefix = make_env(tmp_path / "envs" / "py")
    (prefix / "etc").mkdir()  # as in conda's envs: saving adds etc/ma-launch, not a top-level directory
    lib = build_lib(f"{prefix}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    build_exe(f"{prefix}/bin/app", calls=["foo"], needs=[lib])
    site = f"{prefix}/lib/{PYVER}/site-packages"
    nv = build_lib(f"{site}/nvidia/x/lib/libnvx.so.1", "libnvx.so.1", exports=["nvx"])
    build_pyext(f"{site}/mod", "_core", calls=["nvx"], needs=[nv])
    return prefix


class Parses:
    """Counts the env files the analysis parses (patched in for one test)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        monkeypatch.setattr(fresh_module, "read_elf", self)

    def __call__(self, path: str) -> Optional[ElfInfo]:
        self.paths.append(path)
        return read_elf(path)


def age(prefix: Path, seconds: int = 60) -> None:
    """Date every file and directory of the env ``seconds`` back (an image's env is made in earlier build
    steps than the one that saves its analysis)."""
    for root, dirs, files in os.walk(prefix, topdown=False):
        for name in [*files, *dirs, ""]:
            path = os.path.join(root, name) if name else root
            st = os.lstat(path)
            then = st.st_mtime_ns - seconds * 10**9
            os.utime(path, ns=(then, then), follow_symlinks=False)


def save(env: Path, tmp_path: Path, *, aged: bool = True) -> subprocess.CompletedProcess[str]:
    if aged:
        age(env)
    result = launch(tmp_path, "--ld-report", "-p", str(env), "--save", home=tmp_path / "build-home")
    assert result.returncode == 0, result.stderr
    return result


def unpack_like_an_image(prefix: Path) -> None:
    """What pulling an image does to the env: a copy (new inodes and ctimes), mtimes cut to seconds."""
    copy = prefix.with_name(prefix.name + ".layer")
    shutil.copytree(prefix, copy, symlinks=True)
    shutil.rmtree(prefix)
    copy.rename(prefix)
    for root, dirs, files in os.walk(prefix, topdown=False):
        for name in [*files, *dirs]:
            path = os.path.join(root, name)
            st = os.lstat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns // 10**9 * 10**9), follow_symlinks=False)
        st = os.stat(root)
        os.utime(root, ns=(st.st_atime_ns, st.st_mtime_ns // 10**9 * 10**9))


class Links:
    """Counts full analyses (linking the env), patched in for one test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = fresh_module._link

        def counted(*args: Any) -> Any:
            self.count += 1
            return real(*args)

        monkeypatch.setattr(fresh_module, "_link", counted)


def test_save_then_a_fresh_container_uses_the_saved_answer(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = save(env, tmp_path)
    directory = precomputed_dir(str(env))
    assert f"saved for the launches of this image: {directory}" in saved.stdout
    assert sorted(os.listdir(directory)) == ["index", "objects", "walk"]
    fresh = analyze(str(env), sys.executable, CLEAN, store=NullStore())

    unpack_like_an_image(env)
    links, parses = Links(monkeypatch), Parses(monkeypatch)
    cache = tmp_path / "fresh-home" / ".cache" / "ma-launch"
    for program in ("/bin/bash", "/bin/sh", sys.executable):
        result = analyze(str(env), program, CLEAN, store=DiskStore(str(cache)))
        assert result.from_cache and links.count == 0 and parses.paths == []
    assert result.added == fresh.added  # the Python's answer
    assert not cache.exists()  # nothing to keep: the image's answer holds

    # A platform LD_LIBRARY_PATH holding none of the env's sonames: the answer still holds.
    platform = tmp_path / "usr-local-cuda-lib64"
    build_lib(f"{platform}/libunrelated.so.1", "libunrelated.so.1")
    ld = {**CLEAN, "LD_LIBRARY_PATH": f"{platform}:/nonexistent"}
    assert analyze(str(env), sys.executable, ld, store=DiskStore(str(cache))).from_cache and links.count == 0

    # Another question (a program nobody pre-computed): linked, but nothing parsed.
    other = analyze(str(env), f"{env}/bin/app", CLEAN, store=DiskStore(str(cache)))
    assert not other.from_cache and links.count == 1 and parses.paths == []
    assert sorted(p.rsplit(".", 1)[1] for p in os.listdir(cache)) == ["index"]
    assert analyze(str(env), f"{env}/bin/app", CLEAN, store=DiskStore(str(cache))).from_cache

    # Without it, the same launch parses the env.
    alone = DiskStore(str(tmp_path / "c2"), precomputed=False)
    assert analyze(str(env), sys.executable, CLEAN, store=alone).added == fresh.added and parses.paths


def test_a_platform_directory_with_the_env_sonames_is_analysed_again(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save(env, tmp_path)
    site = f"{env}/lib/{PYVER}/site-packages"
    platform = tmp_path / "usr-local-cuda-lib64"
    build_lib(f"{platform}/libnvx.so.1", "libnvx.so.1", exports=["nvx"])  # the same soname as the wheel's
    links = Links(monkeypatch)
    ld = {**CLEAN, "LD_LIBRARY_PATH": str(platform)}
    result = analyze(str(env), sys.executable, ld, store=DiskStore(str(tmp_path / "c")))
    assert links.count == 1 and not result.from_cache
    assert result.directories == (f"{site}/nvidia/x/lib",)
    assert result.added[0].overrides == (
        (("libnvx.so.1", f"{site}/mod/_core{_suffix()}", f"{platform}/libnvx.so.1")),
    )
    assert not analyze(str(env), sys.executable, CLEAN, store=NullStore()).added[0].overrides


def test_a_changed_env_is_checked_directory_by_directory(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save(env, tmp_path)
    unpack_like_an_image(env)
    site = f"{env}/lib/{PYVER}/site-packages"
    extra = build_lib(f"{site}/late/lib/liblate.so.1", "liblate.so.1", exports=["late"])
    build_pyext(f"{site}/latemod", "_core", calls=["late"], needs=[extra])
    parses = Parses(monkeypatch)
    result = analyze(str(env), sys.executable, CLEAN, store=DiskStore(str(tmp_path / "c")))
    assert f"{site}/late/lib" in result.directories and f"{site}/nvidia/x/lib" in result.directories
    assert sorted(parses.paths) == sorted([extra, f"{site}/latemod/_core{_suffix()}"])


def _suffix() -> str:
    import sysconfig

    return str(sysconfig.get_config_var("EXT_SUFFIX") or ".so")


def test_launches_read_it_and_never_write_it(env: Path, tmp_path: Path) -> None:
    save(env, tmp_path)
    directory = Path(precomputed_dir(str(env)))
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir()}
    home = tmp_path / "job-home"
    for words in (["app"], ["python", "-c", "pass"], ["app"]):
        assert launch(tmp_path, "-q", "-p", str(env), "--", *words, home=home).returncode == 0
    build_lib(f"{env}/lib/libnew.so.1", "libnew.so.1")
    assert launch(tmp_path, "-q", "-p", str(env), "--", "app", home=home).returncode == 0
    assert run([f"{env}/bin/app"], [f"{env}/lib"]).returncode == 0
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir()} == before


def test_as_an_unprivileged_user_with_a_read_only_env(env: Path, tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to switch users")
    save(env, tmp_path)
    for path in [tmp_path, *tmp_path.parents]:
        if path.stat().st_mode & 0o005 != 0o005:
            os.chmod(path, path.stat().st_mode | 0o005)
    home = tmp_path / "nobody-home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    environ = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT, "MA_HOME": str(home), "HOME": str(home)}
    cmd = as_nobody([REAL_PYTHON, "-m", "launcher"])
    ok = subprocess.run(
        [*cmd, "-v", "-p", str(env), "--", "app"], env=environ, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert f"prepend {env}/lib - it provides libfoo.so.1" in ok.stderr
    denied = subprocess.run(
        [*cmd, "--ld-report", "-p", str(env), "--save"], env=environ, capture_output=True, text=True
    )
    assert denied.returncode == 77 and denied.stderr.startswith(
        "ma-launch: error: cannot save the LD analysis"
    )
    assert "Traceback" not in denied.stderr


def test_a_foreign_or_forged_precomputed_analysis_is_not_used(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to give files away")
    save(env, tmp_path)
    walk = Path(precomputed_dir(str(env))) / "walk"
    for doc in walk.parent.iterdir():
        os.chown(doc, 4242, 4242)  # neither root, nor the current user, nor the env's owner
    expected = analyze(str(env), f"{env}/bin/app", CLEAN, store=NullStore()).directories
    assert f"{env}/lib" in expected
    parses = Parses(monkeypatch)
    first = analyze(str(env), f"{env}/bin/app", CLEAN, store=DiskStore(None))
    assert first.directories == expected and parses.paths

    # A walk (owned by us, right checksum) that leads outside the env is not followed.
    outside = tmp_path / "outside"
    build_lib(f"{outside}/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    forged = {
        "v": 3,
        "prefix": str(env),
        "coarse": True,
        "dirs": {"": [[0], ["../../outside"], [], {}, [], False]},
    }
    walk.write_bytes(encode(forged))
    os.chown(walk, 0, 0)
    result = analyze(str(env), f"{env}/bin/app", CLEAN, store=DiskStore(None))
    assert result.directories == expected


def test_save_goes_with_ld_report(env: Path, tmp_path: Path) -> None:
    bad = launch(tmp_path, "--save", "-p", str(env), "--", "app", home=tmp_path / "h")
    assert bad.returncode == 2 and "--save goes with --ld-report" in bad.stderr


def test_what_changed_in_the_second_of_the_save_is_read_again(env: Path, tmp_path: Path) -> None:
    save(env, tmp_path, aged=False)  # the env was made in the same second: its mtimes prove nothing
    site = f"{env}/lib/{PYVER}/site-packages"
    extra = build_lib(f"{site}/late/lib/liblate.so.1", "liblate.so.1", exports=["late"])
    build_pyext(f"{site}/latemod", "_core", calls=["late"], needs=[extra])
    os.utime(site, ns=(os.stat(site).st_atime_ns, os.stat(site).st_mtime_ns // 10**9 * 10**9))
    result = analyze(str(env), sys.executable, CLEAN, store=DiskStore(None))
    assert f"{site}/late/lib" in result.directories


def test_the_driver_mounted_at_boot_does_not_void_the_saved_answer(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "build-time"
    cuda = build_lib(f"{gone}/libcuda.so.1", "libcuda.so.1", exports=["cuInit"])
    site = f"{env}/lib/{PYVER}/site-packages"
    build_pyext(f"{site}/gpu", "_probe", calls=["cuInit"], needs=[cuda])
    shutil.rmtree(gone)  # as in an image: no driver at build time
    save(env, tmp_path)
    driver = tmp_path / "usr-local-nvidia-lib64"  # what the platform mounts and puts on LD_LIBRARY_PATH
    build_lib(f"{driver}/libcuda.so.1", "libcuda.so.1", exports=["cuInit"])
    links = Links(monkeypatch)
    ld = {**CLEAN, "LD_LIBRARY_PATH": str(driver)}
    result = analyze(str(env), sys.executable, ld, store=DiskStore(str(tmp_path / "c")))
    assert result.from_cache and links.count == 0
    assert "libcuda.so.1" in result.notes()[-1] and not result.warnings()
    # Analysed afresh, the answer is the same: the driver is never a directory to add or to put behind.
    fresh = analyze(str(env), sys.executable, ld, store=NullStore())
    assert fresh.directories == result.directories and all(not a.overrides for a in fresh.added)
