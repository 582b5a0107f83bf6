"""The CLI's one error layer: domain exceptions become a message on stderr and an exit status, never a traceback.

Exit 2 for bad usage or bad input, 1 for any other failure. `--debug` or CODESCALER_DEBUG=1 prints the traceback
too, when someone needs it; the exit status stays the same.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from ..errors import CodescalerError

F = TypeVar("F", bound=Callable[..., Any])

_debug_flag = False


def set_debug(enabled: bool) -> None:
    global _debug_flag
    _debug_flag = enabled


def debug_enabled() -> bool:
    return _debug_flag or os.environ.get("CODESCALER_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


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
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except CodescalerError as exc:
            if debug_enabled():
                traceback.print_exc()  # the traceback, and still the status the error deserves
            report(exc.message, exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # The reader of our stdout went away (e.g. `| head`): not an error worth a message.
            _silence_stdout()
            raise typer.Exit(0) from None
        except Exception as exc:
            if debug_enabled():
                traceback.print_exc()
            report(f"internal error: {type(exc).__name__}: {exc}",
                   "this is a bug in codescaler; rerun with --debug (or CODESCALER_DEBUG=1) for a traceback "
                   "and report it")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
