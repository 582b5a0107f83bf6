"""Domain exceptions. Library code raises these; the CLI's error layer maps them to exit codes and messages."""

from __future__ import annotations

import os


def debug_from_environment() -> bool:
    """CODESCALER_DEBUG=1 (or true/yes/on): tracebacks, and the engines' own logs and bars."""
    return os.environ.get("CODESCALER_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


class CodescalerError(Exception):
    """Base class: a failure with a message meant for a person, and an optional hint saying what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def add_hint(self, more: str) -> None:
        """Append to the hint (e.g. where a long run's finished work is and how to continue it)."""
        self.hint = f"{self.hint}; {more}" if self.hint else more


class InputError(CodescalerError):
    """The user's input is wrong (bad JSONL, wrong field types, missing file). Exit status 2."""

    exit_code = 2

    def __init__(self, source: str, line: int | None, message: str, hint: str | None = None) -> None:
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}", hint)


class UsageError(CodescalerError):
    """A bad combination of options or arguments. Exit status 2."""

    exit_code = 2


class ModelLoadError(CodescalerError):
    """A model could not be found or loaded (bad path, offline, wrong kind of model). Exit status 1."""


class BackendError(CodescalerError):
    """A backend (vLLM engine, HTTP server) failed in a way that stops the whole run. Exit status 1."""


class DataLoadError(CodescalerError):
    """Benchmark data could not be found or fetched (offline and not cached, gated, not found). Exit status 1.

    `cause_class` is one of loading.CAUSE_CLASSES, so callers can tell the causes apart as for models.
    """

    def __init__(self, message: str, hint: str | None = None, cause_class: str = "unknown") -> None:
        super().__init__(message, hint)
        self.cause_class = cause_class
