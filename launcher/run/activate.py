"""Running the env's activation scripts: one bash sources them all and reports the environment after each.

The rules of activation (which scripts, in which order, what their effect is) live in
:mod:`launcher.core.activation`; this module only runs the shell.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from launcher.core import paths
from launcher.errors import UnavailableError

# One bash sources every script; after each it writes a marker with the script's status and the whole
# environment (NUL-separated) to fd 3, so the effect of each script can be told apart.
_DRIVER = r"""
if [ "$1" != 3 ]; then eval "exec 3>&$1 $1>&-"; fi; shift
__ma_dump() { printf '%s\0' "$1" >&3; env -0 >&3; printf '\0' >&3; }
__ma_dump "start"
for __ma_script in "$@"; do
  . "$__ma_script"
  __ma_dump "status:$?"
done
"""


def run_scripts_in_bash(scripts: Sequence[str], environ: Mapping[str, str], cwd: str) -> bytes:
    """Source ``scripts`` in one bash and return what the driver wrote to fd 3.

    Side effects: runs bash with the scripts; their stdout and stderr go to our stderr (stdout belongs
    to the program), stdin is /dev/null.
    """
    import subprocess

    bash = _find_bash(environ)
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen(
            [bash, "--noprofile", "--norc", "-c", _DRIVER, "ma-launch-activate", str(write_end), *scripts],
            env=dict(environ),
            cwd=cwd if os.path.isdir(cwd) else None,
            stdin=subprocess.DEVNULL,
            stdout=2,
            pass_fds=(write_end,),
        )
    finally:
        os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as reader:
        while True:
            chunk = reader.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
    proc.wait()
    return b"".join(chunks)


def _find_bash(environ: Mapping[str, str]) -> str:
    bash = paths.find_bash(environ.get("PATH"))
    if bash is None:
        raise UnavailableError("activate.d scripts need bash, and there is no bash", hint="install bash")
    return bash
