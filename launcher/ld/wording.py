"""The LD analysis in words, for the launch's explanation and ``--ld-report``: decisions (notes) and
warnings apart, as data, not told apart by a prefix.

Quiet by default: a warning only for a soname that an object the program certainly loads needs and that
nothing provides; the driver's libraries in one informational line; the other unresolved sonames (optional
plugins, transports, test libraries) in one summary line; each soname at most once. ``-v`` adds the lines
the notes only count (:func:`details`); the report lists everything.
"""

from __future__ import annotations

from launcher.ld.sonames import CANN_HINT, hint_for, is_cann_soname, is_driver_soname

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from launcher.ld.result import AddedDir, LdAnalysis, Unresolved

_PREFIX = "LD_LIBRARY_PATH: "
_SHOWN = 3  # names shown before "and N more"


def _names(names: Sequence[str], shown: int = _SHOWN) -> str:
    """``a, b, c and 4 more`` (every name when ``shown`` is 0)."""
    if not shown or len(names) <= shown + 1:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def _needed_by(needers: Sequence[str]) -> str:
    more = f" and {len(needers) - 1} more" if len(needers) > 1 else ""
    return f"needed by {needers[0]}{more}"


def added_line(added: AddedDir) -> str:
    """Why a directory is prepended: what it provides, and which outside copies it comes before."""
    parts = []
    if added.provides:
        parts.append("it provides " + "; ".join(f"{s} (needed by {n})" for s, n in added.provides))
    by_outside: dict[str, list[str]] = {}
    for soname, _needer, outside in added.overrides:
        by_outside.setdefault(outside.rsplit("/", 1)[0], []).append(soname)
    for outside_dir, sonames in by_outside.items():
        parts.append(
            f"it comes before {outside_dir} (inherited LD_LIBRARY_PATH), whose {', '.join(sonames)} "
            f"would otherwise replace the env's own"
        )
    return f"{_PREFIX}prepend {added.directory} - {'; '.join(parts)}"


def shadows_line(added: AddedDir, *, every: bool) -> str:
    """The system libraries a prepended directory shadows for every program of the job."""
    listed = _names(added.shadows, 0 if every else _SHOWN)
    cut = not every and len(added.shadows) > _SHOWN + 1
    more = " (-v or ma-launch --ld-report lists them all)" if cut else ""
    what = "also shadows the system's"
    return f"{_PREFIX}{added.directory} {what} {listed} for every program of the job{more}"


def _what(item: Unresolved) -> str:
    if not item.versions:
        return f"{item.soname} is not found by the loader and not provided by the env"
    if all(v == item.soname for v in item.versions):  # NVIDIA's libraries name their version after the file
        return f"{item.soname} is found only in another version, and the env has no other copy"
    versions = ", ".join(item.versions)
    return f"{item.soname} is found only without version {versions}, and the env has no other copy"


def warning_line(item: Unresolved) -> str:
    """The warning for one unresolved soname (without a ``warning:`` prefix)."""
    hint = hint_for(item.soname)
    return f"{_what(item)} ({_needed_by(item.needers)}){'; ' + hint if hint else ''}; the launch continues"


def _optional_line(item: Unresolved) -> str:
    return f"{_PREFIX}{_what(item)} ({_needed_by(item.needers)}, which the program may never load)"


def _optional(analysis: LdAnalysis) -> list[Unresolved]:
    return [
        u
        for u in analysis.unresolved
        if not u.certain and not is_driver_soname(u.soname) and not is_cann_soname(u.soname)
    ]


def cann_line(items: Sequence[Unresolved]) -> str:
    """The one warning for the CANN libraries nothing provides (certainly loaded or not: torch loads
    torch_npu whenever it is imported)."""
    names = ", ".join(u.soname for u in items)
    return (
        f"{names} {'is' if len(items) == 1 else 'are'} not found ({_needed_by(items[0].needers)}), which "
        f"{CANN_HINT}; the launch continues"
    )


def notes(analysis: LdAnalysis, *, full: bool = False) -> list[str]:
    """The decision lines: each prepended directory and the system libraries it shadows, the driver's
    libraries, and one summary line for the unresolved sonames no certainly loaded object needs
    (``full``: every shadowed library, and one line per such soname instead of the summary)."""
    lines: list[str] = []
    if not analysis.added:
        count = analysis.objects_scanned
        plural = "" if count == 1 else "s"
        lines.append(f"{_PREFIX}nothing the env provides is missing ({count} object{plural} checked)")
    for added in analysis.added:
        lines.append(added_line(added))
        if added.shadows:
            lines.append(shadows_line(added, every=full))
    drivers = [u.soname for u in analysis.unresolved if is_driver_soname(u.soname)]
    if drivers:
        verb = "is" if len(drivers) == 1 else "are"
        lines.append(
            f"{_PREFIX}{', '.join(drivers)} {verb} not in the env: provided by the driver the platform mounts"
        )
    optional = _optional(analysis)
    if optional and full:
        lines += [_optional_line(u) for u in optional]
    elif optional:
        count = len(optional)
        lines.append(
            f"{_PREFIX}{count} soname{'' if count == 1 else 's'} needed only by libraries the program may "
            f"never load {'is' if count == 1 else 'are'} found nowhere "
            f"({_names([u.soname for u in optional])}; -v or --ld-report lists them)"
        )
    return lines


def details(analysis: LdAnalysis) -> list[str]:
    """What ``-v`` adds to :func:`notes`: every shadowed library of each directory whose list was cut,
    and one line per unresolved soname the summary line only counts."""
    lines = [shadows_line(a, every=True) for a in analysis.added if len(a.shadows) > _SHOWN + 1]
    return lines + [_optional_line(u) for u in _optional(analysis)]


def warnings(analysis: LdAnalysis) -> list[str]:
    """One warning per soname that a certainly loaded object needs and nothing provides; one for all the
    CANN libraries nothing provides."""
    cann = [u for u in analysis.unresolved if is_cann_soname(u.soname)]
    others = [
        u for u in analysis.unresolved if u.certain and not is_driver_soname(u.soname) and u not in cann
    ]
    return ([cann_line(cann)] if cann else []) + [warning_line(u) for u in others]


def report_lines(analysis: LdAnalysis) -> list[str]:
    """Everything, for ``--ld-report``: every note in full, then the warnings."""
    return notes(analysis, full=True) + [f"warning: {w}" for w in warnings(analysis)]
