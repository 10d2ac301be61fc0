"""The one rule for tests that need a tool or a facility: skip locally when it is missing, fail under CI
(``CI=true``), where .ci/run installs everything."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def missing(reason: str) -> NoReturn:
    """Skip the test for ``reason``, or fail it when running under CI."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(reason)


def need(tool: str) -> str:
    """The path of ``tool``, or :func:`missing` when it is not installed."""
    path = shutil.which(tool)
    if path is None:
        missing(f"{tool} is not installed")
    return path


def require(condition: bool, why: str) -> None:
    """:func:`missing` for ``why`` unless ``condition`` holds (a privilege, a working facility)."""
    if not condition:
        missing(why)


def need_root() -> None:
    """The test needs root (chown, setuid files, setpriv, namespaces)."""
    require(os.geteuid() == 0, "needs root (chown, setuid files, setpriv, namespaces)")
