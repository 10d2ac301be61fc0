"""``ma-launch doctor`` given nasty inputs: an envs-only conda root, symlinks that leave the image or loop,
odd and hostile /etc/passwd files, bad --baseline and --image-env values, roots it may not read.

Every failure the user can fix is one ``ma-launch: error:`` line with its documented exit code; a broken
image is a failing check, never a traceback or a hang.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from imagekit import ImageRoot, by_id, report, status, write
from launchkit import REPO, one_error_line
from needs import need_root
from unprivileged import public_tmp, run_as_nobody

from launcher.cli.main import run


@pytest.fixture
def image(tmp_path: Path) -> ImageRoot:
    need_root()
    return ImageRoot(tmp_path / "rootfs")


@pytest.fixture
def public_image() -> Iterator[ImageRoot]:
    """An image root every user can reach (for doctor run as an unprivileged user)."""
    need_root()
    with public_tmp() as tmp:
        yield ImageRoot(tmp / "rootfs")


def doctor_process(image: ImageRoot, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """doctor in its own process (for hangs and raw bytes), as root."""
    env = {**os.environ, "LC_ALL": "C.UTF-8", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "launcher",
            "doctor",
            "--root",
            str(image.root),
            *image.image_env_args(),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=timeout,
    )


# ---------------------------------------------------------------- the conda layout pack produces


def test_envs_only_root_passes_conda_and_default_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """/home/ma-user/anaconda3 holding only envs/ (no base install) is a conda root to the launcher."""
    need_root()
    image = ImageRoot(tmp_path / "rootfs", base=False)
    _code, data = report(image, capsys)
    checks = by_id(data)
    assert checks["conda"]["status"] == "pass", checks["conda"]
    assert checks["default-env"]["status"] == "pass", checks["default-env"]
    assert "python:/home/ma-user/anaconda3" not in checks  # no base env was invented


# ---------------------------------------------------------------- symlinks stay inside the image


def test_symlinked_conda_root_is_followed_inside_the_image(
    image: ImageRoot, capsys: pytest.CaptureFixture[str]
) -> None:
    """anaconda3 -> /opt/conda (absolute, as many images have it) means the image's /opt/conda."""
    anaconda = image.p("/home/ma-user/anaconda3")
    image.p("/opt").mkdir(exist_ok=True)
    anaconda.rename(image.p("/opt/conda"))
    os.symlink("/opt/conda", anaconda)
    code, data = report(image, capsys)
    assert status(data, "conda") == "pass"
    assert by_id(data)["default-env"]["details"] == {
        "ANACONDA_DIR": "/home/ma-user/anaconda3",
        "DEFAULT_CONDA_ENV_NAME": "py311",
        "prefix": "/home/ma-user/anaconda3/envs/py311",
    }
    assert code == 0


def test_passwd_linked_outside_the_image_is_not_read(
    image: ImageRoot, capsys: pytest.CaptureFixture[str]
) -> None:
    with public_tmp() as outside:
        good = write(outside / "passwd", "ma-user:x:1000:100::/home/ma-user:/bin/bash\n")
        image.p("/etc/passwd").unlink()
        os.symlink(good, image.p("/etc/passwd"))  # absolute: inside the image that path does not exist
        code, data = report(image, capsys)
    assert status(data, "user") == "fail"
    assert code == 1


def test_symlink_loops_are_a_failing_check(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.p("/etc/passwd").unlink()
    os.symlink("/etc/passwd", image.p("/etc/passwd"))
    envs = image.p("/home/ma-user/anaconda3/envs")
    os.symlink("loop", envs / "loop")
    os.symlink("/home/ma-user/anaconda3/envs/ring2", envs / "ring1")
    os.symlink("/home/ma-user/anaconda3/envs/ring1", envs / "ring2")
    code, data = report(image, capsys)
    user = by_id(data)["user"]
    assert user["status"] == "fail"
    assert "symbolic links" in str(user["summary"])
    assert status(data, "conda") == "pass"  # the looping entries are simply not envs
    assert code == 1


# ---------------------------------------------------------------- /etc/passwd


def test_odd_passwd_lines_are_skipped(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    write(
        image.p("/etc/passwd"),
        "# a comment\n"
        "+::::::\n"
        "short:x:5\n"
        "eight:x:7:7::/h:/bin/sh:extra\n"
        "letters:x:abc:100::/h:/bin/sh\n"
        "\n"
        "ma-user:x:1000:100::/home/ma-user:/bin/bash\n",
    )
    with open(image.p("/etc/passwd"), "ab") as fh:
        fh.write(b"\xff\xfe:\x00:binary\n")
    _code, data = report(image, capsys)
    assert status(data, "user") == "pass"


def test_passwd_home_with_a_nul_byte(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    write(image.p("/etc/passwd"), "ma-user:x:1000:100::/home/ma\0user:/bin/bash\n")
    code, data = report(image, capsys)
    assert status(data, "user") == "fail"  # the line is not a passwd entry
    assert code == 1


def test_passwd_that_is_a_fifo_does_not_hang(image: ImageRoot) -> None:
    image.p("/etc/passwd").unlink()
    os.mkfifo(image.p("/etc/passwd"))
    done = doctor_process(image, "--json", timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    user = by_id(json.loads(done.stdout))["user"]
    assert user["status"] == "fail"
    assert "not a regular file" in str(user["summary"])


# ---------------------------------------------------------------- --baseline


def test_binary_baseline_is_a_data_error(
    image: ImageRoot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tmp_path / "baseline.bin"
    baseline.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00\x00")
    code = run(["doctor", "--root", str(image.root), "--baseline", str(baseline)])
    captured = capsys.readouterr()
    assert code == 65
    line = one_error_line(captured.err)
    assert "not a text file" in line
    assert captured.out == ""  # nothing checked, nothing printed


def test_relative_baseline_line_is_a_data_error(
    image: ImageRoot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = write(tmp_path / "baseline.txt", "/usr/bin/passwd\nusr/bin/su\n")
    code = run(["doctor", "--root", str(image.root), "--baseline", str(baseline)])
    assert code == 65
    line = one_error_line(capsys.readouterr().err)
    assert "line 2" in line and "usr/bin/su" in line


@pytest.mark.parametrize(("kind", "expected"), [("missing", 66), ("directory", 66)])
def test_baseline_that_is_not_a_file(
    image: ImageRoot, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, expected: int
) -> None:
    baseline = tmp_path / "baseline"
    if kind == "directory":
        baseline.mkdir()
    code = run(["doctor", "--root", str(image.root), "--baseline", str(baseline)])
    assert code == expected
    line = one_error_line(capsys.readouterr().err)
    assert str(baseline) in line


def test_unreadable_baseline_is_77(public_image: ImageRoot) -> None:
    baseline = write(public_image.root.parent / "baseline.txt", "/usr/bin/passwd\n", 0o600)
    done = run_as_nobody(["doctor", "--root", str(public_image.root), "--baseline", str(baseline)])
    assert done.returncode == 77, done.stderr
    assert "permission denied" in one_error_line(done.stderr).lower()


# ---------------------------------------------------------------- --image-env and the root


@pytest.mark.parametrize("item", ["NOEQUALS", "=value", "1ABC=x", "A-B=x", "ÄRGER=1", "A B=1"])
def test_bad_image_env_is_usage(item: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["doctor", "--root", "/", "--image-env", item]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "is not KEY=VALUE" in line


def test_image_env_values_print_on_one_line(image: ImageRoot) -> None:
    """A value with a newline or a byte that is not UTF-8 is shown escaped, on the check's one line."""
    done = doctor_process(image, "--image-env", "PYTHONUNBUFFERED=1\nFAKE", "--image-env", "X=\udcff")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ma-launch doctor: ")
    assert lines[-1].endswith("0 failed")
    for line in lines[1:-1]:
        assert line.startswith(("PASS  ", "WARN  ", "FAIL  ", "      ")), line
    unbuffered = next(line for line in lines if " unbuffered " in line)
    assert unbuffered.endswith("PYTHONUNBUFFERED=1\\nFAKE is baked in")


def test_root_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write(tmp_path / "rootfs.tar", "not a directory\n")
    assert run(["doctor", "--root", str(root)]) == 66
    assert "is not a directory" in one_error_line(capsys.readouterr().err)


def test_root_the_user_cannot_read_is_77(public_image: ImageRoot) -> None:
    public_image.root.chmod(0o700)
    done = run_as_nobody(["doctor", "--root", str(public_image.root)])
    assert done.returncode == 77, done.stderr + done.stdout
    assert "cannot read" in one_error_line(done.stderr)
    assert done.stdout == ""


def test_env_the_user_cannot_read(public_image: ImageRoot) -> None:
    """doctor run by a user who may not read an env says so, instead of calling the env missing."""
    public_image.env_prefix.chmod(0o700)
    done = run_as_nobody(
        ["doctor", "--root", str(public_image.root), "--json", *public_image.image_env_args()]
    )
    assert "Traceback" not in done.stderr, done.stderr
    checks = by_id(json.loads(done.stdout))
    conda, default = checks["conda"], checks["default-env"]
    assert conda["status"] == "warn", conda
    assert str(public_image.env_prefix.relative_to(public_image.root)) in str(conda["summary"])
    assert "cannot read" in str(default["summary"]), default
