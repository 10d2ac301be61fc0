"""Build a miniature ModelArts-style install to try ma-launch on, without conda.

    python examples/demo_install.py [DIR]

DIR (default: a new temporary directory) receives::

    home/ma-user/anaconda3/                      the conda root (conda-meta/history)
        envs/python-3.7.10/                      an env
            bin/python                           → this machine's Python interpreter
            bin/demo-probe                       a C program that needs lib/libdemo.so.1 (no rpath)
            lib/libdemo.so.1                     the shared library it needs
            conda-meta/state                     env_vars: DEMO_STAGE=train
            etc/conda/activate.d/demo.sh         exports DEMO_ACTIVATED=1
    home/ma-user/modelarts/user-job-dir/code/train.py

The last line printed on stdout is DIR. The C part needs gcc; without it that part is skipped, and
said so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

ENV_NAME = "python-3.7.10"

TRAIN_PY = '''\
"""A training-like job: one log line a second, the way a real job logs its steps."""

import argparse
import os
import sys
import time


def main():
    parser = argparse.ArgumentParser(description="demo training job")
    parser.add_argument("--steps", type=int, default=5)
    # ModelArts appends its channel arguments to the end of the boot command.
    parser.add_argument("--data_url", default=None)
    parser.add_argument("--train_url", default=None)
    args, extra = parser.parse_known_args()

    # No flush=True below, on purpose: when stdout is a pipe (a job log), Python holds lines back
    # unless PYTHONUNBUFFERED is set, which ma-launch does.
    print(f"interpreter   {sys.executable}")
    print(f"sys.prefix    {sys.prefix}")
    print(f"CONDA_PREFIX  {os.environ.get('CONDA_PREFIX', '-')}")
    print(f"DEMO_STAGE    {os.environ.get('DEMO_STAGE', '-')}  (conda-meta/state env_vars)")
    print(f"DEMO_ACTIVATED {os.environ.get('DEMO_ACTIVATED', '-')} (etc/conda/activate.d/demo.sh)")
    print(f"cwd           {os.getcwd()}")
    if args.data_url or args.train_url:
        print(f"data_url={args.data_url} train_url={args.train_url}")
    if extra:
        print(f"other arguments: {extra}")
    for step in range(1, args.steps + 1):
        time.sleep(1)
        stamp = time.strftime("%H:%M:%S")
        print(f"{stamp} step {step}/{args.steps} loss={1.0 / step:.4f}")
    print("training done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

ACTIVATE_SH = """\
# Sourced by bash when the env is activated, like the scripts conda packages install.
export DEMO_ACTIVATED=1
echo "demo.sh: activate.d script ran" >&2
"""

LIB_C = """\
const char *demo_message(void) { return "libdemo.so.1 loaded from the env's lib"; }
"""

PROBE_C = """\
#include <stdio.h>
const char *demo_message(void);
int main(void) { puts(demo_message()); return 0; }
"""


def _write(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, mode)


def _make_env(prefix: str) -> None:
    os.makedirs(os.path.join(prefix, "conda-meta"), exist_ok=True)
    _write(os.path.join(prefix, "conda-meta", "history"), "")
    os.makedirs(os.path.join(prefix, "bin"), exist_ok=True)
    os.makedirs(os.path.join(prefix, "lib"), exist_ok=True)


def build_library(env: str) -> bool:
    """Compile lib/libdemo.so.1 and bin/demo-probe (linked without rpath) into ``env``; False without gcc."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        print("demo_install: gcc is not installed; skipping libdemo.so.1 and bin/demo-probe", file=sys.stderr)
        return False
    src = os.path.join(env, "share", "demo")
    _write(os.path.join(src, "demo.c"), LIB_C)
    _write(os.path.join(src, "probe.c"), PROBE_C)
    lib = os.path.join(env, "lib", "libdemo.so.1")
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-Wl,-soname,libdemo.so.1", "-o", lib, os.path.join(src, "demo.c")],
        check=True,
    )
    # Linked by path: the program records "libdemo.so.1" (the soname) and no rpath, so the loader finds
    # the library only through LD_LIBRARY_PATH.
    subprocess.run(
        [gcc, "-o", os.path.join(env, "bin", "demo-probe"), os.path.join(src, "probe.c"), lib], check=True
    )
    return True


def build(base: str) -> dict[str, str]:
    """Build the demo install under ``base``; return its main paths."""
    home = os.path.join(base, "home", "ma-user")
    root = os.path.join(home, "anaconda3")
    env = os.path.join(root, "envs", ENV_NAME)
    _make_env(root)
    _write(os.path.join(root, "conda-meta", "history"), "==> demo root <==\n")
    _make_env(env)
    python = os.path.join(env, "bin", "python")
    if not os.path.lexists(python):
        os.symlink(os.path.realpath(sys.executable), python)
    _write(os.path.join(env, "conda-meta", "state"), json.dumps({"env_vars": {"DEMO_STAGE": "train"}}) + "\n")
    _write(os.path.join(env, "etc", "conda", "activate.d", "demo.sh"), ACTIVATE_SH)
    code = os.path.join(home, "modelarts", "user-job-dir", "code")
    _write(os.path.join(code, "train.py"), TRAIN_PY)
    probe = build_library(env)
    return {
        "dir": base,
        "home": home,
        "root": root,
        "env": env,
        "train": os.path.join(code, "train.py"),
        "probe": os.path.join(env, "bin", "demo-probe") if probe else "",
    }


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print(textwrap.dedent(__doc__ or "").strip(), file=sys.stderr)
        return 0 if argv[0] in ("-h", "--help") else 2
    if argv:
        base = os.path.abspath(argv[0])
        os.makedirs(base, exist_ok=True)
    else:
        base = tempfile.mkdtemp(prefix="ma-launch-demo-")
    paths = build(base)
    print(f"demo_install: conda root {paths['root']}, env {ENV_NAME}", file=sys.stderr)
    print(paths["dir"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
