"""``ma-launch pack``: a real conda-pack round trip on a synthetic env, every pre-check, the printed
Dockerfile lines run on a directory tree, and ``examples/Dockerfile`` checked the same way."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from imagekit import GID, PYVER, UID, ImageRoot, by_id, make_conda_env, report, write
from launchkit import REPO
from needs import need_root, require

from launcher.cli.main import run
from launcher.core.conda import Env
from launcher.image import pack
from launcher.image.checks_python import check_python
from launcher.image.context import make_context
from launcher.image.dockerfile import dockerfile_lines, extract_command
from launcher.image.users import default_user


def pack_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(["pack", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def env(tmp_path: Path) -> Path:
    return make_conda_env(tmp_path / "conda" / "envs" / "demo")


def unique_archive(tmp_path: Path, suffix: str = ".tar.gz") -> Path:
    return tmp_path / f"demo-{uuid.uuid4().hex[:12]}{suffix}"


def run_lines(lines: str, build_context: Path) -> None:
    """Do what the printed Dockerfile lines do, on this machine: COPY and RUN (as root)."""
    run_parts: list[str] = []
    collecting = False
    for line in lines.splitlines():
        if line.startswith("COPY ["):
            source, target = json.loads(line[5:])
            shutil.copy(build_context / source, target)
        elif line.startswith("COPY "):
            _copy, source, target = line.split()
            shutil.copy(build_context / source, target)
        elif line.startswith("RUN ") or collecting:
            run_parts.append(line[4:] if line.startswith("RUN ") else line)
            collecting = line.endswith("\\")
    assert run_parts, lines
    subprocess.run(["/bin/sh", "-ec", "\n".join(run_parts)], check=True)


# ---------------------------------------------------------------- the round trip


def test_round_trip_to_the_dest_prefix(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    need_root()
    dest = tmp_path / "image" / "home" / "ma-user" / "anaconda3" / "envs" / "demo"
    archive = unique_archive(tmp_path)
    code, out, err = pack_cli(capsys, "-p", str(env), "-o", str(archive), "--dest-prefix", str(dest))
    assert code == 0, err
    assert archive.is_file()
    assert f"ENV ANACONDA_DIR={dest.parent.parent} DEFAULT_CONDA_ENV_NAME=demo" in out
    run_lines(out, archive.parent)
    assert not Path("/tmp", archive.name).exists()  # the RUN line removed the staged archive
    # Files, state and activate.d in place, owned by the default user.
    for rel in (
        "conda-meta/history",
        "conda-meta/state",
        "etc/conda/activate.d/x.sh",
        "share/demo/where.txt",
    ):
        st = (dest / rel).stat()
        assert (st.st_uid, st.st_gid) == (UID, GID), rel
    assert json.loads((dest / "conda-meta" / "state").read_text()) == {"env_vars": {"DEMO_MODE": "packed"}}
    assert (dest / "etc/conda/activate.d/x.sh").read_text() == "export DEMO_ACTIVATED=1\n"
    assert (dest / f"lib/python{PYVER}/site-packages/demo/__init__.py").read_text() == "VALUE = 42\n"
    # Prefixes rewritten for the destination: no conda-unpack needed.
    assert (dest / "bin" / "demo-tool").read_text().splitlines()[0] == f"#!{dest}/bin/python"
    assert (dest / "share/demo/where.txt").read_text() == f"installed in {dest}\n"
    assert not (dest / "bin" / "conda-unpack").exists()
    version = subprocess.run([dest / "bin" / "python", "-V"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"Python {sys.version.split()[0]}"
    # Launched by ma-launch the way the printed ENV line sets the image up (no base install: the root
    # holds only envs/), with the env's variables and activate.d script applied.
    show = (
        "import os, sys; e = os.environ;"
        "print(sys.executable, e['DEMO_MODE'], e['DEMO_ACTIVATED'], e['CONDA_PREFIX'])"
    )
    launch_env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "MA_"))}
    launch_env.update(
        ANACONDA_DIR=str(dest.parent.parent), DEFAULT_CONDA_ENV_NAME="demo", MA_HOME=str(tmp_path)
    )
    launch_env["PYTHONPATH"] = str(REPO)
    launched = subprocess.run(
        [sys.executable, "-m", "launcher", "-q", "--", "python", "-c", show],
        env=launch_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout.split() == [str(dest / "bin" / "python"), "packed", "1", str(dest)]


def test_default_dest_and_output(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _err = pack_cli(capsys, "-p", str(env))
    assert code == 0
    assert (tmp_path / "demo.tar.gz").is_file()
    assert "RUN mkdir -p /home/ma-user/anaconda3/envs/demo" in out
    assert "tar -xzf /tmp/demo.tar.gz -C /home/ma-user/anaconda3/envs/demo --no-same-owner" in out
    assert "chown -R 1000:100 /home/ma-user/anaconda3/envs/demo" in out
    assert "ENV ANACONDA_DIR=/home/ma-user/anaconda3 DEFAULT_CONDA_ENV_NAME=demo" in out
    assert "USER ma-user" in out


def test_pack_by_name(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANACONDA_DIR", str(env.parent.parent))
    (env.parent.parent / "conda-meta").mkdir()
    out_file = unique_archive(tmp_path)
    code, out, _err = pack_cli(capsys, "-n", "demo", "-o", str(out_file))
    assert code == 0
    assert out_file.is_file()
    assert "DEFAULT_CONDA_ENV_NAME=demo" in out


@pytest.mark.parametrize(
    ("suffix", "flag"),
    [(".tar.bz2", "-xjf"), (".tar", "-xf"), (".tgz", "-xzf"), (".zip", None)],
)
def test_format_from_the_extension(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str, flag: str | None
) -> None:
    archive = unique_archive(tmp_path, suffix)
    code, out, err = pack_cli(capsys, "-p", str(env), "-o", str(archive), "--exclude", "*.txt")
    assert code == 0, err
    assert archive.is_file()
    if flag is None:
        import zipfile

        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
        assert "unzip -q" in out
    else:
        import tarfile

        with tarfile.open(archive) as tf:
            names = tf.getnames()
        assert f"tar {flag} /tmp/{archive.name}" in out
    assert "conda-meta/state" in names
    assert "share/demo/where.txt" not in names  # --exclude


def test_extracted_env_passes_doctor_python_check(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tree the Dockerfile lines build is an env doctor accepts, owned by ma-user."""
    need_root()
    image = ImageRoot(tmp_path / "rootfs")
    dest = image.p("/home/ma-user/anaconda3/envs/packed")
    archive = unique_archive(tmp_path)
    code, out, _err = pack_cli(capsys, "-p", str(env), "-o", str(archive), "--dest-prefix", str(dest))
    assert code == 0
    run_lines(out, archive.parent)
    ctx = make_context(str(image.root))
    found = Env(prefix="/home/ma-user/anaconda3/envs/packed", name="packed", root="/home/ma-user/anaconda3")
    check = check_python(ctx, found, default_user(ctx))
    assert check.status == "pass", check


def test_doctor_passes_the_image_the_lines_build(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An image whose only conda is what the printed lines install (/home/ma-user/anaconda3 holds just
    envs/, no base) passes doctor's conda and default-env checks with the printed ENV values."""
    need_root()
    image = ImageRoot(tmp_path / "rootfs", base=False)
    shutil.rmtree(image.env_prefix)
    dest = image.p("/home/ma-user/anaconda3/envs/packed")
    archive = unique_archive(tmp_path)
    code, out, _err = pack_cli(capsys, "-p", str(env), "-o", str(archive), "--dest-prefix", str(dest))
    assert code == 0
    run_lines(out, archive.parent)
    env_line = next(line for line in out.splitlines() if line.startswith("ENV "))
    for item in shlex.split(env_line[4:]):
        key, _sep, value = item.partition("=")
        image.env_vars[key] = value.removeprefix(str(image.root))  # the lines ran here, not in the image
    assert image.env_vars["ANACONDA_DIR"] == "/home/ma-user/anaconda3"
    _code, data = report(image, capsys)
    checks = by_id(data)
    assert checks["conda"]["status"] == "pass", checks["conda"]
    assert checks["default-env"]["status"] == "pass", checks["default-env"]
    assert checks["python:/home/ma-user/anaconda3/envs/packed"]["status"] == "pass"


# ---------------------------------------------------------------- pre-checks, before conda-pack fails


def test_not_a_conda_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plain").mkdir()
    code, _out, err = pack_cli(capsys, "-p", str(tmp_path / "plain"))
    assert code == 66
    assert "is not a conda env (it has no conda-meta/)" in err


def test_prefix_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = pack_cli(capsys, "-p", str(tmp_path / "nothing"))
    assert code == 66
    assert "does not exist" in err


def test_unknown_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANACONDA_DIR", str(tmp_path))
    (tmp_path / "conda-meta").mkdir()
    code, _out, err = pack_cli(capsys, "-n", "nope")
    assert code == 66
    assert "'nope' not found" in err


def test_missing_history(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "conda-meta" / "history").unlink()
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(unique_archive(tmp_path)))
    assert code == 65
    assert "conda-meta/history is missing" in err
    assert f"hint: create it: touch {env}/conda-meta/history" in err


def test_missing_history_is_fine_for_zip(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (env / "conda-meta" / "history").unlink()
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(unique_archive(tmp_path, ".zip")))
    assert code == 0, err


def test_files_removed_by_pip(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "share" / "demo" / "where.txt").unlink()
    archive = unique_archive(tmp_path)
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(archive))
    assert code == 65
    assert "demo 1.0: share/demo/where.txt" in err
    assert "--ignore-missing-files" in err
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(archive), "--ignore-missing-files")
    assert code == 0, err
    assert "note: packing without files removed" in err


@pytest.mark.parametrize("kind", ["egg-link", "editable-pth", "outside-pth", "direct-url"])
def test_editable_installs(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    site = env / "lib" / f"python{PYVER}" / "site-packages"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    if kind == "egg-link":
        write(site / "mypkg.egg-link", f"{checkout}\n.\n")
    elif kind == "editable-pth":
        write(
            site / "__editable__.mypkg-0.1.pth",
            "import __editable___mypkg_finder; __editable___mypkg_finder.install()\n",
        )
    elif kind == "outside-pth":
        write(site / "mypkg.pth", f"{checkout}\n")
    else:
        write(
            site / "mypkg-0.1.dist-info" / "direct_url.json",
            json.dumps({"url": f"file://{checkout}", "dir_info": {"editable": True}}),
        )
    archive = unique_archive(tmp_path)
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(archive))
    assert code == 65
    assert "editable installs found" in err
    assert "--ignore-editable-packages" in err
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(archive), "--ignore-editable-packages")
    assert code == 0, err


def test_pth_inside_the_env_is_not_editable(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = env / "lib" / f"python{PYVER}" / "site-packages"
    (site / "extra").mkdir()
    write(site / "extra.pth", "extra\n# comment\nimport os\n")
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(unique_archive(tmp_path)))
    assert code == 0, err


def test_output_exists(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = unique_archive(tmp_path)
    archive.write_text("old")
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(archive))
    assert code == 2
    assert "already exists" in err and "--force" in err
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(archive), "--force")
    assert code == 0, err
    assert archive.stat().st_size > 3


def test_broken_record(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "conda-meta" / "bad-1-0.json").write_text("{not json")
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(unique_archive(tmp_path)))
    assert code == 65
    assert "bad-1-0.json" in err


def test_usage_errors(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pack_cli(capsys, "-p", str(env), "-n", "demo")[0] == 2
    assert pack_cli(capsys)[0] == 2
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(tmp_path / "x.rar"))
    assert code == 2 and "cannot tell the archive format" in err
    code, _out, err = pack_cli(capsys, "-p", str(env), "--format", "rar")
    assert code == 2 and "unknown --format" in err
    code, _out, err = pack_cli(capsys, "-p", str(env), "--dest-prefix", "relative/path")
    assert code == 2 and "not absolute" in err


def test_conda_pack_errors_are_wrapped(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import conda_pack

    def boom(**_kwargs: object) -> None:
        raise conda_pack.CondaPackException("something\nbroke")

    monkeypatch.setattr(conda_pack, "pack", boom)
    code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(unique_archive(tmp_path)))
    assert code == 65
    assert "ma-launch: error: conda-pack failed: something broke" in err
    assert "Traceback" not in err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["pack", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("-n, --name NAME", "-p, --prefix PREFIX", "--dest-prefix PATH", "--ignore-missing-files"):
        assert flag in out
    assert "/home/ma-user/anaconda3/envs/NAME" in out


def test_dockerfile_lines_outside_envs() -> None:
    result = pack.PackResult("/src", "demo", "/out/demo.tar.gz", "tar.gz", "/opt/envs-here/demo", None)
    lines = dockerfile_lines(result)
    assert "ENV ANACONDA_DIR" not in lines
    assert "ma-launch -p /opt/envs-here/demo" in lines


# ---------------------------------------------------------------- examples/Dockerfile


def dockerfile() -> str:
    return (REPO / "examples" / "Dockerfile").read_text()


def test_example_dockerfile_has_the_v2_layout() -> None:
    text = dockerfile()
    assert re.search(r"^FROM \S+", text, re.M)
    assert "useradd -m -d /home/ma-user -s /bin/bash -u 1000 -g 100 ma-user" in text
    assert "python3 -m venv /opt/ma-launch" in text
    assert re.search(
        r"^ENV PYTHONUNBUFFERED=1 \\\n\s+ANACONDA_DIR=/home/ma-user/anaconda3 \\\n"
        r"\s+DEFAULT_CONDA_ENV_NAME=py311$",
        text,
        re.M,
    )
    assert re.search(r"^USER ma-user$", text, re.M)
    assert re.search(r"^WORKDIR /home/ma-user$", text, re.M)
    assert "exec ma-launch -- python" in text


def test_example_dockerfile_env_lines_match_pack_output() -> None:
    result = pack.PackResult(
        "/src",
        "py311",
        "/ctx/py311.tar.gz",
        "tar.gz",
        "/home/ma-user/anaconda3/envs/py311",
        "/home/ma-user/anaconda3",
    )
    printed = dockerfile_lines(result)
    text = dockerfile()
    assert "COPY py311.tar.gz /tmp/py311.tar.gz" in printed and "COPY py311.tar.gz /tmp/py311.tar.gz" in text
    assert "RUN " + extract_command(result) in text


@pytest.mark.slow
def test_venv_install_of_ma_launch(tmp_path: Path) -> None:
    """What the Dockerfile's venv lines do, under a temporary /opt: ma-launch installs and runs."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO / "pyproject.toml", src)
    for folder in ("launcher", "scripts"):
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    readme = REPO / "README.md"
    if readme.exists():
        shutil.copy(readme, src)
    else:
        (src / "README.md").write_text("ma-launch\n")
    venv = tmp_path / "opt" / "ma-launch"
    # A venv of its own with ma-launch and its dependencies, as the Dockerfile makes it: nothing is
    # borrowed from the interpreter running the tests (which may itself be a venv).
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    pip.append(str(src))
    done = subprocess.run(pip, capture_output=True, text=True, check=False, cwd=tmp_path)
    require(done.returncode == 0, f"pip could not build ma-launch: {done.stderr[-300:]}")
    assert (venv / "bin" / "ma-launch").is_file()
    script = venv / "bin" / "ma-launch"
    assert script.read_text().splitlines()[0] in (f"#!{venv}/bin/python", f"#!{venv}/bin/python3")
    version = subprocess.run([script, "--version"], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("ma-launch "), version.stderr
    done = subprocess.run(
        [script, "pack", "--help"], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "--dest-prefix" in done.stdout


def test_base_needs_a_dest_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_conda_env(tmp_path / "anaconda3")
    monkeypatch.setenv("ANACONDA_DIR", str(root))
    code, _out, err = pack_cli(capsys, "-n", "base", "-o", str(unique_archive(tmp_path)))
    assert code == 2
    assert "--dest-prefix" in err
    dest = "/home/ma-user/anaconda3/envs/copy"
    code, out, err = pack_cli(
        capsys, "-n", "base", "-o", str(unique_archive(tmp_path)), "--dest-prefix", dest
    )
    assert code == 0, err
    assert "DEFAULT_CONDA_ENV_NAME=copy" in out


def test_zstd_needs_zstandard(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import zstandard  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        code, _out, err = pack_cli(capsys, "-p", str(env), "-o", str(unique_archive(tmp_path, ".tar.zst")))
        assert code == 69
        assert "zstandard" in err
    else:
        code, out, err = pack_cli(capsys, "-p", str(env), "-o", str(unique_archive(tmp_path, ".tar.zst")))
        assert code == 0, err
        assert "tar --zstd -xf" in out
