"""Which ModelArts training service (if any) runs this container, decided from its environment variables.

The new training service ("v2") sets ``MA_VJ_NAME``, ``MA_JOB_DIR`` and ``VC_TASK_INDEX``; the old one ("v1",
DLS) sets ``DLS_TASK_INDEX`` and ``BATCH_JOB_ID``. Anything else is "local". A variable counts only when it is
set to a non-empty value. Pure: the environment is an argument.
"""

from __future__ import annotations

from launcher.core.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Literal, NoReturn

    PlatformKind = Literal["v2", "v1", "local"]

V2_MARKERS = ("MA_VJ_NAME", "MA_JOB_DIR", "VC_TASK_INDEX")
V1_MARKERS = ("DLS_TASK_INDEX", "BATCH_JOB_ID")


class Platform(Record):
    """The detected platform: ``kind`` is ``"v2"``, ``"v1"`` or ``"local"``; ``evidence`` names the
    variables that decided it (empty for ``"local"``). Read-only."""

    __slots__ = ("evidence", "kind")
    kind: PlatformKind
    evidence: tuple[str, ...]

    def __init__(self, kind: PlatformKind, evidence: Iterable[str] = ()) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "evidence", tuple(evidence))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Platform is read-only: cannot set {name}")

    @property
    def on_modelarts(self) -> bool:
        return self.kind != "local"

    def describe(self) -> str:
        """One line for the explanation, e.g. ``ModelArts v2 (MA_VJ_NAME, VC_TASK_INDEX)``."""
        if self.kind == "local":
            *first, last = (*V2_MARKERS, *V1_MARKERS)
            return f"not ModelArts (no {', '.join(first)} or {last})"
        return f"ModelArts {self.kind} ({', '.join(self.evidence)})"


LOCAL = Platform("local")


def detect_platform(environ: Mapping[str, str]) -> Platform:
    """v2 when any v2 marker is set (v2 wins when both generations' variables are present), else v1 when
    any v1 marker is set, else local."""
    v2 = tuple(name for name in V2_MARKERS if environ.get(name))
    if v2:
        return Platform("v2", v2)
    v1 = tuple(name for name in V1_MARKERS if environ.get(name))
    if v1:
        return Platform("v1", v1)
    return LOCAL
