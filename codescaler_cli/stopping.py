"""Adaptive best-of-N: draw a problem's samples in waves and stop once a rule says more samples would not change
the answer. One definition of the rules, used by `generate`/`eval -m` (the pipeline's wave loop), by `serve`'s
best-of-N endpoints and by `eval`'s replay of the rules on recorded samples.

After each wave a problem's samples so far are checked, in this order:
- `score`: the best valid candidate's raw reward-model score is at least the threshold;
- `margin`: the best program's score exceeds the next distinct program's by at least the threshold (it needs two
  distinct scored programs: one program alone has no margin);
- `agreement`: at least K valid samples are the same program (one dedup key).
The first rule that holds stops the problem (its name is what records call `stopped_by`); a problem no rule stops
draws all N. Sample j of a problem always has the same seed, so an adaptive run draws a prefix of the samples a
run of N draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import UsageError

SCORE, MARGIN, AGREEMENT = "score", "margin", "agreement"
RULES = (SCORE, MARGIN, AGREEMENT)
# The option that sets each rule, for messages and for the line `eval --calibrate` prints.
RULE_FLAGS = {SCORE: "--stop-score", MARGIN: "--stop-margin", AGREEMENT: "--stop-agreement"}
DEFAULT_WAVE = 4

# (program, score) of one sample as the rules see it: its dedup key (None: no valid program) and its raw score
# (None: not scored).
Seen = tuple[str | None, float | None]


@dataclass(frozen=True)
class StoppingRule:
    """When to stop drawing a problem's samples: waves of `wave` samples, and the thresholds of the rules in use
    (None: that rule is off). With no rule on, every problem draws all its samples at once."""

    wave: int = DEFAULT_WAVE
    score: float | None = None
    margin: float | None = None
    agreement: int | None = None

    @property
    def adaptive(self) -> bool:
        return self.score is not None or self.margin is not None or self.agreement is not None

    def validate(self) -> None:
        if self.wave < 1:
            raise UsageError(f"--wave {self.wave}: a wave needs at least one sample")
        if self.agreement is not None and self.agreement < 1:
            raise UsageError(f"--stop-agreement {self.agreement}: it counts samples, so at least 1")
        if self.margin is not None and self.margin < 0:
            raise UsageError(f"--stop-margin {self.margin}: a margin is a score difference, at least 0")

    def waves(self, n: int) -> list[tuple[int, int]]:
        """(first sample, samples) of each wave of a problem of `n` samples: all at once when not adaptive."""
        size = min(self.wave, n) if self.adaptive else n
        return [(first, min(size, n - first)) for first in range(0, n, max(1, size))]

    def check(self, seen: Iterable[Seen]) -> str | None:
        """The rule that stops a problem whose samples so far are `seen`, or None to draw on."""
        statistics = StopStatistics()
        for program, score in seen:
            statistics.add(program, score)
        return self.holds(statistics)

    def holds(self, statistics: StopStatistics) -> str | None:
        """The first rule that holds for these statistics of a problem's samples so far, or None."""
        if self.score is not None and statistics.best is not None and statistics.best >= self.score:
            return SCORE
        if self.margin is not None and statistics.margin is not None and statistics.margin >= self.margin:
            return MARGIN
        if self.agreement is not None and statistics.agreement >= self.agreement:
            return AGREEMENT
        return None

    def flags(self) -> str:
        """The options that set this rule, e.g. `--wave 4 --stop-agreement 3`."""
        parts = [f"--wave {self.wave}"]
        for rule, value in ((SCORE, self.score), (MARGIN, self.margin), (AGREEMENT, self.agreement)):
            if value is not None:
                parts.append(f"{RULE_FLAGS[rule]} {format_threshold(value)}")
        return " ".join(parts)


class StopStatistics:
    """What the rules look at, kept up to date sample by sample: each program's score (its first scored sample's:
    duplicates share one), the two best of them, and the largest number of samples of one program."""

    def __init__(self) -> None:
        self.scores: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.agreement = 0
        self._top: list[float] = []

    def add(self, program: str | None, score: float | None) -> None:
        if program is None:
            return  # no valid program: neither a score nor a vote
        count = self.counts[program] = self.counts.get(program, 0) + 1
        self.agreement = max(self.agreement, count)
        if score is not None and program not in self.scores:
            self.scores[program] = score
            self._top = sorted([*self._top, score], reverse=True)[:2]

    @property
    def best(self) -> float | None:
        return self._top[0] if self._top else None

    @property
    def margin(self) -> float | None:
        """The best program's lead over the next distinct one; None with fewer than two scored programs."""
        return self._top[0] - self._top[1] if len(self._top) == 2 else None


def format_threshold(value: float | int) -> str:
    """A threshold as an option value: integers bare, scores as written (the replay rounds them to 3 decimals)."""
    if isinstance(value, int):
        return str(value)
    return f"{value:g}" if abs(value) < 1e6 else repr(value)


@dataclass
class AdaptiveSummary:
    """What adaptive sampling saved over a run: samples drawn of the budget, which rule stopped how many problems,
    and the generated tokens (those saved estimated from each problem's own samples' mean length)."""

    problems: int = 0
    budget: int = 0  # N per problem, summed
    drawn: int = 0
    tokens: int = 0
    tokens_saved: int = 0
    stopped: dict[str, int] | None = None

    def add(self, n: int, drawn_tokens: Sequence[int], stopped_by: str | None) -> None:
        self.problems += 1
        self.budget += n
        self.drawn += len(drawn_tokens)
        self.tokens += sum(drawn_tokens)
        self.tokens_saved += estimated_tokens_saved(n - len(drawn_tokens), drawn_tokens)
        self.stopped = self.stopped or {}
        key = stopped_by or "none"
        self.stopped[key] = self.stopped.get(key, 0) + 1

    def describe(self) -> str:
        saved = self.budget - self.drawn
        share = 100 * saved / self.budget if self.budget else 0.0
        stops = ", ".join(f"{name} {count}" for name, count in (self.stopped or {}).items() if name != "none")
        unstopped = (self.stopped or {}).get("none", 0)
        return (f"adaptive: drew {self.drawn} of {self.budget} samples ({saved} saved, {share:.0f}%; about "
                f"{self.tokens_saved:,} generated tokens saved); stopped early: {stops or 'none'}"
                + (f"; {unstopped} drew all N" if unstopped else ""))


def estimated_tokens_saved(saved: int, drawn_tokens: Sequence[int]) -> int:
    """The tokens `saved` samples not drawn would have cost: the drawn samples' mean length times their number."""
    if not drawn_tokens or saved <= 0:
        return 0
    return round(sum(drawn_tokens) / len(drawn_tokens) * saved)
