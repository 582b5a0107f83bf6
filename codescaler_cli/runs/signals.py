"""How a long run meets SIGINT and SIGTERM: they become `Interrupted`, and a write is never cut in half.

While `signals_as_exceptions()` is active (the CLI wraps every command in it), SIGINT and SIGTERM raise
`Interrupted` in the main thread: a KeyboardInterrupt, so everything that already cancels requests and shuts
engines down on Ctrl-C does the same on SIGTERM. Code that must not be cut in half (writing one problem's
records) runs inside `uninterrupted()`: a signal arriving there takes effect when the block ends, so output files
and stdout always end with a complete line. Outside `signals_as_exceptions()` (a library caller's own process),
`uninterrupted()` changes nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread; exits 128 + the signal number (130, 143).

    `hint` says what the interrupted run saved and how to continue it (the run's output adds it on the way out).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.hint: str | None = None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def add_hint(self, more: str) -> None:
        self.hint = f"{self.hint}; {more}" if self.hint else more


_deferring = 0
_pending: int | None = None


def _on_signal(signum: int, frame: object) -> None:
    global _pending
    if _deferring:
        _pending = _pending or signum
        return
    raise Interrupted(signum)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends (then raise it): a write inside is never cut in half."""
    global _deferring, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)


@contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` while the block runs; the previous handlers come back after it."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (e.g. a test runner's worker)
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    _pending = None
    for number in previous:
        signal.signal(number, _on_signal)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
