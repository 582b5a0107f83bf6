"""The CLI's one error layer: domain exceptions become a message on stderr and an exit status, never a traceback.

Exit 2 for bad usage or bad input, 1 for any other failure, 130 on SIGINT (Ctrl-C) and 143 on SIGTERM. `--debug`
or CODESCALER_DEBUG=1 prints the traceback too, when someone needs it; the exit status stays the same. A hint
(what to do instead; for an interrupted or failed run, how to continue it) comes with the exception, from the
library; settings a resumed run refuses are named by the flags that set them.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from ..errors import CodescalerError, SettingsChanged, debug_enabled
from ..runs.signals import Interrupted, signals_as_exceptions

F = TypeVar("F", bound=Callable[..., Any])

def report(message: str, hint: str | None = None) -> None:
    """Print an error and its hint to stderr."""
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


def report_interrupt(exc: KeyboardInterrupt) -> int:
    """Say that the command was stopped (and how to continue it); returns the exit status."""
    terminated = isinstance(exc, Interrupted) and exc.signum == signal.SIGTERM
    print("terminated" if terminated else "interrupted", file=sys.stderr)
    hint = getattr(exc, "hint", None)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    return exc.exit_code if isinstance(exc, Interrupted) else 130


def option_names(ctx: typer.Context | None) -> dict[str, str]:
    """Each parameter of the running command by its first long flag (run settings are named like parameters)."""
    if ctx is None:
        return {}
    return {param.name: next((o for o in param.opts if o.startswith("--")), param.opts[0])
            for param in ctx.command.params if param.name and param.opts}


def handle_errors(command: F) -> F:
    """Wrap a command so domain errors exit with their status and a message instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with signals_as_exceptions():
                try:
                    return command(*args, **kwargs)
                except KeyboardInterrupt as exc:
                    raise typer.Exit(report_interrupt(exc)) from None
        except (typer.Exit, typer.Abort):
            raise
        except CodescalerError as exc:
            if debug_enabled():
                traceback.print_exc()  # the traceback, and still the status the error deserves
            if isinstance(exc, SettingsChanged):  # named by the flags of the command (its `ctx`) that set them
                exc.message = exc.describe(option_names(kwargs.get("ctx")))
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
