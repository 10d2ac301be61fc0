"""The parent of a supervised launch waits for the program's exec before it starts supervising
(:func:`launcher.run.fork.await_exec`), but never past a signal it must handle; and the signal names the
supervisor uses without the ``signal`` module."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from launcher.run.fork import await_exec
from launcher.run.signals import signal_name, signal_number


def test_returns_when_the_other_end_closes() -> None:
    started, child_end = os.pipe()
    closer = threading.Timer(0.3, os.close, (child_end,))
    begin = time.monotonic()
    closer.start()
    await_exec(started, [signal.SIGUSR1])
    assert time.monotonic() - begin >= 0.25  # it waited for the close
    with pytest.raises(OSError):
        os.fstat(started)  # and closed its own end


def test_a_pending_signal_ends_the_wait() -> None:
    started, child_end = os.pipe()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
    try:
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR2)
        begin = time.monotonic()
        await_exec(started, [signal.SIGUSR2])
        assert time.monotonic() - begin < 5
        assert signal.SIGUSR2 in signal.sigpending()  # left for the supervisor, not consumed
        assert signal.sigtimedwait([signal.SIGUSR2], 0) is not None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        os.close(child_end)


def test_a_signal_not_waited_for_does_not_end_the_wait() -> None:
    started, child_end = os.pipe()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
    closer = threading.Timer(0.3, os.close, (child_end,))
    try:
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR2)
        begin = time.monotonic()
        closer.start()
        await_exec(started, [signal.SIGUSR1])
        assert time.monotonic() - begin >= 0.25
    finally:
        closer.join()
        signal.sigtimedwait([signal.SIGUSR2], 0)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@pytest.mark.parametrize("sig", list(signal.Signals))
def test_signal_names_are_those_of_the_signal_module(sig: signal.Signals) -> None:
    assert signal_name(sig) == sig.name
    assert signal_number(sig.name) == sig


def test_a_number_without_a_name() -> None:
    assert signal_name(0) == "signal 0"
    with pytest.raises(KeyError):
        signal_number("SIGNOPE")
