"""Which ModelArts training service (if any) runs this container, decided from its environment variables.

The new training service ("v2") sets ``MA_VJ_NAME``, ``MA_JOB_DIR`` and ``VC_TASK_INDEX``; the old one ("v1",
DLS) sets ``DLS_TASK_INDEX`` and ``BATCH_JOB_ID``. Anything else is "local". A variable counts only when it is
set to a non-empty value. Pure: the environment is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

V2_MARKERS = ("MA_VJ_NAME", "MA_JOB_DIR", "VC_TASK_INDEX")
V1_MARKERS = ("DLS_TASK_INDEX", "BATCH_JOB_ID")
KINDS = ("v2", "v1", "local")


@dataclass(frozen=True)
class Platform:
    """The detected platform: ``kind`` is ``"v2"``, ``"v1"`` or ``"local"``; ``evidence`` names the
    variables that decided it (empty for ``"local"``)."""

    kind: str
    evidence: tuple[str, ...] = ()

    @property
    def on_modelarts(self) -> bool:
        return self.kind != "local"

    def describe(self) -> str:
        """One line for the explanation, e.g. ``ModelArts v2 (MA_VJ_NAME, VC_TASK_INDEX)``."""
        if self.kind == "local":
            return "not ModelArts (no MA_VJ_NAME, MA_JOB_DIR, VC_TASK_INDEX, DLS_TASK_INDEX or BATCH_JOB_ID)"
        return f"ModelArts {self.kind} ({', '.join(self.evidence)})"


LOCAL = Platform("local")


def detect_platform(environ: Mapping[str, str]) -> Platform:
    """v2 when any v2 marker is set (v2 wins when both generations' variables are present), else v1 when
    any v1 marker is set, else local."""
    for kind, markers in (("v2", V2_MARKERS), ("v1", V1_MARKERS)):
        found = tuple(name for name in markers if environ.get(name))
        if found:
            return Platform(kind, found)
    return LOCAL
