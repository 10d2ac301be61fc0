"""The LD analysis in words, for the launch's explanation and ``--ld-report``: decisions (notes) and
warnings apart, as data, not told apart by a prefix."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from launcher.ld.result import AddedDir, LdAnalysis, Unresolved

_PREFIX = "LD_LIBRARY_PATH: "
_HINTS = {
    "libcuda.so.1": "it comes with the NVIDIA driver, mounted into the container at run time",
    "libnvidia-ml.so.1": "it comes with the NVIDIA driver, mounted into the container at run time",
    "libascendcl.so": "it comes with the Ascend CANN toolkit; source its set_env.sh",
    "libhccl.so": "it comes with the Ascend CANN toolkit; source its set_env.sh",
}


def added_line(added: AddedDir) -> str:
    """Why a directory is prepended: what it provides, and to which object."""
    why = "; ".join(f"{s} (needed by {n})" for s, n in added.provides)
    return f"{_PREFIX}prepend {added.directory} - it provides {why}"


def warning_line(item: Unresolved) -> str:
    """The warning for one unresolved soname (without a ``warning:`` prefix)."""
    what = item.soname + (f" with version {', '.join(item.versions)}" if item.versions else "")
    more = f" and {len(item.needers) - 1} more" if len(item.needers) > 1 else ""
    hint = _HINTS.get(item.soname, "")
    return (
        f"{what} is not found by the loader and not provided by the env "
        f"(needed by {item.needers[0]}{more}){'; ' + hint if hint else ''}; the launch continues"
    )


def notes(analysis: LdAnalysis) -> list[str]:
    """Why each directory is prepended, or that nothing is missing."""
    if not analysis.added:
        count = analysis.objects_scanned
        plural = "" if count == 1 else "s"
        return [f"{_PREFIX}nothing the env provides is missing ({count} object{plural} checked)"]
    return [added_line(a) for a in analysis.added]


def warnings(analysis: LdAnalysis) -> list[str]:
    """One warning per unresolved soname."""
    return [warning_line(u) for u in analysis.unresolved]
