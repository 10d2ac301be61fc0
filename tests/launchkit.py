"""The one way tests run ma-launch as a command: the repository, the interpreter, a clean environment."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

from condakit import REAL_PYTHON
from needs import missing

#: The repository root (``launcher/`` is importable from it).
REPO = Path(__file__).resolve().parent.parent
#: ma-launch run from this checkout by the real interpreter (never a version manager's shim).
LAUNCH = [REAL_PYTHON, "-m", "launcher"]
#: Inherited variables a test must not depend on: conda's, the platform's, Python's own settings
#: (this machine exports PYTHONUNBUFFERED=1), the launcher's own settings, an exported prompt.
_DROPPED_PREFIXES = ("CONDA", "MA_", "PYTHON", "VC_", "DLS_", "BATCH_", "RANK_TABLE")
_DROPPED = ("ANACONDA_DIR", "DEFAULT_CONDA_ENV_NAME", "VIRTUAL_ENV", "PS1", "PS2")


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without what a launch would react to, with ``launcher`` importable
    and ``MA_HOME`` (the default working directory) at ``tmp_path``; ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES) and k not in _DROPPED}
    env["PYTHONPATH"] = str(REPO)
    env["MA_HOME"] = str(tmp_path)
    env.update(extra)
    return env


def launch(
    args: list[str], env: dict[str, str], *, timeout: float = 60, text: bool = True, **kw: object
) -> subprocess.CompletedProcess[str]:
    """Run ``ma-launch ARGS`` with ``env``, capturing its output."""
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [*LAUNCH, *args], env=env, capture_output=True, text=text, timeout=timeout, check=False, **kw
    )


def snapshot(path: Path) -> list[tuple[str, int, int]]:
    """Every file below ``path`` with its size and modification time (empty when there is none)."""
    if not path.is_dir():
        return []
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*"))


def torch_path() -> str:
    """The directory torch is installed in (looked up, not imported), for a job's PYTHONPATH: an env's
    python is the real interpreter, which does not see a virtualenv's packages."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        missing("torch is not installed")
    return str(Path(spec.origin).parent.parent)


def free_port() -> int:
    """A TCP port nothing listens on now (for rendezvous ports: parallel runs must not share one)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: How each real shell runs a line given after the words, reading none of the user's start-up files.
SHELL_RUNNERS = {
    "sh": ["sh", "-c"],
    "bash": ["bash", "--norc", "--noprofile", "-c"],
    "dash": ["dash", "-c"],
    "zsh": ["zsh", "-f", "-c"],
    "ksh": ["ksh", "-c"],
    "fish": ["fish", "--no-config", "-c"],
    "tcsh": ["tcsh", "-f", "-c"],
}


def one_error_line(err: str) -> str:
    """The one line ``ma-launch: error: …`` that ``err`` must be (no traceback, nothing else)."""
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ma-launch: error: "), err
    return lines[0]
