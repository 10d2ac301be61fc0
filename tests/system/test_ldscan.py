from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest
from elfkit import build_exe, build_lib, build_pyext, ext_suffix, make_elf, run
from launchkit import REPO
from unprivileged import as_nobody

from launcher.ld.analysis import AddedDir, LdAnalysis, Unresolved, analyze
from launcher.ld.ldsocache import parse_ld_so_cache
from launcher.ld.store import NullStore
from launcher.run.ldstore import DiskStore, encode

CLEAN: dict[str, str] = {"PATH": "/usr/bin:/bin"}
PYVER = f"python{sys.version_info[0]}.{sys.version_info[1]}"
SYSTEM_LIBZ = any(
    os.path.exists(p)
    for p in (
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib64/libz.so.1",
    )
)


@pytest.fixture
def env(tmp_path: os.PathLike[str]) -> str:
    prefix = os.path.join(str(tmp_path), "env")
    os.makedirs(os.path.join(prefix, "bin"))
    os.makedirs(os.path.join(prefix, "lib", PYVER, "site-packages"))
    os.makedirs(os.path.join(prefix, "conda-meta"))
    return prefix


@pytest.fixture
def cache_path(tmp_path: os.PathLike[str]) -> str:
    return os.path.join(str(tmp_path), "cache")


@pytest.fixture
def cache(cache_path: str) -> DiskStore:
    return DiskStore(cache_path)


def site(prefix: str) -> str:
    return os.path.join(prefix, "lib", PYVER, "site-packages")


def test_binary_needing_a_library_only_in_env_lib(env: str, cache: DiskStore) -> None:
    lib = build_lib(f"{env}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    app = build_exe(f"{env}/bin/app", calls=["foo"], needs=[lib])

    result = analyze(env, app, CLEAN, store=cache)

    assert result.added == (AddedDir(f"{env}/lib", (("libfoo.so.1", app),)),)
    assert result.unresolved == ()
    assert not result.from_cache
    assert run([app], list(result.directories)).returncode == 0
    without = run([app], None)
    assert without.returncode != 0 and "libfoo.so.1" in without.stderr
    assert any("libfoo.so.1" in line and app in line for line in result.notes())
    assert json.loads(json.dumps(result.to_json()))["added"][0]["directory"] == f"{env}/lib"


def test_extension_module_needing_a_library_in_nvidia_lib(env: str, cache: DiskStore) -> None:
    sp = site(env)
    nv = build_lib(f"{sp}/nvidia/x/lib/libnvx.so.1", "libnvx.so.1", exports=["nvx"])
    build_lib(f"{env}/lib/libother.so.1", "libother.so.1")
    build_pyext(f"{sp}/mod", "_core", calls=["nvx"], needs=[nv])
    with open(f"{sp}/mod/__init__.py", "w") as f:
        f.write("from mod._core import *\n")

    result = analyze(env, sys.executable, CLEAN, store=cache)

    assert result.directories == (f"{sp}/nvidia/x/lib",)
    assert result.added[0].provides[0][0] == "libnvx.so.1"
    assert result.unresolved == ()
    ok = run([sys.executable, "-c", "import mod"], list(result.directories), PYTHONPATH=sp)
    assert ok.returncode == 0, ok.stderr
    bad = run([sys.executable, "-c", "import mod"], None, PYTHONPATH=sp)
    assert bad.returncode != 0 and "libnvx.so.1" in bad.stderr


def test_extension_with_rpath_origin_to_the_package_lib_is_not_missing(env: str, cache: DiskStore) -> None:
    sp = site(env)
    nv = build_lib(f"{sp}/nvidia/y/lib/libnvy.so.1", "libnvy.so.1", exports=["nvy"])
    build_pyext(f"{sp}/moy", "_core", calls=["nvy"], needs=[nv], rpath="$ORIGIN/../nvidia/y/lib")
    result = analyze(env, sys.executable, CLEAN, store=cache)
    assert result.added == () and result.unresolved == ()
    ok = run([sys.executable, "-c", "import moy._core"], None, PYTHONPATH=sp)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.skipif(not SYSTEM_LIBZ, reason="no system libz.so.1")
def test_env_library_shadowing_a_system_one_adds_nothing(env: str, cache: DiskStore) -> None:
    z = build_lib(f"{env}/lib/libz.so.1", "libz.so.1", exports=["zlib_fake"])
    app = build_exe(f"{env}/bin/zapp", needs=[z])
    result = analyze(env, app, CLEAN, store=cache)
    assert result.added == ()
    assert result.unresolved == ()
    assert run([app], None).returncode == 0


@pytest.mark.parametrize("kind", ["runpath", "rpath"])
def test_origin_relative_search_path_is_not_missing(env: str, cache: DiskStore, kind: str) -> None:
    lib = build_lib(f"{env}/lib/libbar.so.2", "libbar.so.2", exports=["bar"])
    app = build_exe(f"{env}/bin/app", calls=["bar"], needs=[lib], **{kind: "$ORIGIN/../lib"})
    inner = build_lib(
        f"{env}/lib/libuses.so.1", "libuses.so.1", calls=["bar"], needs=[lib], **{kind: "${ORIGIN}"}
    )
    result = analyze(env, app, CLEAN, store=cache)
    assert result.added == () and result.unresolved == ()
    assert run([app], None).returncode == 0
    assert os.path.exists(inner)


def test_runpath_is_not_inherited_but_rpath_is(env: str, cache: DiskStore) -> None:
    # app (RPATH $ORIGIN/../lib) -> libmid (no search path) -> libleaf in lib/: found through app's RPATH.
    leaf = build_lib(f"{env}/lib/libleaf.so.1", "libleaf.so.1", exports=["leaf"])
    mid = build_lib(f"{env}/lib/libmid.so.1", "libmid.so.1", exports=["mid"], calls=["leaf"], needs=[leaf])
    app = build_exe(f"{env}/bin/app", calls=["mid"], needs=[mid], rpath="$ORIGIN/../lib")
    assert analyze(env, app, CLEAN, store=cache).added == ()
    assert run([app], None).returncode == 0

    # The same with RUNPATH: not inherited by libmid, so the loader fails and the analysis adds lib/.
    app2 = build_exe(f"{env}/bin/app2", calls=["mid"], needs=[mid], runpath="$ORIGIN/../lib")
    result = analyze(env, app2, CLEAN, store=cache)
    assert result.directories == (f"{env}/lib",)
    assert ("libleaf.so.1", f"{env}/lib/libmid.so.1") in result.added[0].provides
    assert run([app2], None).returncode != 0
    assert run([app2], list(result.directories)).returncode == 0


def test_symbol_version_missing_in_the_library_found_today(
    env: str, cache: DiskStore, tmp_path: os.PathLike[str]
) -> None:
    sysdir = os.path.join(str(tmp_path), "system-lib")
    build_lib(
        f"{sysdir}/libver.so.1",
        "libver.so.1",
        exports=["v_one"],
        version_script="VER_1 { global: v_one; local: *; };\n",
    )
    newer = build_lib(
        f"{env}/lib/libver.so.1",
        "libver.so.1",
        exports=["v_one", "v_two"],
        version_script="VER_1 { global: v_one; local: *; };\nVER_2 { global: v_two; } VER_1;\n",
    )
    app = build_exe(f"{env}/bin/app", calls=["v_two"], needs=[newer])
    environ = {**CLEAN, "LD_LIBRARY_PATH": sysdir}

    result = analyze(env, app, environ, store=cache)

    assert result.directories == (f"{env}/lib",)
    old = run([app], [sysdir])
    assert old.returncode != 0 and "VER_2" in old.stderr and "not found" in old.stderr
    assert run([app], [*result.directories, sysdir]).returncode == 0

    # Only the old copy anywhere: an unresolved version, not an added directory.
    os.unlink(newer)
    build_lib(
        f"{env}/lib/libver.so.1",
        "libver.so.1",
        exports=["v_one"],
        version_script="VER_1 { global: v_one; local: *; };\n",
    )
    again = analyze(env, app, environ, store=cache)
    assert again.added == ()
    assert again.unresolved == (Unresolved("libver.so.1", (app,), ("VER_2",)),)


def test_unresolvable_soname_is_a_warning(env: str, cache: DiskStore, tmp_path: os.PathLike[str]) -> None:
    ghost_dir = os.path.join(str(tmp_path), "gone")
    ghost = build_lib(f"{ghost_dir}/libghost.so.1", "libghost.so.1", exports=["boo"])
    cuda = build_lib(f"{ghost_dir}/libcuda.so.1", "libcuda.so.1", exports=["cuInit"])
    app = build_exe(f"{env}/bin/app", calls=["boo", "cuInit"], needs=[ghost, cuda])
    shutil.rmtree(ghost_dir)

    result = analyze(env, app, CLEAN, store=cache)

    assert result.added == ()
    assert result.unresolved == (Unresolved("libcuda.so.1", (app,)), Unresolved("libghost.so.1", (app,)))
    assert result.warnings() == [
        f"libghost.so.1 is not found by the loader and not provided by the env (needed by {app}); "
        "the launch continues"
    ]
    assert result.notes()[-1] == (
        "LD_LIBRARY_PATH: libcuda.so.1 is not in the env: provided by the driver the platform mounts"
    )
    failed = run([app], None)
    assert failed.returncode != 0 and "libghost.so.1" in failed.stderr


def test_provider_must_match_the_needer_architecture(env: str, cache: DiskStore) -> None:
    sp = site(env)
    os.makedirs(f"{sp}/aaa/lib")
    with open(f"{sp}/aaa/lib/libarch.so.1", "wb") as f:
        f.write(make_elf(machine=183, soname="libarch.so.1"))  # aarch64: skipped by the loader
    lib = build_lib(f"{sp}/zzz/lib/libarch.so.1", "libarch.so.1", exports=["arch"])
    app = build_exe(f"{env}/bin/app", calls=["arch"], needs=[lib])
    result = analyze(env, app, CLEAN, store=cache)
    assert result.directories == (f"{sp}/zzz/lib",)
    both = run([app], [f"{sp}/aaa/lib", f"{sp}/zzz/lib"])
    assert both.returncode == 0, both.stderr


def test_env_lib_comes_first_and_order_is_stable(env: str, cache: DiskStore) -> None:
    sp = site(env)
    a = build_lib(f"{sp}/pkgb/lib/liba.so.1", "liba.so.1", exports=["fa"])
    b = build_lib(f"{sp}/pkga/lib/libb.so.1", "libb.so.1", exports=["fb"])
    c = build_lib(f"{env}/lib/libc9.so.1", "libc9.so.1", exports=["fc"])
    app = build_exe(f"{env}/bin/app", calls=["fa", "fb", "fc"], needs=[a, b, c])
    result = analyze(env, app, CLEAN, store=NullStore())
    assert result.directories == (f"{env}/lib", f"{sp}/pkga/lib", f"{sp}/pkgb/lib")
    assert run([app], list(result.directories)).returncode == 0
    assert analyze(env, app, CLEAN, store=cache).directories == result.directories


def test_script_program_is_followed_to_its_interpreter(env: str, cache: DiskStore) -> None:
    lib = build_lib(f"{env}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    build_exe(f"{env}/bin/app", calls=["foo"], needs=[lib])
    script = f"{env}/bin/run.sh"
    with open(script, "w") as f:
        f.write("#!/usr/bin/env app\n")
    result = analyze(env, script, {**CLEAN, "PATH": f"{env}/bin:/usr/bin"}, store=cache)
    assert result.directories == (f"{env}/lib",)


def test_broken_files_are_skipped(env: str, cache: DiskStore) -> None:
    lib = build_lib(f"{env}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    app = build_exe(f"{env}/bin/app", calls=["foo"], needs=[lib])
    with open(lib, "rb") as f:
        data = f.read()
    with open(f"{env}/lib/libtrunc.so.1", "wb") as f:
        f.write(data[:300])
    with open(f"{env}/lib/libnoise.so", "wb") as f:
        f.write(os.urandom(5000))
    with open(f"{env}/lib/libc.so", "w") as f:
        f.write("GROUP ( libc.so.6 )\n")
    os.symlink("libloop2.so", f"{env}/lib/libloop1.so")
    os.symlink("libloop1.so", f"{env}/lib/libloop2.so")
    os.symlink("..", f"{env}/lib/dirloop")
    os.symlink("/nonexistent/libx.so", f"{env}/lib/libdangling.so")
    result = analyze(env, app, CLEAN, store=cache)
    assert result.directories == (f"{env}/lib",)
    # a program that does not exist or is not ELF
    assert analyze(env, f"{env}/bin/missing", CLEAN, store=cache).objects_scanned >= 1
    assert analyze(env + "-nope", None, CLEAN, store=cache).added == ()


@pytest.fixture
def shared_tmp() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="ldscan-")
    os.chmod(d, 0o755)  # noqa: S103 - the unprivileged user must read it
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_unreadable_files_and_dirs_as_an_unprivileged_user(shared_tmp: str) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to switch users")
    prefix = f"{shared_tmp}/env"
    lib = build_lib(f"{prefix}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    app = build_exe(f"{prefix}/bin/app", calls=["foo"], needs=[lib])
    build_lib(f"{prefix}/lib/libsecret.so.1", "libsecret.so.1")
    os.chmod(f"{prefix}/lib/libsecret.so.1", 0o000)
    os.makedirs(f"{prefix}/lib/closed/inner")
    build_lib(f"{prefix}/lib/closed/libhidden.so.1", "libhidden.so.1")
    os.chmod(f"{prefix}/lib/closed", 0o000)
    shutil.copytree(
        str(REPO / "launcher"),
        f"{shared_tmp}/launcher",
    )
    for root, dirs, files in os.walk(shared_tmp):
        for name in dirs + files:
            p = os.path.join(root, name)
            if (
                not os.path.islink(p)
                and os.stat(p).st_mode & 0o777
                and "secret" not in name
                and name != "closed"
            ):
                os.chmod(p, os.stat(p).st_mode | 0o755)  # noqa: S103
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "from launcher.ld.analysis import analyze;"
        "from launcher.run.ldstore import DiskStore;"
        "r = analyze(sys.argv[2], sys.argv[3], {'PATH': '/usr/bin'}, store=DiskStore(sys.argv[4]));"
        "print(json.dumps(r.to_json()))"
    )
    proc = subprocess.run(
        as_nobody([sys.executable, "-c", code, shared_tmp, prefix, app, f"{shared_tmp}/nocache/x"]),
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [a["directory"] for a in data["added"]] == [f"{prefix}/lib"]


def test_cache_repeated_changed_corrupt_unwritable(env: str, cache: DiskStore, cache_path: str) -> None:
    lib = build_lib(f"{env}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    app = build_exe(f"{env}/bin/app", calls=["foo"], needs=[lib])
    first = analyze(env, app, CLEAN, store=cache)
    assert not first.from_cache

    t = time.perf_counter()
    second = analyze(env, app, CLEAN, store=cache)
    elapsed = time.perf_counter() - t
    assert second.from_cache and second.added == first.added
    assert elapsed < 0.2

    # A changed LD_LIBRARY_PATH is a new question.
    third = analyze(env, app, {**CLEAN, "LD_LIBRARY_PATH": f"{env}/lib"}, store=cache)
    assert not third.from_cache and third.added == ()

    # A library rewritten in place (same directory entries) is read again.
    build_lib(f"{env}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"], runpath="/somewhere")
    changed = analyze(env, app, CLEAN, store=cache)
    assert not changed.from_cache and changed.added == first.added
    assert analyze(env, app, CLEAN, store=cache).from_cache

    # A new library in a new package directory is seen.
    extra = build_lib(f"{site(env)}/newpkg/lib/libnew.so.1", "libnew.so.1", exports=["fnew"])
    app2 = build_exe(f"{env}/bin/app2", calls=["fnew"], needs=[extra])
    with_new = analyze(env, app2, CLEAN, store=cache)
    assert with_new.directories == (f"{site(env)}/newpkg/lib",)

    # Corrupt cache files: a fresh scan, the same answer.
    for name in os.listdir(cache_path):
        with open(os.path.join(cache_path, name), "w") as f:
            f.write("{not json")
    fresh = analyze(env, app, CLEAN, store=cache)
    assert not fresh.from_cache and fresh.added == first.added
    # Well-formed files (right checksum) with wrong content: still a fresh scan, the same answer.
    wrong = {"v": 2, "prefix": env, "coarse": False, "dirs": {"": [[1, 2, 3], [7], [None], {}, [], False]}}
    for name in os.listdir(cache_path):
        with open(os.path.join(cache_path, name), "wb") as f:
            f.write(encode({**wrong, "objects": {"x": 1}, "sigs": {"": 5}, "key": 1, "result": {}}))
    assert analyze(env, app, CLEAN, store=cache).added == first.added
    assert analyze(env, app, CLEAN, store=cache).from_cache

    # An unwritable cache location (below a regular file): still works, never from the cache.
    blocker = os.path.join(cache_path, "file")
    with open(blocker, "w") as f:
        f.write("x")
    for _ in range(2):
        r = analyze(env, app, CLEAN, store=DiskStore(os.path.join(blocker, "sub")))
        assert r.added == first.added and not r.from_cache


def test_analysis_json_round_trip() -> None:
    a = LdAnalysis(
        (AddedDir("/e/lib", (("liba.so.1", "/e/bin/x"),)),),
        (Unresolved("libcuda.so.1", ("/e/x.so",)),),
        3,
        False,
    )
    assert LdAnalysis.from_json(json.loads(json.dumps(a.to_json()))) == a
    nothing = LdAnalysis((), (), 7, True)
    assert nothing.notes() == ["LD_LIBRARY_PATH: nothing the env provides is missing (7 objects checked)"]
    assert nothing.warnings() == [] and nothing.details() == []


def test_system_ld_so_cache_is_parsed() -> None:
    if not os.path.exists("/etc/ld.so.cache"):
        pytest.skip("no /etc/ld.so.cache")
    with open("/etc/ld.so.cache", "rb") as f:
        table = parse_ld_so_cache(f.read())
    assert "libc.so.6" in table
    assert all(os.path.isabs(p) for paths in table.values() for p in paths)
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    if os.path.exists(ldconfig):
        out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True).stdout
        names = {line.split()[0] for line in out.splitlines() if line.startswith("\t")}
        assert names == set(table)
    assert parse_ld_so_cache(b"") == {} and parse_ld_so_cache(b"garbage" * 10) == {}
    assert parse_ld_so_cache(b"glibc-ld.so.cache1.1" + b"\xff" * 40) == {}


def test_libraries_loaded_through_the_env_python_use_its_rpath(env: str, cache: DiskStore) -> None:
    # conda's python carries RPATH $ORIGIN/../lib: a library in lib/ without any search path still finds
    # its siblings when Python (directly or through an extension module) loads it.
    b = build_lib(f"{env}/lib/libsib_b.so.1", "libsib_b.so.1", exports=["sib_b"])
    a = build_lib(f"{env}/lib/libsib_a.so.1", "libsib_a.so.1", exports=["sib_a"], calls=["sib_b"], needs=[b])
    py = build_exe(f"{env}/bin/python3.99", calls=["sib_a"], needs=[a], rpath="$ORIGIN/../lib")
    os.symlink("python3.99", f"{env}/bin/python3")
    result = analyze(env, f"{env}/bin/python3", CLEAN, store=cache)
    assert result.added == () and result.unresolved == ()
    assert run([py], None).returncode == 0
    # A program that is not Python is judged with the env's Python as the loader of the env's libraries.
    other = build_exe(f"{env}/bin/tool")
    assert analyze(env, other, CLEAN, store=cache).added == ()


def test_objects_scanned_counts_program_and_env_objects(env: str, cache: DiskStore) -> None:
    lib = build_lib(f"{env}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    os.symlink("libfoo.so.1", f"{env}/lib/libfoo.so")  # one file, two names: scanned once
    app = build_exe(f"{env}/bin/app", calls=["foo"], needs=[lib])
    result = analyze(env, app, CLEAN, store=cache, extra_objects=[app])
    assert result.objects_scanned == 2


def test_quiet_policy_each_soname_once_certain_or_optional(
    env: str, cache: DiskStore, tmp_path: os.PathLike[str]
) -> None:
    gone = os.path.join(str(tmp_path), "gone")
    mlx_v1 = build_lib(f"{gone}/v1/libmlx5.so.1", "libmlx5.so.1", exports=["m1"], version_script=MLX_V1)
    mlx_v2 = build_lib(f"{gone}/v2/libmlx5.so.1", "libmlx5.so.1", exports=["m2"], version_script=MLX_V2)
    ghost = build_lib(f"{gone}/libghost.so.1", "libghost.so.1", exports=["boo"])
    sp = site(env)
    # Two optional plugins needing libmlx5.so.1 with different versions: one soname, not two.
    build_lib(
        f"{sp}/nvidia/cufile/lib/libcufile_rdma.so.1", "libcufile_rdma.so.1", calls=["m1"], needs=[mlx_v1]
    )
    build_lib(f"{env}/lib/libucx_ib.so.0", "libucx_ib.so.0", calls=["m2"], needs=[mlx_v2])
    # An importable extension module pulls in a library that needs libghost: certain.
    inner = build_lib(
        f"{sp}/pkg/lib/libinner.so.1", "libinner.so.1", exports=["inner"], calls=["boo"], needs=[ghost]
    )
    build_pyext(f"{sp}/pkg", "_core", calls=["inner"], needs=[inner], rpath="$ORIGIN/lib")
    # The same extension module where Python cannot import it (a directory that is no package name).
    build_pyext(f"{sp}/not-a-package", "_core", calls=["inner"], needs=[inner], rpath="$ORIGIN/../pkg/lib")
    shutil.rmtree(gone)

    result = analyze(env, sys.executable, CLEAN, store=cache)

    by_name = {u.soname: u for u in result.unresolved}
    assert sorted(by_name) == ["libghost.so.1", "libmlx5.so.1"]
    assert by_name["libghost.so.1"].certain and not by_name["libmlx5.so.1"].certain
    assert by_name["libmlx5.so.1"].needers == (
        f"{env}/lib/libucx_ib.so.0",
        f"{sp}/nvidia/cufile/lib/libcufile_rdma.so.1",
    )
    assert by_name["libmlx5.so.1"].versions == ()  # no copy anywhere: no version talk
    assert result.warnings() == [
        "libghost.so.1 is not found by the loader and not provided by the env "
        f"(needed by {sp}/pkg/lib/libinner.so.1); the launch continues"
    ]
    summary = [line for line in result.notes() if "may never load" in line]
    assert summary == [
        "LD_LIBRARY_PATH: 1 soname needed only by libraries the program may never load is found nowhere "
        "(libmlx5.so.1; -v or --ld-report lists them)"
    ]
    assert result.details() == [
        "LD_LIBRARY_PATH: libmlx5.so.1 is not found by the loader and not provided by the env "
        f"(needed by {env}/lib/libucx_ib.so.0 and 1 more, which the program may never load)"
    ]
    assert sum("libmlx5" in line for line in result.report()) == 1


MLX_V1 = "MLX5_1.0 { global: m1; local: *; };\n"
MLX_V2 = "MLX5_1.0 { global: m1; local: *; };\nMLX5_1.1 { global: m2; } MLX5_1.0;\n"


def test_a_version_named_after_its_file_is_not_worded_twice(
    env: str, cache: DiskStore, tmp_path: os.PathLike[str]
) -> None:
    # NVIDIA's libraries name their version node after the file: libcublas.so.12 needs "libcublas.so.12".
    newer = os.path.join(str(tmp_path), "newer")
    script = "libnv.so.12 { global: nv_new; local: *; };\n"
    build_lib(f"{newer}/libnv.so.12", "libnv.so.12", exports=["nv_new"], version_script=script)
    app = build_exe(f"{env}/bin/app", calls=["nv_new"], needs=[f"{newer}/libnv.so.12"])
    older = os.path.join(str(tmp_path), "older")
    build_lib(
        f"{older}/libnv.so.12",
        "libnv.so.12",
        exports=["nv_old"],
        version_script="OLD { global: nv_old; local: *; };\n",
    )
    result = analyze(env, app, {**CLEAN, "LD_LIBRARY_PATH": older}, store=cache)
    assert result.unresolved == (Unresolved("libnv.so.12", (app,), ("libnv.so.12",)),)
    (warning,) = result.warnings()
    assert (
        warning.startswith("libnv.so.12 is found only in another version")
        and "version libnv.so.12" not in warning
    )
    failed = run([app], [older])
    assert failed.returncode != 0 and "libnv.so.12" in failed.stderr


def test_an_outside_copy_of_what_the_env_provides_is_put_behind_the_env(
    env: str, cache: DiskStore, tmp_path: os.PathLike[str]
) -> None:
    sp = site(env)
    # No search path at all: the env's copy is found only through LD_LIBRARY_PATH (what auto adds).
    ours = build_lib(f"{sp}/nvidia/blas/lib/libblas9.so.1", "libblas9.so.1", exports=["b1", "b2"])
    build_pyext(f"{sp}/ort", "_provider", calls=["b2"], needs=[ours])
    outside = os.path.join(str(tmp_path), "cuda", "lib64")
    build_lib(f"{outside}/libblas9.so.1", "libblas9.so.1", exports=["b1"])
    # A program of the system that needs a library the env also has is not the env's business.
    build_lib(f"{env}/lib/libtool9.so.1", "libtool9.so.1", exports=["t"])
    theirs = build_lib(f"{outside}/libtool9.so.1", "libtool9.so.1", exports=["t"])
    sysprog = build_exe(os.path.join(str(tmp_path), "sysbin", "tool"), calls=["t"], needs=[theirs])

    result = analyze(env, sys.executable, {**CLEAN, "LD_LIBRARY_PATH": outside}, store=cache)

    assert result.added == (
        AddedDir(
            f"{sp}/nvidia/blas/lib",
            (),
            (("libblas9.so.1", f"{sp}/ort/_provider{ext_suffix()}", f"{outside}/libblas9.so.1"),),
        ),
    )
    code = "import ort._provider"
    ok = run([sys.executable, "-c", code], [*result.directories, outside], PYTHONPATH=sp)
    assert ok.returncode == 0, ok.stderr
    bad = run([sys.executable, "-c", code], [outside], PYTHONPATH=sp)
    assert bad.returncode != 0 and "undefined symbol: b2" in bad.stderr
    assert (
        analyze(env, sysprog, {**CLEAN, "LD_LIBRARY_PATH": outside}, store=cache).directories
        == result.directories
    )


def _system_program_with_needs() -> tuple[str, str, list[str]]:
    """(a system program, its loader, the sonames it needs besides libc), or a skip."""
    from launcher.ld.elf import read_elf

    for program in ("/bin/bash", "/usr/bin/bash", "/bin/ls", "/usr/bin/ls"):
        info = read_elf(program) if os.path.exists(program) else None
        needs = [n for n in info.needed if not n.startswith(("libc.so", "ld-linux"))] if info else []
        if info is not None and info.interp and needs:
            return program, info.interp, needs
    pytest.skip("no system program with libraries besides libc")


def test_added_directory_names_the_system_libraries_it_shadows(
    env: str, cache: DiskStore, tmp_path: os.PathLike[str]
) -> None:
    program, loader, needs = _system_program_with_needs()
    with open("/etc/ld.so.cache", "rb") as f:
        system = sorted(n for n in parse_ld_so_cache(f.read()) if n.startswith("lib") and ".so." in n)
    names = sorted({*needs, *[n for n in system if n not in needs][:5]})
    for name in names:
        build_lib(f"{env}/lib/{name}", name, exports=[f"fake_{abs(hash(name))}"])
    lib = build_lib(f"{env}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    app = build_exe(f"{env}/bin/app", calls=["foo"], needs=[lib])

    result = analyze(env, app, CLEAN, store=cache)

    (added,) = result.added
    assert added.directory == f"{env}/lib" and added.shadows == tuple(names)
    notes = result.notes()
    assert notes[1] == (
        f"LD_LIBRARY_PATH: {env}/lib also shadows the system's {', '.join(names[:3])} "
        f"and {len(names) - 3} more for every program of the job (-v or ma-launch --ld-report lists them all)"
    )
    every = ", ".join(names)
    full = f"LD_LIBRARY_PATH: {env}/lib also shadows the system's {every} for every program of the job"
    assert result.details() == [full] and full in result.report()
    # The loader is the judge: a system program now loads the env's copy.
    listed = run([loader, "--list", program], list(result.directories)).stdout
    assert f"{env}/lib/{needs[0]}" in listed
    assert f"{env}/lib/{needs[0]}" not in run([loader, "--list", program], None).stdout


def test_the_driver_the_platform_mounts_is_never_put_behind_an_env_copy(
    env: str, cache: DiskStore, tmp_path: os.PathLike[str]
) -> None:
    sp = site(env)
    # A wheel that carries a copy of the driver's library for building (a stub) next to its own library.
    stub = build_lib(f"{sp}/toolkit/lib/libcuda.so.1", "libcuda.so.1", exports=["cuInit"])
    build_pyext(f"{sp}/toolkit", "_core", calls=["cuInit"], needs=[stub], runpath="$ORIGIN/lib")
    driver = os.path.join(str(tmp_path), "nvidia", "lib64")
    build_lib(f"{driver}/libcuda.so.1", "libcuda.so.1", exports=["cuInit"])
    result = analyze(env, sys.executable, {**CLEAN, "LD_LIBRARY_PATH": driver}, store=cache)
    assert result.added == ()
