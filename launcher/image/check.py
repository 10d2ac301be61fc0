"""The vocabulary of ``ma-launch doctor``: a check's status, its result, and the JSON its details hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

#: A check's outcome: ``fail`` makes doctor exit 1; ``warn`` is reported and allowed.
Status = Literal["pass", "warn", "fail"]
PASS: Status = "pass"  # noqa: S105 (a status, not a password)
WARN: Status = "warn"
FAIL: Status = "fail"
STATUSES: tuple[Status, ...] = (PASS, WARN, FAIL)

#: How a check learned whether the default user can use a file: ``probe`` ran it as that user (setpriv,
#: live image only), ``as-user`` ran it or asked ``access()`` as doctor's own user, who is that user;
#: ``static`` read owners, mode bits and file headers and executed nothing.
Method = Literal["probe", "as-user", "static"]

#: A value in a check's ``details`` (what ``--json`` prints).
JSONValue = Union[str, int, float, bool, None, list["JSONValue"], dict[str, "JSONValue"]]
Details = dict[str, JSONValue]


@dataclass(frozen=True)
class Check:
    """The outcome of one check: a stable id, a status, one line each of summary and advice (advice is
    given whenever the status is not ``pass``), and details for ``--json``."""

    id: str
    status: Status
    summary: str
    advice: str = ""
    details: Details = field(default_factory=dict)

    def as_dict(self) -> dict[str, JSONValue]:
        return {
            "id": self.id,
            "status": self.status,
            "summary": self.summary,
            "advice": self.advice,
            "details": dict(self.details),
        }
