"""The CLI's one error layer: domain exceptions become a message on stderr and an exit status, never a traceback.

Exit 2 for bad usage or bad input, 1 for any other failure, 130 on SIGINT (Ctrl-C) and 143 on SIGTERM. `--debug`
or CODESCALER_DEBUG=1 prints the traceback too, when someone needs it; the exit status stays the same.

Signals: while a command runs, SIGINT and SIGTERM raise `Interrupted` (a KeyboardInterrupt, so everything that
already cancels requests and shuts engines down on Ctrl-C does the same on SIGTERM). Code that must not be cut in
half (writing one problem's records) runs inside `uninterrupted()`: a signal arriving there takes effect when the
block ends, so output files and stdout always end with a complete line.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer

from ..errors import CodescalerError, debug_from_environment

F = TypeVar("F", bound=Callable[..., Any])

_debug_flag = False


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread; exits 128 + the signal number (130, 143)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_deferring = 0
_pending: int | None = None
# What to tell the user on an interrupt (e.g. how to resume); set by the running command.
_interrupt_hint: Callable[[], str | None] | None = None


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
    global _pending, _interrupt_hint
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
        _interrupt_hint = None


def set_interrupt_hint(hint: Callable[[], str | None] | None) -> None:
    """What an interrupted run prints after "interrupted" (called at that moment, so it can count what was saved)."""
    global _interrupt_hint
    _interrupt_hint = hint


def _report_interrupt(exc: KeyboardInterrupt) -> int:
    name = "terminated" if isinstance(exc, Interrupted) and exc.signum == signal.SIGTERM else "interrupted"
    print(name, file=sys.stderr)
    hint = None
    if _interrupt_hint is not None:
        try:
            hint = _interrupt_hint()
        except Exception:  # a hint must never turn an interrupt into a crash
            hint = None
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    return exc.exit_code if isinstance(exc, Interrupted) else 130


def set_debug(enabled: bool) -> None:
    global _debug_flag
    _debug_flag = enabled


def debug_enabled() -> bool:
    return _debug_flag or debug_from_environment()


def report(message: str, hint: str | None = None) -> None:
    """Print an error and its hint to stderr."""
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


def handle_errors(command: F) -> F:
    """Wrap a command so domain errors exit with their status and a message instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with signals_as_exceptions():
                try:
                    return command(*args, **kwargs)
                except KeyboardInterrupt as exc:
                    # Reported inside, while the hint the command set is still there.
                    raise typer.Exit(_report_interrupt(exc)) from None
        except (typer.Exit, typer.Abort):
            raise
        except CodescalerError as exc:
            if debug_enabled():
                traceback.print_exc()  # the traceback, and still the status the error deserves
            report(exc.message, exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:  # a second signal while the first was being handled
            raise typer.Exit(exc.exit_code if isinstance(exc, Interrupted) else 130) from None
        except BrokenPipeError:
            # The reader of our stdout went away (e.g. `| head`): not an error worth a message.
            silence_stdout()
            raise typer.Exit(0) from None
        except Exception as exc:
            if debug_enabled():
                traceback.print_exc()
            report(f"internal error: {type(exc).__name__}: {exc}",
                   "this is a bug in codescaler; rerun with --debug (or CODESCALER_DEBUG=1) for a traceback "
                   "and report it")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
