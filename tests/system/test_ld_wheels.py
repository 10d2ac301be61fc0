"""Real wheels: NVIDIA's CUDA runtime and NVRTC wheels in an env, and a gcc-built extension module that
links their libraries without any RPATH (as a careless build does). Python cannot import it under
``--ld-library-path off``; under ``auto`` it imports and calls both libraries. The loader is the judge.

The wheels (about 25 MB) are downloaded once with pip into pytest's cache directory (or into
``$MA_LAUNCH_TEST_WHEELS``), never into the user's caches. Without the network the tests skip locally and
fail under CI (tests/needs.py). x86_64 only: these wheel versions exist for it alone.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from condakit import REAL_PYTHON, make_env
from elfkit import ext_suffix, run
from launchkit import REPO
from needs import missing, need

from launcher.ld.analysis import analyze
from launcher.ld.elf import read_elf
from launcher.ld.store import NullStore

pytestmark = pytest.mark.slow

WHEELS = ("nvidia-cuda-runtime-cu12==12.1.105", "nvidia-cuda-nvrtc-cu12==12.1.105")
PYVER = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROOT = str(REPO)

EXTENSION = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
extern int cudaRuntimeGetVersion(int *version);
extern int nvrtcVersion(int *major, int *minor);
static PyObject *versions(PyObject *self, PyObject *args) {
    int runtime = 0, major = 0, minor = 0;
    int e1 = cudaRuntimeGetVersion(&runtime);
    int e2 = nvrtcVersion(&major, &minor);
    return Py_BuildValue("(iiiii)", e1, runtime, e2, major, minor);
}
static PyMethodDef methods[] = {{"versions", versions, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "cudaext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_cudaext(void) { return PyModule_Create(&def); }
"""


@pytest.fixture(scope="module")
def wheels(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The wheel files, downloaded once (or :func:`missing` when that is not possible)."""
    if platform.machine() != "x86_64":
        pytest.skip("these CUDA wheels exist for x86_64 only")
    chosen = os.environ.get("MA_LAUNCH_TEST_WHEELS")
    cache = getattr(request.config, "cache", None)  # None when pytest runs with -p no:cacheprovider
    if chosen:
        folder = Path(chosen)
    elif cache is not None:
        folder = Path(cache.mkdir("ma-launch-wheels"))
    else:
        folder = tmp_path_factory.mktemp("wheels")
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob("nvidia_cuda_*_cu12-12.1.105-*.whl"))
    if len(found) < len(WHEELS):
        argv = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(folder),
        ]
        try:
            done = subprocess.run([*argv, *WHEELS], capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            missing("downloading the CUDA wheels timed out (no network?)")
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            missing(f"cannot download the CUDA wheels (no network?): {last}")
        found = sorted(folder.glob("nvidia_cuda_*_cu12-12.1.105-*.whl"))
    assert len(found) == len(WHEELS), found
    return found


@pytest.fixture
def env(wheels: list[Path], tmp_path: Path) -> tuple[Path, str]:
    """An env with both wheels unpacked into site-packages (as pip does) and the extension module."""
    gcc = need("gcc")
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        missing(f"Python headers missing ({include})")
    prefix = make_env(tmp_path / "envs" / "cuda")
    site = f"{prefix}/lib/{PYVER}/site-packages"
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    source = tmp_path / "cudaext.c"
    source.write_text(EXTENSION)
    libs = [f"{site}/nvidia/cuda_runtime/lib/libcudart.so.12", f"{site}/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"]
    out = f"{site}/cudaext{ext_suffix()}"
    subprocess.run([gcc, "-shared", "-fPIC", f"-I{include}", "-o", out, str(source), *libs], check=True)
    info = read_elf(out)
    assert info is not None and info.rpath is None and info.runpath is None
    assert {"libcudart.so.12", "libnvrtc.so.12"} <= set(info.needed)
    return prefix, site


def launch(tmp_path: Path, site: str, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{site}:{ROOT}",
        "MA_HOME": str(tmp_path),
        "HOME": str(tmp_path / "home"),
    }
    return subprocess.run(
        [REAL_PYTHON, "-m", "launcher", *args], env=environ, capture_output=True, text=True, timeout=120
    )


def test_real_wheels_extension_imports_only_with_auto(env: tuple[Path, str], tmp_path: Path) -> None:
    prefix, site = env
    code = "import cudaext; print(cudaext.versions())"
    off = launch(
        tmp_path, site, "-q", "--ld-library-path", "off", "-p", str(prefix), "--", "python", "-c", code
    )
    assert off.returncode != 0 and "libcudart.so.12: cannot open shared object file" in off.stderr

    auto = launch(tmp_path, site, "-p", str(prefix), "--", "python", "-c", code)
    assert auto.returncode == 0, auto.stderr
    assert auto.stdout.strip() == "(0, 12010, 0, 12, 1)"  # both libraries loaded and called
    for lib in ("cuda_nvrtc", "cuda_runtime"):
        assert f"ma-launch: LD_LIBRARY_PATH: prepend {site}/nvidia/{lib}/lib - it provides" in auto.stderr
    assert "warning" not in auto.stderr


def test_real_wheels_analysis_agrees_with_the_loader(env: tuple[Path, str]) -> None:
    prefix, site = env
    result = analyze(str(prefix), REAL_PYTHON, {"PATH": "/usr/bin:/bin"}, store=NullStore())
    assert result.directories == (f"{site}/nvidia/cuda_nvrtc/lib", f"{site}/nvidia/cuda_runtime/lib")
    assert [u.soname for u in result.unresolved if u.certain] == []
    extension = f"{site}/cudaext{ext_suffix()}"
    interpreter = read_elf(REAL_PYTHON)
    assert interpreter is not None and interpreter.interp
    without = run([interpreter.interp, "--list", extension], None)
    assert without.returncode != 0 and "libcudart.so.12: cannot open shared object file" in without.stderr
    listed = run([interpreter.interp, "--list", extension], list(result.directories)).stdout
    assert f"{site}/nvidia/cuda_runtime/lib/libcudart.so.12" in listed
    assert f"{site}/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" in listed
    assert "not found" not in listed
