"""Which values the launcher may show: the one masking rule for every output channel.

Training containers carry credentials in their environment and logs are kept for weeks, so a variable
whose name says it holds a secret is shown as ``********``. Masking changes what is shown, never what is
executed.
"""

from __future__ import annotations

MASK = "********"
_SECRET_WORDS = ("SECRET", "TOKEN", "PASSW", "CREDENTIAL", "PRIVATE")
_SECRET_PARTS = ("AK", "SK", "KEY", "API_KEY")


def is_secret(name: str) -> bool:
    """Whether the value of the variable ``name`` must not be shown."""
    upper = name.upper()
    if any(word in upper for word in _SECRET_WORDS):
        return True
    parts = upper.split("_")
    return any(part in _SECRET_PARTS for part in parts) or "API_KEY" in upper


def shown(name: str, value: str) -> str:
    """The value of ``name`` as the launcher may show it."""
    return MASK if is_secret(name) else value
