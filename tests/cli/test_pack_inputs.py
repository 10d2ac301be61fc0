"""``ma-launch pack`` given nasty inputs: files where directories belong, malformed and hostile records,
FIFOs, outputs it cannot write, names that would break the printed Dockerfile lines, and an env the user
may not read. Each is one ``ma-launch: error:`` line with its documented exit code, never a traceback or
a hang, and nothing is written."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from imagekit import PYVER, make_conda_env, write
from launchkit import REPO, one_error_line
from needs import need_root
from unprivileged import public_tmp, run_as_nobody

from launcher.cli.main import run


@pytest.fixture
def env(tmp_path: Path) -> Path:
    return make_conda_env(tmp_path / "conda" / "envs" / "demo")


@pytest.fixture
def public_env() -> Iterator[Path]:
    """An env and an output directory every user can reach (for pack run as an unprivileged user)."""
    need_root()
    with public_tmp() as tmp:
        out = tmp / "out"
        out.mkdir()
        out.chmod(0o777)  # the unprivileged user writes the archive here
        yield make_conda_env(tmp / "envs" / "demo")


def pack_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(["pack", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pack_process(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        [sys.executable, "-m", "launcher", "pack", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=timeout,
    )


# ---------------------------------------------------------------- the env


def test_prefix_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write(tmp_path / "env.tar.gz", "an archive, not an env\n")
    code, _out, err = pack_cli(capsys, "-p", str(file))
    assert code == 66
    assert "is not a directory" in one_error_line(err)


def test_deeply_nested_record(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "conda-meta" / "deep-1-0.json").write_text("[" * 100_000 + "]" * 100_000)
    archive = tmp_path / "out.tar.gz"
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(archive))
    assert code == 65
    assert "deep-1-0.json" in one_error_line(err)
    assert not archive.exists()


def test_record_that_is_a_fifo_does_not_hang(env: Path, tmp_path: Path) -> None:
    os.mkfifo(env / "conda-meta" / "pipe-1-0.json")
    done = pack_process("-p", str(env), "-o", str(tmp_path / "out.tar.gz"))
    assert done.returncode == 65, done.stderr
    assert "FIFOs" in one_error_line(done.stderr) and "conda-meta/pipe-1-0.json" in done.stderr


def test_pth_that_is_a_fifo_does_not_hang(env: Path, tmp_path: Path) -> None:
    os.mkfifo(env / "lib" / f"python{PYVER}" / "site-packages" / "odd.pth")
    done = pack_process("-p", str(env), "-o", str(tmp_path / "out.tar.gz"))
    assert done.returncode == 65, done.stderr
    assert f"lib/python{PYVER}/site-packages/odd.pth" in one_error_line(done.stderr)


def test_unreadable_site_packages_is_77(public_env: Path) -> None:
    (public_env / "lib" / f"python{PYVER}" / "site-packages").chmod(0o700)
    archive = public_env.parent.parent / "out" / "demo.tar.gz"
    done = run_as_nobody(["pack", "-p", str(public_env), "-o", str(archive)])
    assert done.returncode == 77, done.stderr
    assert "site-packages" in one_error_line(done.stderr)
    assert not archive.exists()


def test_unreadable_record_is_77(public_env: Path) -> None:
    (public_env / "conda-meta" / "demo-1.0-h0_0.json").chmod(0o600)
    archive = public_env.parent.parent / "out" / "demo.tar.gz"
    done = run_as_nobody(["pack", "-p", str(public_env), "-o", str(archive)])
    assert done.returncode == 77, done.stderr
    assert "demo-1.0-h0_0.json" in one_error_line(done.stderr)


# ---------------------------------------------------------------- the output


def test_output_directory_missing_is_66(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(tmp_path / "nowhere" / "demo.tar.gz"))
    assert code == 66
    assert "does not exist" in one_error_line(err)


def test_output_that_is_a_directory(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "demo.tar.gz").mkdir()
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(tmp_path / "demo.tar.gz"), "--force")
    assert code == 2
    assert "is a directory" in one_error_line(err)


def test_output_directory_not_writable_is_77(public_env: Path) -> None:
    out = public_env.parent.parent / "out"
    out.chmod(0o755)
    done = run_as_nobody(["pack", "-p", str(public_env), "-o", str(out / "demo.tar.gz")])
    assert done.returncode == 77, done.stderr
    assert str(out) in one_error_line(done.stderr)


# ---------------------------------------------------------------- what goes into the Dockerfile lines


@pytest.mark.parametrize(
    "args",
    [
        ["--dest-prefix", "/home/ma-user/anaconda3/envs/x\nRUN touch /pwned"],
        ["--dest-prefix", "/home/ma-user/anaconda3/envs/x\r"],
        ["-o", "demo\nRUN touch pwned.tar.gz"],
    ],
)
def test_names_that_would_break_the_dockerfile_lines(
    env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = pack_cli(capsys, "-p", str(env), *args)
    assert code == 2
    assert "control character" in one_error_line(err)
    assert out == ""
    assert list(work.iterdir()) == []


def test_archive_name_with_a_space(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = pack_cli(capsys, "-p", str(env), "-o", "my demo.tar.gz")
    assert code == 0, err
    assert 'COPY ["my demo.tar.gz", "/tmp/my demo.tar.gz"]' in out.splitlines()
    assert "tar -xzf '/tmp/my demo.tar.gz'" in out
