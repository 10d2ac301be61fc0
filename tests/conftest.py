"""What every test inherits: a private HOME and cache for the whole session, and a check at the end that
the real ``~/.cache/ma-launch`` was not touched.

The session's HOME and XDG_CACHE_HOME are set in ``pytest_configure``, before any test module is imported,
so that environments copied at import time and every subprocess get them too.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest
from launchkit import snapshot

_SESSION: dict[str, object] = {}


def real_cache_dir() -> Path:
    """The cache ma-launch would use for this user without the session's settings."""
    home = str(_SESSION.get("home") or pwd.getpwuid(os.getuid()).pw_dir)
    return Path(str(_SESSION.get("xdg") or os.path.join(home, ".cache"))) / "ma-launch"


def pytest_configure(config: pytest.Config) -> None:
    _SESSION["home"] = os.environ.get("HOME")
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    _SESSION["xdg"] = xdg if os.path.isabs(xdg) else None
    _SESSION["before"] = snapshot(real_cache_dir())
    private = Path(tempfile.mkdtemp(prefix="ma-launch-tests-"))
    (private / "home").mkdir()
    _SESSION["private"] = private
    os.environ["HOME"] = str(private / "home")
    os.environ["XDG_CACHE_HOME"] = str(private / "cache")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    after = snapshot(real_cache_dir())
    if after != _SESSION.get("before"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"ERROR: the tests changed the real cache {real_cache_dir()}", red=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    private = _SESSION.get("private")
    if isinstance(private, Path):
        shutil.rmtree(private, ignore_errors=True)


@pytest.fixture
def session_cache() -> Path:
    """The session's private cache directory (``$XDG_CACHE_HOME``)."""
    return Path(os.environ["XDG_CACHE_HOME"])


@pytest.fixture
def real_cache() -> Path:
    """The real cache directory of this user, which no test may change."""
    return real_cache_dir()
