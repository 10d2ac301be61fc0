"""Whether this start of the boot command is a restart: ModelArts runs the boot command again in place after
a suspension or a fault (``MA_PROC_START_CNT``) and when it schedules the job again (``MA_SCHEDULE_CNT``).

Both are read as counts that include the current start, so 1 (or 0, or unset) is the first start; the
restart number is ``MA_PROC_START_CNT - 1``, or ``MA_SCHEDULE_CNT - 1`` when only the schedule count says
it is a restart. The platform does not document the values further (see :mod:`launcher.modelarts.facts`).
A value that is not a whole number is ignored. Pure: the environment is an argument.
"""

from __future__ import annotations

from launcher.core.record import Record
from launcher.modelarts.facts import SCHEDULE_COUNT, START_COUNT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional

#: Longer digit strings are no count (and ``int()`` of them is slow).
_MAX_DIGITS = 9


class Restarts(Record):
    """The platform's start and schedule counts (``None`` when unset or not a whole number)."""

    __slots__ = ("schedule_count", "start_count")

    def __init__(self, start_count: Optional[int], schedule_count: Optional[int]) -> None:
        self.start_count = start_count
        self.schedule_count = schedule_count

    @property
    def number(self) -> int:
        """Which restart this is: 0 for the first start."""
        if self.start_count is not None and self.start_count > 1:
            return self.start_count - 1
        if self.schedule_count is not None and self.schedule_count > 1:
            return self.schedule_count - 1
        return 0

    def describe(self) -> str:
        """``restart 2 of this job (MA_PROC_START_CNT=3, MA_SCHEDULE_CNT=1)``, or ``first start of …``."""
        counts = ", ".join(
            f"{name}={value}"
            for name, value in ((START_COUNT, self.start_count), (SCHEDULE_COUNT, self.schedule_count))
            if value is not None
        )
        head = f"restart {self.number} of this job" if self.number else "first start of this job"
        return f"{head} ({counts})"

    def data(self) -> dict[str, object]:
        """For the JSON plan and the summary."""
        return {
            "start_count": self.start_count,
            "schedule_count": self.schedule_count,
            "restart": self.number,
        }


def restarts(environ: Mapping[str, str]) -> Optional[Restarts]:
    """The counts from ``environ``; ``None`` when the platform set neither."""
    found = Restarts(_count(environ.get(START_COUNT)), _count(environ.get(SCHEDULE_COUNT)))
    if found.start_count is None and found.schedule_count is None:
        return None
    return found


def _count(raw: Optional[str]) -> Optional[int]:
    text = (raw or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS:
        return None
    return int(text)
