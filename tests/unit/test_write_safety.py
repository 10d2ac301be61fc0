"""``bake -o`` writes only the file it is asked to write: never through a symlink planted at a temporary
name someone could predict, never left half-written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from launcher.cli.main import main


def _bake(*args: str) -> int:
    with pytest.raises(SystemExit) as ended:
        main(["bake", *args])
    return int(ended.value.code or 0)


def test_bake_never_writes_through_a_symlink_at_a_predictable_temporary_name(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    script = out / "boot.sh"
    # The names a predictable scheme would use (bake runs in this process here, so the PID is known).
    planted = [f"boot.sh.tmp-{os.getpid()}", "boot.sh.tmp", ".boot.sh.tmp", f".boot.sh.tmp-{os.getpid()}"]
    for name in planted:
        (out / name).symlink_to(victim)
    assert _bake("-o", str(script), "--workdir", str(tmp_path), "--", "true") == 0
    assert victim.read_text() == "precious"
    assert not script.is_symlink() and script.read_text().startswith("#!/bin/sh\n")
    assert sorted(p.name for p in out.iterdir()) == sorted([*planted, "boot.sh"])  # no temporary file left


def test_bake_force_replaces_a_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    script = tmp_path / "boot.sh"
    script.symlink_to(victim)
    assert _bake("-o", str(script), "--workdir", str(tmp_path), "--", "true") == 2  # exists: needs --force
    assert _bake("-o", str(script), "--force", "--workdir", str(tmp_path), "--", "true") == 0
    assert victim.read_text() == "precious"
    assert not script.is_symlink() and script.read_text().startswith("#!/bin/sh\n")
