"""The explanation a launch prints on stderr: what it does and why, one line each, secrets masked."""

from __future__ import annotations

from launcher.render.mask import mask_argv, mask_text, shown

TYPE_CHECKING = False
if TYPE_CHECKING:
    from launcher.core.plan import LaunchPlan


def explanation(plan: LaunchPlan, *, every_variable: bool) -> list[str]:
    """Lines (without the ``ma-launch:`` prefix): the decisions, every variable change when
    ``every_variable``, and the command executed, all by the masking rule."""
    lines = [mask_text(decision) for decision in plan.decisions]
    if every_variable:
        lines += [mask_text(detail) for detail in plan.ld.details]
        for name, value in plan.net_set():
            lines.append(f"set {name}={shown(name, value)}  ({mask_text(plan.source_of(name))})")
        for name in plan.net_unset():
            lines.append(f"unset {name}  ({mask_text(plan.source_of(name))})")
    lines.append("exec " + " ".join(_printable(a) for a in mask_argv(plan.argv)))
    return lines


def _printable(word: str) -> str:
    from launcher.render.shells import quote_posix

    return quote_posix(word).encode("utf-8", "backslashreplace").decode("utf-8")
