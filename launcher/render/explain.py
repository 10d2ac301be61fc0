"""The explanation a launch prints on stderr: what it does and why, one line each."""

from __future__ import annotations

from launcher.render.mask import shown

TYPE_CHECKING = False
if TYPE_CHECKING:
    from launcher.core.plan import LaunchPlan


def explanation(plan: LaunchPlan, *, every_variable: bool) -> list[str]:
    """Lines (without the ``ma-launch:`` prefix): the decisions, every variable change when
    ``every_variable``, and the command executed."""
    lines = list(plan.decisions)
    if every_variable:
        for name, value in plan.net_set():
            lines.append(f"set {name}={shown(name, value)}  ({plan.source_of(name)})")
        for name in plan.net_unset():
            lines.append(f"unset {name}  ({plan.source_of(name)})")
    lines.append("exec " + " ".join(_printable(a) for a in plan.argv))
    return lines


def _printable(word: str) -> str:
    from launcher.render.shells import quote_posix

    return quote_posix(word).encode("utf-8", "backslashreplace").decode("utf-8")
