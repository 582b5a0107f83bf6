"""What a run tells the person watching it: notes, warnings and progress, through one small object.

The library's runs report through a `Reporter`; this base class shows nothing (a library caller sees only what
the run returns), the CLI's shows notes and warnings on stderr and progress bars on a terminal.
"""

from __future__ import annotations

from collections.abc import Callable

from ..records import Candidate
from ..scoring.base import report_started
from ..scoring.config import ScorerConfig

ProgressCallback = Callable[[int], None]


def _ignore(count: int) -> None:
    pass


class Reporter:
    """Silent: subclass it to show what a run says."""

    def info(self, message: str) -> None:
        """A note for the person running it (what is resumed, what the cache served, ...)."""

    def warn(self, message: str) -> None:
        """Something the person should act on, though the run goes on."""

    def phase(self, description: str, total: int | None = None, *, waiting: str | None = None) -> ProgressCallback:
        """Start a progress phase ("Sampling", "Scoring", ...); returns `advance(n)`. None: the total comes later
        (`set_total`), and the phase shows from then on. `waiting` is what the phase shows until its work starts
        (its first count, or `advance.start()`, which a lazily loaded model calls once it is loaded): a model
        loading shows as "Loading the reward model", not as "Scoring 0/9"."""
        return _ignore

    def set_total(self, description: str, total: int) -> None:
        """The total of a phase started without one."""


SILENT = Reporter()


def loading_text(scorer: ScorerConfig) -> str:
    """What a scoring phase shows until the reward model is loaded (or the servers checked)."""
    return "Checking the reward servers" if scorer.urls else "Loading the reward model"


class StartOnly:
    """A progress callback that counts nothing and passes on the start only: for a scorer whose phase is counted
    elsewhere (by problems written), so that its model's loading still shows as loading."""

    def __init__(self, advance: ProgressCallback) -> None:
        self._advance = advance

    def __call__(self, count: int) -> None:
        pass

    def start(self) -> None:
        report_started(self._advance)


class ItemTally:
    """Candidates of a run that need a word, told as they come: those cut at the reward model's `max_length` (the
    first few by `name`, then a count, so the pattern shows without a wall of text), and those that failed (counted;
    the first few kept with their error, for the caller to show once everything is written)."""

    SHOWN = 5

    def __init__(self, reporter: Reporter, max_length: int, name: Callable[[Candidate], str]) -> None:
        self.reporter, self.max_length, self.name = reporter, max_length, name
        self.seen = self.truncated = self.failed = 0
        self.first_failures: list[str] = []

    def add(self, ranked: list[Candidate]) -> None:
        for candidate in sorted(ranked, key=lambda c: c.index):
            self.seen += 1
            self.truncated += candidate.truncated
            if candidate.truncated and self.truncated <= self.SHOWN:
                self.reporter.warn(f"{self.name(candidate)}: the rendered chat is longer than --max-length "
                                   f"{self.max_length} tokens; it was cut on the right and scored truncated")
            if candidate.error is not None:
                self.failed += 1
                if len(self.first_failures) < self.SHOWN:
                    self.first_failures.append(f"{self.name(candidate)}: {candidate.error}")

    def finish(self) -> None:
        if self.truncated > self.SHOWN:
            self.reporter.warn(f"{self.truncated} candidates in all exceeded --max-length {self.max_length} and "
                               "were truncated")
