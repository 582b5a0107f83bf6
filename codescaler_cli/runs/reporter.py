"""What a run tells the person watching it: notes, warnings and progress, through one small object.

The library's runs report through a `Reporter`; this base class shows nothing (a library caller sees only what
the run returns), the CLI's shows notes and warnings on stderr and progress bars on a terminal.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[int], None]


def _ignore(count: int) -> None:
    pass


class Reporter:
    """Silent: subclass it to show what a run says."""

    def info(self, message: str) -> None:
        """A note for the person running it (what is resumed, what the cache served, ...)."""

    def warn(self, message: str) -> None:
        """Something the person should act on, though the run goes on."""

    def phase(self, description: str, total: int | None = None) -> ProgressCallback:
        """Start a progress phase ("Sampling", "Scoring", ...); returns `advance(n)`. None: the total comes later."""
        return _ignore

    def set_total(self, description: str, total: int) -> None:
        """The total of a phase started without one."""


SILENT = Reporter()
