#!/bin/sh
# ma-launch in two minutes, on any machine (no conda needed):
#
#     pip install . && sh examples/run_demo.sh [DIR]
#
# Builds a miniature ModelArts install (a conda root with the env python-3.7.10, an activate.d script,
# env_vars, a training script and a program that needs the env's libdemo.so.1), then launches into it.
# With DIR the install is built there and kept; without, it goes to a temporary directory that is
# removed at the end.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-}
if [ -z "$python" ]; then
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
    done
fi
if [ -z "$python" ]; then
    echo "run_demo.sh: no python3 on PATH (set PYTHON=/path/to/python)" >&2
    exit 69
fi
if command -v ma-launch >/dev/null 2>&1; then
    launch() { ma-launch "$@"; }
else
    launch() { "$python" -m launcher "$@"; }
fi

section() {
    printf '\n=== %s ===\n' "$*" >&2
}

section "1. build a miniature ModelArts install"
if [ $# -ge 1 ]; then
    demo=$("$python" "$here/demo_install.py" "$1")
else
    demo=$("$python" "$here/demo_install.py")
    trap 'rm -rf "$demo"' EXIT
fi
home=$demo/home/ma-user
# The LD analysis of the demo's env is kept in the demo directory, not in your ~/.cache/ma-launch.
export XDG_CACHE_HOME="$demo/cache"
export ANACONDA_DIR="$home/anaconda3"
unset CONDA_PREFIX DEFAULT_CONDA_ENV_NAME MA_HOME 2>/dev/null || true
echo "ANACONDA_DIR=$ANACONDA_DIR" >&2

section "2. run the training script in env python-3.7.10 (-v explains every change; lines stream)"
echo "\$ ma-launch -v -n python-3.7.10 --workdir $home -- python modelarts/user-job-dir/code/train.py --steps 3" >&2
launch -v -n python-3.7.10 --workdir "$home" -- python modelarts/user-job-dir/code/train.py --steps 3 |
    while IFS= read -r line; do printf '[job log] %s\n' "$line"; done

if [ -x "$home/anaconda3/envs/python-3.7.10/bin/demo-probe" ]; then
    section "3. a program that needs the env's lib/libdemo.so.1, without the fix (--ld-library-path off)"
    echo "\$ ma-launch -q --ld-library-path off -n python-3.7.10 --workdir $home -- demo-probe" >&2
    status=0
    launch -q --ld-library-path off -n python-3.7.10 --workdir "$home" -- demo-probe || status=$?
    echo "exit status $status (127: the loader could not find libdemo.so.1)" >&2
    if [ "$status" -eq 0 ]; then
        echo "run_demo.sh: expected demo-probe to fail without the env's lib on LD_LIBRARY_PATH" >&2
        exit 1
    fi

    section "4. the same program with the default (--ld-library-path auto: exactly the env dirs it misses)"
    echo "\$ ma-launch -n python-3.7.10 --workdir $home -- demo-probe" >&2
    launch -n python-3.7.10 --workdir "$home" -- demo-probe
else
    section "3-4. skipped: gcc is not installed, so there is no demo-probe to show the .so fix"
fi

section "5. --dry-run: the one-line boot command that does the same, for sh"
line=$(launch -q --dry-run --shell sh -n python-3.7.10 --workdir "$home" -- \
    python modelarts/user-job-dir/code/train.py --steps 1)
printf '%s\n' "$line"

section "6. that line, run by sh without ma-launch"
sh -c "$line"
section "done"
