"""The ``--dry-run`` line: the one-line boot command that does in a given shell what the real run does."""

from __future__ import annotations

from launcher.core.libpath import ORIGINAL
from launcher.render.shells import Assignment, render_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Optional

    from launcher.core.plan import LaunchPlan
    from launcher.render.shells import Dialect

#: List variables whose new entries can be written in front of the value the shell has at run time.
LIST_VARIABLES = ("PATH", "LD_LIBRARY_PATH")


def is_shell_name(name: str) -> bool:
    """Whether a shell can export ``name`` (``[A-Za-z_][A-Za-z0-9_]*``)."""
    return (
        bool(name)
        and (name[0].isascii() and (name[0].isalpha() or name[0] == "_"))
        and all(c.isascii() and (c.isalnum() or c == "_") for c in name)
    )


def dry_run_line(
    plan: LaunchPlan,
    dialect: Dialect,
    *,
    argv: Optional[Sequence[str]] = None,
    restate_unexportable: bool = True,
) -> str:
    """The one-line command that does in ``dialect``'s shell what the real run does.

    ``argv`` replaces the plan's (``bake`` adds ``"$@"`` handling); ``restate_unexportable=False`` leaves
    out the inherited variables no shell can export, which only make sense on the machine that made them.
    The program is named by the file the plan resolved (:attr:`LaunchPlan.exec_path`): ``env`` then does
    no PATH search of its own, which could find another file (through an empty entry, or past a script
    whose interpreter is missing).
    """
    assign: list[Assignment] = []
    for name, value in plan.net_set():
        prepend = _prepended(plan, name, value) if dialect.posix_expansion else ()
        assign.append(Assignment(name, value, prepend, _copied(plan, name, value)))
    changed = {name for name, _ in plan.net_set()}
    # Names no shell can export are dropped by some shells (dash) on the way to the program, and some
    # shells keep names for themselves (fish: status, argv): restate them.
    for name, value in plan.environ.items():
        if name in changed or not name:
            continue
        if (restate_unexportable and not is_shell_name(name)) or name in dialect.reserved:
            assign.append(Assignment(name, value))
    words = list(plan.argv if argv is None else argv)
    if words[0] == plan.argv[0]:
        words[0] = plan.exec_path
    return render_line(dialect, plan.workdir, plan.net_unset(), assign, words)


def _copied(plan: LaunchPlan, name: str, value: str) -> Optional[str]:
    """The variable whose starting value ``name`` keeps (MA_LAUNCH_ORIG_LD_LIBRARY_PATH), if any."""
    if name == ORIGINAL and value == plan.base.get("LD_LIBRARY_PATH", ""):
        return "LD_LIBRARY_PATH"
    return None


def _prepended(plan: LaunchPlan, name: str, value: str) -> tuple[str, ...]:
    """The entries put in front of a list variable, when the rest is exactly the starting value."""
    if name not in LIST_VARIABLES:
        return ()
    old = plan.base.get(name, "")
    old_entries = old.split(":") if old else []
    if "" in old_entries:
        return ()
    new_entries = value.split(":")
    count = len(new_entries) - len(old_entries)
    if count <= 0 or new_entries[count:] != old_entries:
        return ()
    return tuple(new_entries[:count])
