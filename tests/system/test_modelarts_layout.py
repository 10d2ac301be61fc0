"""The real ModelArts paths, exercised for real: /home/ma-user/anaconda3 with env python-3.7.10 and
/home/ma-user/modelarts/user-job-dir/code/train.py, built on a tmpfs mounted over /home in a private mount
namespace (``unshare -m``). Nothing is written to the host's /home: the tmpfs vanishes with the namespace.

Each test writes a small driver script; the driver builds the layout inside the namespace, runs
ma-launch there, and prints what it saw as JSON for the test to check.

The env's ``bin/python`` is a ``#!/bin/sh`` wrapper that exports ``WHICH_ENV=<env name>`` and execs the
real interpreter, so train.py can report which env's python was exec'd.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from launchkit import REPO
from needs import missing, need

REAL_PYTHON = os.path.realpath(sys.executable)
HOME = "/home/ma-user"
ROOT = HOME + "/anaconda3"
ENV = ROOT + "/envs/python-3.7.10"
TRAIN_REL = "modelarts/user-job-dir/code/train.py"
TRAIN = HOME + "/" + TRAIN_REL


def _under_home(path: str) -> bool:
    return os.path.realpath(path).startswith("/home/")


def _unshare_prefix() -> list[str]:
    # As root: a private mount namespace. Otherwise a user namespace maps us to root inside it.
    base = ["unshare", "-m", "--propagation", "private"]
    return base if os.geteuid() == 0 else ["unshare", "-r", *base[1:]]


@functools.lru_cache(maxsize=1)
def _namespace_problem() -> str:
    """Why mount namespaces cannot be used here, or "" when they can."""
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    for path in (REAL_PYTHON, sys.executable, str(REPO)):
        if _under_home(path):
            return f"{path} lives under /home, which these tests hide behind a tmpfs"
    probe = subprocess.run(
        [*_unshare_prefix(), "sh", "-c", "mount -t tmpfs tmpfs /home"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"cannot mount a tmpfs in a private mount namespace: {probe.stderr.strip()}"
    return ""


# The driver's first part: build the layout, define helpers. CONFIG comes from argv[1] as JSON.
PRELUDE = r'''
import json, os, subprocess, sys

CONFIG = json.loads(sys.argv[1])
REAL_PYTHON = CONFIG["real_python"]
LAUNCH = CONFIG["launch"]
HOME = "/home/ma-user"
ROOT = HOME + "/anaconda3"
ENV = ROOT + "/envs/python-3.7.10"
CODE = HOME + "/modelarts/user-job-dir/code"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_ENV = {
    "PATH": SYSTEM_PATH,
    "LANG": "C.UTF-8",
    "PYTHONPATH": CONFIG["pythonpath"],
    "XDG_CACHE_HOME": CONFIG["cache"],
}
RESULT = {}


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


def make_env(prefix, name):
    write(prefix + "/conda-meta/history", "")
    os.makedirs(prefix + "/lib", exist_ok=True)
    wrapper = "#!/bin/sh\nexport WHICH_ENV=%s\nexec %s \"$@\"\n" % (name, REAL_PYTHON)
    write(prefix + "/bin/python", wrapper, 0o755)


make_env(ROOT, "base")
for name in ("python-3.7.10", "python-3.9.2", "PyTorch-2.1.0"):
    make_env(ROOT + "/envs/" + name, name)

write(CODE + "/train.py", """\
import json, os, sys
print(json.dumps({
    "which_env": os.environ.get("WHICH_ENV"),
    "conda_prefix": os.environ.get("CONDA_PREFIX"),
    "cwd": os.getcwd(),
    "args": sys.argv[1:],
    "ld_library_path": os.environ.get("LD_LIBRARY_PATH"),
}))
""")

# A stand-in for conda: records its argv, then does what `conda run -n NAME CMD...` does.
write(ROOT + "/bin/conda", """\
#!/bin/sh
printf '%s\\n' "$@" > /home/ma-user/conda-argv.txt
[ "$1" = run ] || { echo "fake conda: only 'run' is known" >&2; exit 2; }
shift
[ "$1" = --no-capture-output ] && shift
[ "$1" = -n ] || { echo "fake conda: expected -n NAME" >&2; exit 2; }
prefix=/home/ma-user/anaconda3/envs/$2
[ -d "$prefix/conda-meta" ] || { echo "EnvironmentLocationNotFound: $2" >&2; exit 1; }
export CONDA_PREFIX="$prefix" CONDA_DEFAULT_ENV="$2" PATH="$prefix/bin:$PATH"
shift 2
exec "$@"
""", 0o755)


def launch(args, env=None, cwd="/"):
    environ = dict(BASE_ENV)
    environ.update(env or {})
    proc = subprocess.run(LAUNCH + list(args), env=environ, cwd=cwd, capture_output=True, text=True)
    result = {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr}
    try:
        result["json"] = json.loads(proc.stdout)
    except ValueError:
        result["json"] = None
    return result
'''

EPILOGUE = "\nprint(json.dumps(RESULT))\n"


def in_namespace(tmp_path: Path, body: str) -> dict[str, Any]:
    """Run ``body`` after the prelude in a driver inside a fresh mount namespace; return its RESULT."""
    problem = _namespace_problem()
    if problem:
        missing(problem)
    if _under_home(str(tmp_path)):
        missing(f"the test directory {tmp_path} lives under /home")
    driver = tmp_path / "driver.py"
    driver.write_text(PRELUDE + textwrap.dedent(body) + EPILOGUE)
    config = {
        "real_python": REAL_PYTHON,
        "launch": [sys.executable, "-m", "launcher"],
        "pythonpath": str(REPO),
        "cache": os.environ["XDG_CACHE_HOME"],  # the session's private cache (conftest.py)
    }
    host_home_before = sorted(os.listdir("/home")) if os.path.isdir("/home") else None
    proc = subprocess.run(
        [
            *_unshare_prefix(),
            "sh",
            "-c",
            'mount -t tmpfs tmpfs /home && exec "$0" "$@"',
            sys.executable,
            str(driver),
            json.dumps(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    # The tmpfs and everything on it went away with the namespace.
    host_home_after = sorted(os.listdir("/home")) if os.path.isdir("/home") else None
    assert host_home_after == host_home_before
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def _train_output(run: dict[str, Any]) -> dict[str, Any]:
    assert run["rc"] == 0, run
    seen: dict[str, Any] = json.loads(run["out"].strip().splitlines()[-1])
    return seen


# The four documented ways, each as (extra environment, ma-launch arguments, expected env rule).
METHODS = {
    "1-image-variables": (
        {"ANACONDA_DIR": ROOT, "DEFAULT_CONDA_ENV_NAME": "python-3.7.10"},
        ["--", "python", TRAIN_REL, "--data_url=/home/ma-user/modelarts/inputs/data_url_0/"],
        "anaconda_dir",
    ),
    "2-absolute-interpreter": ({}, ["--", ENV + "/bin/python", TRAIN], "interpreter"),
    "3-env-bin-first-on-path": (
        {"PATH": ENV + "/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        ["--", "python", TRAIN_REL],
        "path",
    ),
    "name-in-default-root": ({}, ["-n", "python-3.7.10", "--", "python", TRAIN_REL], "name"),
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_documented_method_resolves_the_env(tmp_path: Path, method: str) -> None:
    extra_env, args, rule = METHODS[method]
    body = f"""
    EXTRA, ARGS = {extra_env!r}, {args!r}
    RESULT["plan"] = launch(["--json", *ARGS], EXTRA)
    RESULT["run"] = launch(ARGS, EXTRA, cwd="/tmp")
    """
    result = in_namespace(tmp_path, body)
    plan = result["plan"]["json"]
    assert plan is not None, result["plan"]
    assert plan["exit_code"] == 0, plan["problems"]
    assert plan["env"] == {"name": "python-3.7.10", "prefix": ENV, "root": ROOT}
    assert plan["env_rule"] == rule
    assert plan["workdir"] == HOME
    assert plan["program"] == ENV + "/bin/python"
    assert plan["set"]["CONDA_PREFIX"] == ENV
    # auto: nothing the program needs is missing, so LD_LIBRARY_PATH is left alone
    assert plan["ld_library_path"]["mode"] == "auto"
    assert "LD_LIBRARY_PATH" not in plan["set"]

    seen = _train_output(result["run"])
    assert seen["which_env"] == "python-3.7.10"
    assert seen["conda_prefix"] == ENV
    assert seen["cwd"] == HOME
    assert not (seen["ld_library_path"] or "").startswith(ENV)
    assert seen["args"] == args[args.index("--") + 3 :]


def test_conda_run_composes_the_documented_command(tmp_path: Path) -> None:
    body = f"""
    ARGS = ["--conda-run", "-n", "python-3.7.10", "--", "python", {TRAIN_REL!r}, "--train_url=/out/"]
    RESULT["plan"] = launch(["--json", *ARGS])
    RESULT["run"] = launch(ARGS, cwd="/tmp")
    with open(HOME + "/conda-argv.txt") as handle:
        RESULT["conda_argv"] = handle.read().splitlines()
    """
    result = in_namespace(tmp_path, body)
    plan = result["plan"]["json"]
    assert plan is not None, result["plan"]
    expected = [
        ROOT + "/bin/conda",
        "run",
        "--no-capture-output",
        "-n",
        "python-3.7.10",
        "python",
        TRAIN_REL,
        "--train_url=/out/",
    ]
    assert plan["argv"] == expected
    assert plan["env"]["prefix"] == ENV
    assert plan["workdir"] == HOME
    # Through the (fake) conda: the same env, the same directory, the argv exactly as composed.
    assert result["conda_argv"] == expected[1:]
    seen = _train_output(result["run"])
    assert seen["which_env"] == "python-3.7.10"
    assert seen["conda_prefix"] == ENV
    assert seen["cwd"] == HOME
    assert seen["args"] == ["--train_url=/out/"]


def test_default_workdir_makes_the_relative_boot_file_work(tmp_path: Path) -> None:
    body = f"""
    ARGS = ["-n", "python-3.7.10", "--", "python", {TRAIN_REL!r}]
    RESULT["plan"] = launch(["--json", *ARGS], cwd="/tmp")
    RESULT["run"] = launch(ARGS, cwd="/tmp")
    RESULT["explained"] = launch(["-v", *ARGS], cwd="/")
    """
    result = in_namespace(tmp_path, body)
    plan = result["plan"]["json"]
    assert plan["workdir"] == HOME
    assert f"working directory {HOME} (the ModelArts default)" in plan["decisions"]
    assert not any("does not exist" in w for w in plan["warnings"])
    assert _train_output(result["run"])["cwd"] == HOME
    assert f"working directory {HOME} (the ModelArts default)" in result["explained"]["err"]


def test_missing_library_fails_without_the_fix_and_runs_with_it(tmp_path: Path) -> None:
    gcc = need("gcc")
    body = f"""
    GCC = {gcc!r}
    write("/home/ma-user/src/demo.c", 'const char *demo_message(void) {{ return "demo ok"; }}\\n')
    write("/home/ma-user/src/probe.c",
          '#include <stdio.h>\\nconst char *demo_message(void);\\n'
          'int main(void) {{ puts(demo_message()); return 0; }}\\n')
    subprocess.run([GCC, "-shared", "-fPIC", "-Wl,-soname,libdemo.so.1", "-o", ENV + "/lib/libdemo.so.1",
                    "/home/ma-user/src/demo.c"], check=True)
    # No rpath: the loader can find libdemo.so.1 only through LD_LIBRARY_PATH.
    subprocess.run([GCC, "-o", ENV + "/bin/demo-probe", "/home/ma-user/src/probe.c",
                    ENV + "/lib/libdemo.so.1"], check=True)
    ARGS = ["-n", "python-3.7.10", "--", "demo-probe"]
    RESULT["off"] = launch(["--ld-library-path", "off", *ARGS])
    RESULT["default"] = launch(ARGS)
    RESULT["absolute_default"] = launch(["--", ENV + "/bin/demo-probe"], {{"ANACONDA_DIR": ROOT}})
    """
    result = in_namespace(tmp_path, body)
    off = result["off"]
    assert off["rc"] == 127, off
    assert "libdemo.so.1: cannot open shared object file" in off["err"]
    assert result["default"]["rc"] == 0, result["default"]
    assert result["default"]["out"].strip() == "demo ok"
    # A program given by absolute path in an env's bin/ also gets the env's lib.
    assert result["absolute_default"]["rc"] == 0, result["absolute_default"]
    assert result["absolute_default"]["out"].strip() == "demo ok"


def test_unknown_env_lists_existing_envs_closest_first(tmp_path: Path) -> None:
    body = """
    RESULT["by_name"] = launch(["-n", "python-3.7", "--", "python", "-c", "pass"])
    RESULT["by_default_name"] = launch(
        ["--", "python", "-c", "pass"], {"ANACONDA_DIR": ROOT, "DEFAULT_CONDA_ENV_NAME": "pytorch-2.1"}
    )
    """
    result = in_namespace(tmp_path, body)
    by_name = result["by_name"]
    assert by_name["rc"] == 66, by_name
    assert "conda env 'python-3.7' not found" in by_name["err"]
    listing = by_name["err"].split("existing envs, closest first:", 1)[1]
    order = [listing.index(f"{name} (") for name in ("python-3.7.10", "python-3.9.2", "base")]
    assert order == sorted(order), listing
    assert f"python-3.7.10 ({ENV})" in listing

    by_default = result["by_default_name"]
    assert by_default["rc"] == 66, by_default
    listing = by_default["err"].split("existing envs, closest first:", 1)[1]
    assert listing.strip().startswith("PyTorch-2.1.0 ("), listing
