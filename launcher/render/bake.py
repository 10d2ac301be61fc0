"""``ma-launch bake``: the launch plan written once as a POSIX ``sh`` boot script that needs no Python.

The script is the ``--dry-run`` line for sh with the arguments the platform appends passed on through
``"$@"``. Everything was decided when the script was written (the env, its activation, LD_LIBRARY_PATH);
at boot only ``sh``, ``cd`` and ``env`` run. ``PATH`` and ``LD_LIBRARY_PATH`` are written as additions to
the values the container has at boot, so the platform's own entries (``/usr/local/nvidia/lib64``) stay.

Text that comes from outside (the command line that made the script, the env's path) is written only
through :func:`comment`, which cannot produce a line that is not a comment, and by the masking rule: the
script's command itself is the one place values appear as they are.
"""

from __future__ import annotations

import os

from launcher.errors import one_line
from launcher.render.line import dry_run_line
from launcher.render.mask import mask_argv, mask_text
from launcher.render.shells import POSIX, quote_posix

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from launcher.core.plan import LaunchPlan


def bake_script(plan: LaunchPlan, *, version: str, command_line: Sequence[str]) -> str:
    """The text of the boot script for ``plan``; ``command_line`` is the ma-launch invocation that made it."""
    if plan.problems:
        raise plan.problems[0]
    argv = list(plan.argv)
    if len(argv) >= 3 and argv[1] == "-c" and os.path.basename(argv[0]) in ("bash", "sh"):
        # A -c line: hand the appended arguments to the line, as ModelArts would have appended them.
        argv = [argv[0], "-c", argv[2] + ' "$@"', os.path.basename(argv[0])]
    line = dry_run_line(plan, POSIX, argv=argv, restate_unexportable=False) + ' "$@"'
    env = plan.choice.env
    which_env = f"{env.name} ({env.prefix})" if env else "none (the command runs as it is)"
    made_by = " ".join(quote_posix(word) for word in mask_argv(["ma-launch", *command_line]))
    return "\n".join(
        [
            "#!/bin/sh",
            comment(f"Boot script written by ma-launch {version}; no Python runs at boot."),
            comment(one_line(f"env: {mask_text(which_env)}")),  # a line break in them is shown as \n
            comment(one_line(f"made with: {made_by}")),
            comment(
                "Arguments given to this script (such as the channel arguments ModelArts appends) reach the\n"
                "program. Use it as the boot command: sh /path/to/this/script"
            ),
            line,
            "",
        ]
    )


def comment(text: str) -> str:
    """``text`` as shell comment lines: each of its lines (split at ``\\n``) becomes ``# `` and the line
    with every other line break and control character escaped (``\\r``, ``\\x0b``, ``\\u2028``), so no
    shell can read anything but comments, whatever the text."""
    return "\n".join("# " + one_line(part) for part in text.split("\n"))
