"""The supervisor's signal vocabulary: which signals it forwards and which ask for a stop, and their names.

Built on the C module ``_signal``, not ``signal``: ``signal`` imports ``enum``, which alone costs the
supervisor more than the rest of its start (``signal.Signals`` exists only to name signals, done here).

Part of the supervisor: standard library only.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
else:
    import _signal

SIGTERM = _signal.SIGTERM

#: Forwarded to the program's process group.
FORWARDED = (
    _signal.SIGHUP,
    _signal.SIGINT,
    _signal.SIGQUIT,
    _signal.SIGTERM,
    _signal.SIGUSR1,
    _signal.SIGUSR2,
    _signal.SIGWINCH,
    _signal.SIGALRM,
    _signal.SIGCONT,
)
#: The signals that ask the program to stop (and start the grace period).
STOPPING = frozenset({_signal.SIGHUP, _signal.SIGINT, _signal.SIGQUIT, _signal.SIGTERM})
#: Blocked for the whole life of the supervisor, so that taking the terminal back from the background
#: (tcsetpgrp) and writing the summary never stop it.
TTY_SIGNALS = (_signal.SIGTTIN, _signal.SIGTTOU)

# Second names of a number; the signal is called by its first (as signal.Signals does).
_ALIASES = frozenset({"SIGIOT", "SIGCLD", "SIGPOLL"})
_NAMES = {
    number: name
    for name, number in vars(_signal).items()
    if name.startswith("SIG")
    and not name.startswith("SIG_")
    and name not in _ALIASES
    and isinstance(number, int)
}
_NUMBERS = {name: number for number, name in _NAMES.items()}


def signal_name(sig: int) -> str:
    """``SIGTERM`` for 15; ``signal N`` for a number with no name."""
    return _NAMES.get(sig, f"signal {sig}")


def signal_number(name: str) -> int:
    """The number of the signal called ``name`` (``SIGUSR1``); KeyError for no signal of that name."""
    return _NUMBERS[name]
