"""The suite never writes into the real ``~/.cache/ma-launch``: a launch made by a test writes its LD cache
into the session's private cache (see conftest.py), and the real one is unchanged."""

from __future__ import annotations

from pathlib import Path

from condakit import make_env
from launchkit import clean_env, launch, snapshot


def test_a_launch_writes_its_cache_into_the_session_cache_only(
    tmp_path: Path, session_cache: Path, real_cache: Path
) -> None:
    before = snapshot(real_cache)
    env_dir = make_env(tmp_path / "env")
    (env_dir / "lib" / "libfake.so").write_bytes(b"\x7fELF-not-really")
    written_before = set(session_cache.rglob("*")) if session_cache.exists() else set()
    env = clean_env(tmp_path)
    assert env["XDG_CACHE_HOME"] == str(session_cache) and real_cache != session_cache / "ma-launch"
    result = launch(["-q", "-p", str(env_dir), "--", "true"], env)
    assert result.returncode == 0, result.stderr
    assert set(session_cache.rglob("*")) - written_before, "the launch wrote no cache at all"
    assert snapshot(real_cache) == before
