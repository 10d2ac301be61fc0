"""What ``ma-launch doctor`` executes, and as whom: the image's files never run as root.

An image's ``bin/python`` here is a script that writes ``id -u`` to a marker file: the marker shows
whether doctor ran it and as which user.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from imagekit import GID, UID, ImageRoot, by_id, write
from needs import need, need_root
from unprivileged import public_tmp

from launcher.cli.main import run
from launcher.core.conda import Env
from launcher.image.checks_python import check_python
from launcher.image.context import Context
from launcher.image.users import User, execution_method
from launcher.ld.elf import read_elf


def spy_python(path: Path, marker: Path) -> None:
    """Replace ``path`` with a script that records who ran it and answers like ``python -V``."""
    if path.is_symlink() or path.exists():
        path.unlink()
    marker.parent.mkdir(exist_ok=True)
    marker.parent.chmod(0o777)  # whoever runs the spy must be able to leave the marker
    id_program = need("id")
    write(path, f'#!/bin/sh\n{id_program} -u > "{marker}"\necho "Python 3.11.0"\n', 0o755)


@pytest.fixture
def tmp() -> Iterator[Path]:
    need_root()
    with public_tmp() as path:
        yield path


def live_env(tmp: Path, marker: Path) -> Env:
    """An env on this machine whose bin/python is the spy, reachable by every user."""
    env = tmp / "envs" / "spy"
    (env / "conda-meta").mkdir(parents=True)
    spy_python(env / "bin" / "python", marker)
    return Env(prefix=str(env), name="spy", root=str(tmp))


def live_context() -> Context:
    return Context(root="/", environ={"PATH": "/usr/bin:/bin"})


def test_unpacked_root_python_is_never_executed(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = ImageRoot(tmp / "rootfs")
    marker = tmp / "out" / "ran-as"
    spy_python(image.env_prefix / "bin" / "python3.11", marker)
    code = run(["doctor", "--root", str(image.root), "--json", *image.image_env_args()])
    data = json.loads(capsys.readouterr().out)
    assert not marker.exists(), f"the image's python ran as UID {marker.read_text().strip()}"
    check = by_id(data)["python:/home/ma-user/anaconda3/envs/py311"]
    details = check["details"]
    assert isinstance(details, dict)
    assert details["method"] == "static"
    assert "never" in str(details["why"])
    assert code in (0, 1)


def test_live_probe_runs_as_the_default_user(tmp: Path) -> None:
    need("setpriv")
    marker = tmp / "out" / "ran-as"
    check = check_python(live_context(), live_env(tmp, marker), User("ma-user", UID, GID, "/"))
    assert check.status == "pass", check
    assert marker.read_text().strip() == str(UID)


def test_live_without_setpriv_executes_nothing(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp / "out" / "ran-as"
    env = live_env(tmp, marker)
    monkeypatch.setenv("PATH", str(tmp / "no-tools-here"))
    check = check_python(live_context(), env, User("ma-user", UID, GID, "/"))
    assert not marker.exists(), f"the image's python ran as UID {marker.read_text().strip()}"
    assert check.details["method"] == "static", check


def test_a_default_user_with_uid_0_is_never_switched_to(tmp: Path) -> None:
    need("setpriv")
    marker = tmp / "out" / "ran-as"
    root_user = User("ma-user", 0, 0, "/root")
    check_python(live_context(), live_env(tmp, marker), root_user)
    assert not marker.exists(), f"the image's python ran as UID {marker.read_text().strip()}"


# ---------------------------------------------------------------- the one rule, and the static check


def test_execution_method_never_runs_unpacked_files_or_as_root(tmp: Path) -> None:
    unpacked = Context(root=str(tmp), environ={})
    user = User("ma-user", UID, GID, "/home/ma-user")
    assert execution_method(unpacked, user) == "static"
    assert execution_method(live_context(), User("ma-user", 0, 0, "/root")) == "static"
    need("setpriv")
    assert execution_method(live_context(), user) == "probe"  # the tests run as root


def machine_patched(path: Path, machine: int) -> None:
    """Rewrite the ELF header's e_machine field (little-endian objects: this machine's)."""
    data = bytearray(path.read_bytes())
    data[18:20] = machine.to_bytes(2, "little")
    path.write_bytes(bytes(data))


def test_static_check_finds_a_foreign_architecture(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = ImageRoot(tmp / "rootfs")
    python = image.env_prefix / "bin" / "python3.11"
    machine_patched(python, 183 if os.uname().machine != "aarch64" else 62)  # AArch64, else x86-64
    run(["doctor", "--root", str(image.root), "--json", *image.image_env_args()])
    check = by_id(json.loads(capsys.readouterr().out))["python:/home/ma-user/anaconda3/envs/py311"]
    assert check["status"] == "fail"
    assert "is built for" in str(check["summary"]) and "/bin/sh" in str(check["summary"])


def test_static_check_needs_the_loader_in_the_image(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = ImageRoot(tmp / "rootfs")
    info = read_elf(str(image.env_prefix / "bin" / "python3.11"))
    assert info is not None and info.interp
    image.p(info.interp).unlink()
    run(["doctor", "--root", str(image.root), "--json", *image.image_env_args()])
    check = by_id(json.loads(capsys.readouterr().out))["python:/home/ma-user/anaconda3/envs/py311"]
    assert check["status"] == "fail"
    assert f"{info.interp} does not exist" in str(check["summary"])


def test_static_check_reads_the_version_conda_recorded(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = ImageRoot(tmp / "rootfs")
    meta = image.env_prefix / "conda-meta"
    for record in meta.glob("python-*.json"):
        record.rename(meta / "python-3.10.14-h955ad1f_0.json")
    write(meta / "python-dateutil-2.9.0-pyhd8ed1ab_0.json", json.dumps({"name": "python-dateutil"}))
    run(["doctor", "--root", str(image.root), "--json", *image.image_env_args()])
    check = by_id(json.loads(capsys.readouterr().out))["python:/home/ma-user/anaconda3/envs/py311"]
    assert check["status"] == "pass"
    details = check["details"]
    assert isinstance(details, dict)
    assert details["version"] == f"{sys.version_info.major}.{sys.version_info.minor}.0"  # the record's field
    assert details["executed"] is False
