"""The LD analysis' store: injected (the analysis writes nothing itself), on disk only under an absolute
cache home, trusted only when the current user owns it and only for directories inside the env."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import pytest
from condakit import REAL_PYTHON, make_env
from elfkit import build_exe, build_lib, run
from launchkit import REPO

from launcher.ld.analysis import analyze
from launcher.ld.store import LdStore, MemoryStore, NullStore
from launcher.run.files import write_atomic
from launcher.run.ldstore import DiskStore, decode, default_cache_dir, encode, read_trusted

if TYPE_CHECKING:
    from launcher.ld.store import DocName

CLEAN: dict[str, str] = {"PATH": "/usr/bin:/bin"}
ROOT = str(REPO)


class RecordingStore(LdStore):
    """A fake store that keeps every document written, as given."""

    def __init__(self) -> None:
        self.written: dict[tuple[str, str], Mapping[str, object]] = {}
        self.reads: list[tuple[str, str]] = []

    def read(self, prefix: str, name: DocName) -> object:
        self.reads.append((prefix, name))
        return self.written.get((prefix, name))

    def write(self, prefix: str, name: DocName, doc: Mapping[str, object]) -> bool:
        self.written[(prefix, name)] = doc
        return True


@pytest.fixture
def env(tmp_path: Path) -> str:
    prefix = tmp_path / "env"
    lib = build_lib(f"{prefix}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    build_exe(f"{prefix}/bin/app", calls=["foo"], needs=[lib])
    return str(prefix)


def test_the_analysis_writes_only_through_its_store(env: str, tmp_path: Path) -> None:
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    store = RecordingStore()
    first = analyze(env, f"{env}/bin/app", CLEAN, store=store)
    assert first.directories == (f"{env}/lib",) and not first.from_cache
    assert set(store.written) == {(env, "index"), (env, "walk"), (env, "objects")}
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # no file made anywhere
    again = analyze(env, f"{env}/bin/app", CLEAN, store=store)
    assert again.from_cache and again.added == first.added
    assert store.reads[-1] == (env, "index")

    nothing = NullStore()
    for _ in range(2):
        result = analyze(env, f"{env}/bin/app", CLEAN, store=nothing)
        assert not result.from_cache and result.added == first.added


def test_memory_store_copies_documents(env: str) -> None:
    store = MemoryStore()
    analyze(env, f"{env}/bin/app", CLEAN, store=store)
    doc = store.read(env, "index")
    assert isinstance(doc, dict)
    doc["answers"] = "changed by the caller"
    assert analyze(env, f"{env}/bin/app", CLEAN, store=store).from_cache
    assert store.writes.count((env, "index")) == 1


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"XDG_CACHE_HOME": "/x/cache", "HOME": "/home/u"}, "/x/cache/ma-launch"),
        ({"XDG_CACHE_HOME": "rel", "HOME": "/home/u"}, "/home/u/.cache/ma-launch"),
        ({"XDG_CACHE_HOME": "", "HOME": "/home/u/"}, "/home/u/.cache/ma-launch"),
        ({"XDG_CACHE_HOME": "/", "HOME": "/home/u"}, "/home/u/.cache/ma-launch"),
        ({"HOME": "rel"}, None),
        ({"HOME": ""}, None),
        ({"HOME": "~"}, None),
        ({"HOME": "/"}, None),
        ({"HOME": "//"}, None),
        ({}, None),
        ({"XDG_CACHE_HOME": "./c"}, None),
    ],
)
def test_default_cache_dir(environ: dict[str, str], expected: Optional[str]) -> None:
    assert default_cache_dir(environ) == expected


def launch(cwd: Path, environ: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REAL_PYTHON, "-m", "launcher", *args],
        cwd=cwd,
        env={**environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("home", ["rel", "", "~", None, "/"])
def test_no_usable_home_means_no_cache_and_no_write(tmp_path: Path, home: Optional[str]) -> None:
    prefix = make_env(tmp_path / "envs" / "py")
    lib = build_lib(f"{prefix}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    build_exe(f"{prefix}/bin/app", calls=["foo"], needs=[lib])
    work = tmp_path / "work"
    work.mkdir()
    root_cache_before = os.path.lexists("/.cache")
    environ = {"PATH": "/usr/bin:/bin", "MA_HOME": str(work)}
    if home is not None:
        environ["HOME"] = home
    result = launch(work, environ, "-q", "-p", str(prefix), "--", "app")
    assert result.returncode == 0, result.stderr
    assert list(work.iterdir()) == []  # no ./rel/.cache, ./~/.cache, ./.cache
    assert os.path.lexists("/.cache") == root_cache_before


def test_a_launch_uses_the_cache_home_it_is_given_and_nothing_else(tmp_path: Path) -> None:
    prefix = make_env(tmp_path / "envs" / "py")
    lib = build_lib(f"{prefix}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    build_exe(f"{prefix}/bin/app", calls=["foo"], needs=[lib])
    real = Path(os.path.expanduser("~")) / ".cache" / "ma-launch"
    real_before = sorted(real.iterdir()) if real.is_dir() else []
    home = tmp_path / "home"
    environ = {"PATH": "/usr/bin:/bin", "MA_HOME": str(tmp_path), "HOME": str(home)}
    for _ in range(2):
        assert launch(tmp_path, environ, "-q", "-p", str(prefix), "--", "app").returncode == 0
    files = sorted(p.name for p in (home / ".cache" / "ma-launch").iterdir())
    assert [name.rsplit(".", 1)[1] for name in files] == ["index", "objects", "walk"]
    assert oct((home / ".cache" / "ma-launch").stat().st_mode & 0o777) == "0o700"
    assert all((home / ".cache" / "ma-launch" / name).stat().st_mode & 0o777 == 0o600 for name in files)
    assert (sorted(real.iterdir()) if real.is_dir() else []) == real_before


def test_cache_files_of_another_user_are_ignored(env: str, tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to give files away")
    store = DiskStore(str(tmp_path / "cache"))
    first = analyze(env, f"{env}/bin/app", CLEAN, store=store)
    assert analyze(env, f"{env}/bin/app", CLEAN, store=store).from_cache
    for path in (tmp_path / "cache").iterdir():
        os.chown(path, 1000, 100)
        assert read_trusted(str(path), (os.geteuid(),)) is None
        assert read_trusted(str(path), (1000,)) is not None
    again = analyze(env, f"{env}/bin/app", CLEAN, store=store)
    assert not again.from_cache and again.added == first.added


def stored_index(store: DiskStore, prefix: str) -> dict[str, Any]:
    """The index document in ``store`` (to forge it)."""
    doc = store.read(prefix, "index")
    assert isinstance(doc, dict) and isinstance(doc["answers"], list)
    return doc


@pytest.mark.parametrize("forged", ["/tmp/evil", "{env}/../evil", "{env}-other/lib", "{env}/lib/../../evil"])
def test_a_cached_directory_outside_the_env_is_never_added(env: str, tmp_path: Path, forged: str) -> None:
    store = DiskStore(str(tmp_path / "cache"))
    first = analyze(env, f"{env}/bin/app", CLEAN, store=store)
    doc = stored_index(store, env)
    evil = forged.format(env=env)
    doc["answers"][0]["result"]["added"][0]["directory"] = evil
    assert store.write(env, "index", doc)  # well-formed, right checksum, owned by us
    result = analyze(env, f"{env}/bin/app", CLEAN, store=store)
    assert not result.from_cache and result.directories == first.directories
    assert evil not in result.directories


def test_forged_cache_does_not_reach_the_program(tmp_path: Path) -> None:
    prefix = make_env(tmp_path / "envs" / "py")
    lib = build_lib(f"{prefix}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    build_exe(f"{prefix}/bin/app", calls=["foo"], needs=[lib])
    environ = {"PATH": "/usr/bin:/bin", "MA_HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "c")}
    show = ["-q", "-p", str(prefix), "--", "sh", "-c", 'echo "$LD_LIBRARY_PATH"']
    first = launch(tmp_path, environ, *show)
    assert first.returncode == 0 and first.stdout.strip() == f"{prefix}/lib"  # sh may run bin/app
    store = DiskStore(str(tmp_path / "c" / "ma-launch"))
    doc = stored_index(store, str(prefix))
    doc["answers"][0]["result"]["added"][0]["directory"] = "/tmp/evil"  # only the directory is forged
    assert store.write(str(prefix), "index", doc)
    assert launch(tmp_path, environ, *show).stdout == first.stdout


def test_file_format_checks() -> None:
    raw = encode({"v": 2, "x": [1, "a", None, True]})
    assert decode(raw) == {"v": 2, "x": [1, "a", None, True]}
    assert decode(raw[:-1]) is None  # truncated
    assert decode(raw[:-1] + bytes([raw[-1] ^ 1])) is None  # altered
    assert decode(b"x" + raw) is None
    assert decode(b"") is None and decode(b"ma-launch-ld zz 3\nabc") is None


def test_read_trusted_refuses_links_and_special_files(tmp_path: Path) -> None:
    good = tmp_path / "doc"
    good.write_bytes(encode({"a": 1}))
    me = (os.geteuid(),)
    assert read_trusted(str(good), me) == {"a": 1}
    (tmp_path / "link").symlink_to(good)
    assert read_trusted(str(tmp_path / "link"), me) is None
    os.mkfifo(tmp_path / "fifo")
    assert read_trusted(str(tmp_path / "fifo"), me) is None
    assert read_trusted(str(tmp_path), me) is None
    assert read_trusted(str(tmp_path / "missing"), me) is None


def test_an_unwritable_cache_never_fails_the_analysis(env: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = DiskStore(str(blocker / "sub"))
    for _ in range(2):
        result = analyze(env, f"{env}/bin/app", CLEAN, store=store)
        assert result.directories == (f"{env}/lib",) and not result.from_cache
    assert run([f"{env}/bin/app"], list(result.directories)).returncode == 0


def test_write_atomic_replaces_creates_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "doc"
    write_atomic(str(target), b"one", mode=0o600, durable=False)
    write_atomic(str(target), b"two", mode=0o640)
    assert target.read_bytes() == b"two" and target.stat().st_mode & 0o777 == 0o640
    with pytest.raises(FileExistsError):
        write_atomic(str(target), b"three", replace=False)
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError):
        write_atomic(str(tmp_path / "dir"), b"x")  # renaming over a directory fails
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / "planted").symlink_to(elsewhere)
    write_atomic(str(tmp_path / "planted"), b"new")  # replaces the link, never writes through it
    assert not elsewhere.exists() and (tmp_path / "planted").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "doc", "planted"]  # no temporary left


def test_answers_to_other_questions_are_dropped_when_a_file_was_read_again(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    bar = build_lib(f"{prefix}/extra/libbar.so.1", "libbar.so.1", exports=["bar"])
    foo = build_lib(f"{prefix}/lib/libfoo.so.1", "libfoo.so.1", exports=["foo"])
    app = build_exe(f"{prefix}/bin/app", calls=["foo"], needs=[foo])
    other = build_exe(f"{prefix}/bin/other")
    newer = build_lib(
        f"{tmp_path}/new/libfoo.so.1", "libfoo.so.1", exports=["foo"], calls=["bar"], needs=[bar]
    )
    store = MemoryStore()
    assert analyze(str(prefix), app, CLEAN, store=store).directories == (f"{prefix}/lib",)
    analyze(str(prefix), sys.executable, CLEAN, store=store)
    with open(foo, "r+b") as handle:  # rewritten in place: its directory does not change
        handle.write(Path(newer).read_bytes())
        handle.truncate()
    analyze(str(prefix), other, CLEAN, store=store)  # a new question: the env is read again
    again = analyze(str(prefix), app, CLEAN, store=store)
    assert not again.from_cache and again.directories == (f"{prefix}/lib", f"{prefix}/extra")
