"""Domain exceptions. Library code raises these; the CLI's error layer maps them to exit codes and messages."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


_debug = False


def set_debug(enabled: bool) -> None:
    """Debug mode (the CLI's --debug): tracebacks, and the engines' own logs and bars."""
    global _debug
    _debug = enabled


def debug_enabled() -> bool:
    """--debug, or CODESCALER_DEBUG=1 (or true/yes/on) in the environment."""
    return _debug or os.environ.get("CODESCALER_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


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


class SettingsChanged(UsageError):
    """`--resume` refused: the run that wrote the output file had other settings. Exit status 2.

    `differences` holds (setting, its value then, its value now) for every setting that differs, settings named as
    the configs' fingerprints name them; `describe(labels)` names them as the caller spells them (the CLI: flags).
    """

    def __init__(self, output: Path, differences: list[tuple[str, Any, Any]]) -> None:
        self.output = output
        self.differences = differences
        super().__init__(self.describe({}), "resume with the same settings, or run without --resume to start over "
                         f"(this replaces {output})")

    def describe(self, labels: Mapping[str, str]) -> str:
        def show(value: Any) -> str:
            return "(not set)" if value is None else json.dumps(value, ensure_ascii=False)

        named = [f"{labels.get(name) or name.replace('_', ' ')} {show(then)} then, {show(now)} now"
                 for name, then, now in self.differences]
        return f"cannot resume {self.output}: it was written with different settings: " + "; ".join(named)


class ModelLoadError(CodescalerError):
    """A model could not be found or loaded (bad path, offline, wrong kind of model). Exit status 1."""


class BackendError(CodescalerError):
    """A backend (vLLM engine, HTTP server) failed in a way that stops the whole run. Exit status 1."""


class StorageError(CodescalerError):
    """A file or database could not be written or read back: a full disk, an I/O error, a corrupt cache. Exit
    status 1 (a long run's hint says how to continue it)."""


# What says the path itself cannot be written (a read-only filesystem, no permission, no such directory): the
# person picks another, as for any bad argument. Anything else (a full disk, a quota, an I/O error) is a failure.
_UNWRITABLE_PATH = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR}


def write_error(what: str, exc: OSError) -> CodescalerError:
    """A failed write of `what` ("--output out.jsonl") as the error a person can act on: UsageError (exit 2) when
    the path cannot be written, StorageError (exit 1) when the disk failed it (full, over quota, I/O error)."""
    detail = exc.strerror or str(exc)
    if exc.errno in _UNWRITABLE_PATH:
        return UsageError(f"cannot write {what}: {detail}", "check that the directory exists and is writable")
    return StorageError(f"cannot write {what}: {detail}", "free some space on that filesystem (or write elsewhere)")


class DataLoadError(CodescalerError):
    """Benchmark data could not be found or fetched (offline and not cached, gated, not found). Exit status 1.

    `cause_class` is one of loading.CAUSE_CLASSES, so callers can tell the causes apart as for models.
    """

    def __init__(self, message: str, hint: str | None = None, cause_class: str = "unknown") -> None:
        super().__init__(message, hint)
        self.cause_class = cause_class
