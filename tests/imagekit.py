"""Builders for tests: synthetic image roots (what ``docker export`` gives) and conda-layout envs.

:class:`ImageRoot` builds a root that passes every doctor check it can; each ``break_*``/``add_*`` method
then breaks exactly one rule. :func:`make_conda_env` builds an env with ``conda-meta`` records in the form
conda-pack reads. Ownership changes need root; :func:`need_root` skips without it (and fails under CI).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Optional

import pytest
from needs import need

from launcher.cli.app import run
from launcher.ld.elf import read_elf

UID, GID = 1000, 100
ANACONDA = "/home/ma-user/anaconda3"
ENV_NAME = "py311"
HOST_PYTHON = os.path.realpath(sys.executable)
PYVER = f"{sys.version_info.major}.{sys.version_info.minor}"


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def host_libraries(program: str) -> dict[str, str]:
    """``soname -> path`` of the shared libraries ``program`` loads on this machine (from ldd)."""
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=False).stdout
    libs: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>" and parts[2].startswith("/"):
            libs[parts[0]] = parts[2]
    return libs


@cache
def _shared_copies() -> Path:
    """A private directory for copies of this machine's libraries, made once per test session."""
    path = Path(tempfile.mkdtemp(prefix="ma-launch-test-libs-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def install_copy(source: str, target: Path) -> None:
    """Put a copy of the host file ``source`` at ``target`` in an image root: a hard link to one private
    copy per session (never to the host's own file, whose mode a test could change), else a copy."""
    shared = _shared_copies() / source.lstrip("/").replace("/", "%")
    if not shared.exists():
        shutil.copy2(source, shared)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(shared, target)
    except OSError:
        shutil.copy2(shared, target)


def compile_needing(output: Path, soname: str) -> Path:
    """A tiny shared object with ``DT_NEEDED`` on ``soname`` (built with gcc against a stub)."""
    gcc = need("gcc")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        src = Path(work, "stub.c")
        src.write_text("int missing_fn(void) { return 1; }\n")
        stub = Path(work, soname)
        subprocess.run(
            [gcc, "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(stub), str(src)], check=True
        )
        user = Path(work, "user.c")
        user.write_text("int missing_fn(void);\nint use(void) { return missing_fn(); }\n")
        subprocess.run(
            [gcc, "-shared", "-fPIC", "-o", str(output), str(user), str(stub), "-Wl,--no-as-needed"],
            check=True,
        )
    return output


def package_record(
    prefix: Path, name: str, version: str, files: Sequence[str], build: str = "h0_0"
) -> dict[str, object]:
    """A ``conda-meta/<name>-<version>-<build>.json`` record as conda writes it (uncached package)."""
    record: dict[str, object] = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "channel": "https://conda.anaconda.org/conda-forge/linux-64",
        "url": f"https://conda.anaconda.org/conda-forge/linux-64/{name}-{version}-{build}.conda",
        "fn": f"{name}-{version}-{build}.conda",
        "files": list(files),
        "paths_data": {
            "paths": [{"_path": f, "path_type": "hardlink"} for f in files],
            "paths_version": 1,
        },
        "link": {"source": f"/nonexistent/pkgs/{name}-{version}-{build}", "type": 1},
        "depends": [],
    }
    path = prefix / "conda-meta" / f"{name}-{version}-{build}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return record


def make_conda_env(
    prefix: Path,
    *,
    python: str = "copy",
    history: bool = True,
    env_vars: Optional[dict[str, str]] = None,
) -> Path:
    """A conda-layout env at ``prefix``.

    ``python``: ``copy`` (a copy of this interpreter: it starts), ``broken`` (a script whose interpreter
    does not exist), ``none``. It holds a python record, a ``demo`` package with a script whose shebang
    names the prefix, ``conda-meta/history``, ``conda-meta/state`` with env_vars and an activate.d script.
    """
    (prefix / "conda-meta").mkdir(parents=True, exist_ok=True)
    (prefix / "bin").mkdir(exist_ok=True)
    site = prefix / "lib" / f"python{PYVER}" / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    python_files: list[str] = []
    if python == "copy":
        shutil.copy2(HOST_PYTHON, prefix / "bin" / f"python{PYVER}")
        os.symlink(f"python{PYVER}", prefix / "bin" / "python")
        python_files = [f"bin/python{PYVER}", "bin/python"]
    elif python == "broken":
        write(prefix / "bin" / "python", "#!/nonexistent/interpreter\n", 0o755)
        python_files = ["bin/python"]
    write(site / "README.txt", "site-packages\n")
    python_files.append(f"lib/python{PYVER}/site-packages/README.txt")
    package_record(prefix, "python", f"{PYVER}.0", python_files)
    write(prefix / "bin" / "demo-tool", f"#!{prefix}/bin/python\nprint('demo')\n", 0o755)
    write(site / "demo" / "__init__.py", "VALUE = 42\n")
    write(prefix / "share" / "demo" / "where.txt", f"installed in {prefix}\n")
    package_record(
        prefix,
        "demo",
        "1.0",
        ["bin/demo-tool", f"lib/python{PYVER}/site-packages/demo/__init__.py", "share/demo/where.txt"],
    )
    if history:
        write(prefix / "conda-meta" / "history", "==> 2024-01-01 00:00:00 <==\n# cmd: conda create\n")
    state = {"env_vars": env_vars if env_vars is not None else {"DEMO_MODE": "packed"}}
    write(prefix / "conda-meta" / "state", json.dumps(state))
    write(prefix / "etc" / "conda" / "activate.d" / "x.sh", "export DEMO_ACTIVATED=1\n")
    return prefix


def chown_tree(path: Path, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        os.lchown(dirpath, uid, gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


class ImageRoot:
    """A synthetic unpacked image root that passes every doctor check it can.

    ``base=False`` leaves out the conda base install: the root then holds only ``envs/``, as in an image
    whose envs were installed by the Dockerfile lines ``ma-launch pack`` prints."""

    def __init__(self, root: Path, *, base: bool = True) -> None:
        self.root = root
        self.base = base
        self.env_vars = {
            "ANACONDA_DIR": ANACONDA,
            "DEFAULT_CONDA_ENV_NAME": ENV_NAME,
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{ANACONDA}/envs/{ENV_NAME}/bin:/usr/local/bin:/usr/bin:/bin",
        }
        self._build()

    def p(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def image_env_args(self) -> list[str]:
        args: list[str] = []
        for key, value in self.env_vars.items():
            args += ["--image-env", f"{key}={value}"]
        return args

    @property
    def env_prefix(self) -> Path:
        return self.p(f"{ANACONDA}/envs/{ENV_NAME}")

    def _build(self) -> None:
        root = self.root
        root.mkdir(parents=True, exist_ok=True)
        write(
            self.p("/etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            f"ma-user:x:{UID}:{GID}::/home/ma-user:/bin/bash\n",
        )
        write(self.p("/etc/group"), f"root:x:0:\nma-group:x:{GID}:\nnogroup:x:65534:\n")
        for d in ("/proc", "/sys", "/dev", "/tmp", "/usr/local/bin", "/usr/lib/x86_64-linux-gnu"):
            self.p(d).mkdir(parents=True, exist_ok=True)
        # A shell, and the loader and system libraries this machine's interpreter loads (copies: symlinks
        # to this machine's files would point outside the image).
        install_copy(os.path.realpath(need("true")), self.p("/bin/bash"))  # any program of this machine
        os.symlink("bash", self.p("/bin/sh"))
        for soname, path in host_libraries(HOST_PYTHON).items():
            install_copy(path, self.p(f"/usr/lib/x86_64-linux-gnu/{soname}"))
        info = read_elf(HOST_PYTHON)
        if info is not None and info.interp:
            install_copy(os.path.realpath(info.interp), self.p(info.interp))
        install_copy(HOST_PYTHON, self.p("/usr/bin/python3"))
        # A setuid program the base image ships.
        write(self.p("/usr/bin/passwd"), "passwd\n", 0o755)
        self.p("/usr/bin/passwd").chmod(0o4755)
        # conda: the root (base, unless left out) and one env.
        if self.base:
            make_conda_env(self.p(ANACONDA))
        make_conda_env(self.env_prefix)
        # ma-launch in its own venv, linked into /usr/local/bin.
        write(self.p("/opt/ma-launch/bin/ma-launch"), "#!/opt/ma-launch/bin/python\nimport launcher\n", 0o755)
        os.symlink("/usr/bin/python3", self.p("/opt/ma-launch/bin/python"))
        os.symlink("/opt/ma-launch/bin/ma-launch", self.p("/usr/local/bin/ma-launch"))
        self.p("/home/ma-user").mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            chown_tree(self.p("/home/ma-user"), UID, GID)

    # ---- one broken rule each

    def break_user_v1(self) -> None:
        write(
            self.p("/etc/passwd"), "root:x:0:0:root:/root:/bin/bash\nwork:x:1101:1101::/home/work:/bin/bash\n"
        )

    def break_user_migrated(self) -> None:
        write(
            self.p("/etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nma-user:x:1102:100::/home/ma-user:/bin/bash\n",
        )

    def break_home_missing(self) -> None:
        shutil.rmtree(self.p("/home/ma-user"))

    def break_home_owner(self) -> None:
        chown_tree(self.p("/home/ma-user"), 0, 0)
        self.p("/home/ma-user").chmod(0o755)

    def break_python(self) -> None:
        python = self.env_prefix / "bin" / "python"
        python.unlink()
        write(python, "#!/nonexistent/interpreter\n", 0o755)

    def break_default_env(self) -> None:
        self.env_vars["DEFAULT_CONDA_ENV_NAME"] = "no-such-env"

    def add_missing_library(self) -> Path:
        return compile_needing(self.env_prefix / "lib" / "libuses_missing.so", "libmissing.so.1")

    def add_setuid(self, image_path: str = "/usr/local/bin/helper") -> None:
        write(self.p(image_path), "helper\n", 0o755)
        os.chown(self.p(image_path), 0, 0)
        self.p(image_path).chmod(0o4755)

    def add_driver(self) -> None:
        write(self.p("/usr/lib/x86_64-linux-gnu/libcuda.so.1"), "not really a driver\n")

    def add_huge_file(self, size: int) -> None:
        """A sparse file: its size counts, it takes no disk space."""
        with open(self.p("/opt/huge.bin"), "wb") as fh:
            fh.truncate(size)

    def use_dash(self) -> None:
        self.p("/bin/sh").unlink()
        write(self.p("/bin/dash"), "#!/nonexistent\n", 0o755)
        os.symlink("dash", self.p("/bin/sh"))

    def drop_unbuffered(self) -> None:
        del self.env_vars["PYTHONUNBUFFERED"]

    def remove_ma_launch(self) -> None:
        self.p("/usr/local/bin/ma-launch").unlink()
        shutil.rmtree(self.p("/opt/ma-launch"))

    def lock_ma_launch(self) -> None:
        self.p("/opt/ma-launch").chmod(0o700)


# ---------------------------------------------------------------- running doctor on a root


def report(
    image: ImageRoot, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, object]]:
    """``ma-launch doctor --root … --json`` in this process: the exit code and the parsed report."""
    code = run(["doctor", "--root", str(image.root), "--json", *image.image_env_args(), *extra])
    out = capsys.readouterr().out
    return code, json.loads(out)


def by_id(data: dict[str, object]) -> dict[str, dict[str, object]]:
    checks = data["checks"]
    assert isinstance(checks, list)
    return {c["id"]: c for c in checks}


def status(data: dict[str, object], check_id: str) -> str:
    return str(by_id(data)[check_id]["status"])
