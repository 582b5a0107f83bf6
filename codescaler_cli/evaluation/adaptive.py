"""What adaptive sampling would have cost and bought, replayed on recorded samples: for each stopping rule over a
grid of thresholds, the accuracy of what `generate` would have submitted (the best-scored candidate drawn so far)
against the samples (and generated tokens) it would have drawn per problem, in sample order and averaged over
random orders of each problem's samples; and the calibration that picks the cheapest rule within EPS of full-N.

Pure functions of `Outcome`s (no model, no sandbox): the rules are `stopping.StoppingRule`'s, checked after each
wave of `wave` samples exactly as the pipeline checks them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..stopping import AGREEMENT, MARGIN, RULE_FLAGS, RULES, SCORE, StoppingRule, StopStatistics, format_threshold
from .strategies import Outcome

DEFAULT_ORDERS = 20
# Thresholds of the score and margin rules: these quantiles of the scores (and score gaps) the records hold.
QUANTILES = tuple(round(q / 20, 2) for q in range(1, 20))


@dataclass(frozen=True)
class Spent:
    """What one selection costs and buys, per problem on average: accuracy, samples drawn and generated tokens
    (None when the records carry no token counts)."""

    accuracy: float
    samples: float
    tokens: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "samples": self.samples, "tokens": self.tokens}


@dataclass(frozen=True)
class ReplayRow:
    """One rule at one threshold: replayed in sample order and averaged over random orders."""

    rule: str
    threshold: float | int
    in_order: Spent
    shuffled: Spent

    def stopping(self, wave: int) -> StoppingRule:
        return StoppingRule(wave=wave, **{self.rule: self.threshold})

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "threshold": self.threshold, "sample_order": self.in_order.to_json(),
                "random_orders": self.shuffled.to_json()}


@dataclass(frozen=True)
class Calibration:
    """The cheapest rule (fewest expected samples over random orders) whose accuracy is within `epsilon` of
    full-N; None when no rule is."""

    epsilon: float
    row: ReplayRow | None
    wave: int
    n: int

    def flags(self) -> str:
        return f"-n {self.n} {self.row.stopping(self.wave).flags()}" if self.row is not None else f"-n {self.n}"

    def to_json(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "options": self.flags(),
                "row": self.row.to_json() if self.row is not None else None}


@dataclass
class CostReport:
    """Accuracy against samples spent for every rule and threshold, beside full-N (every recorded sample)."""

    wave: int
    orders: int
    seed: int
    n: int  # the most samples a problem has: what `-n` was
    full: Spent  # every recorded sample, over the random orders (the orders break score ties)
    full_in_order: Spent
    rows: list[ReplayRow] = field(default_factory=list)
    calibration: Calibration | None = None

    def to_json(self) -> dict[str, Any]:
        return {"wave": self.wave, "random_orders": self.orders, "seed": self.seed, "n": self.n,
                "full_n": {"sample_order": self.full_in_order.to_json(), "random_orders": self.full.to_json()},
                "rules": [row.to_json() for row in self.rows],
                "calibration": self.calibration.to_json() if self.calibration is not None else None}

    def frontier(self, rule: str, most: int = 5) -> list[ReplayRow]:
        """A rule's thresholds that no other threshold beats on both accuracy and samples (random orders), at most
        `most` of them spread from the cheapest to the dearest."""
        rows = sorted((row for row in self.rows if row.rule == rule),
                      key=lambda row: (row.shuffled.samples, -row.shuffled.accuracy))
        best: list[ReplayRow] = []
        for row in rows:
            if not best or row.shuffled.accuracy > best[-1].shuffled.accuracy + 1e-12:
                best.append(row)
        if len(best) <= most:
            return best
        return [best[round(k * (len(best) - 1) / (most - 1))] for k in range(most)]


# ---------------------------------------------------------------------------------------------------------------
# One problem, one order


def pick(outcomes: Sequence[Outcome], drawn: Sequence[int]) -> int:
    """What `generate` submits among the samples `drawn` (in draw order): the best score, ties by draw order; with no
    scored candidate, the first drawn (as ranks put unscored candidates after scored ones, in order)."""
    return min(range(len(drawn)), key=lambda k: (outcomes[drawn[k]].score is None,
                                                  -(outcomes[drawn[k]].score or 0.0), k))


def replay(outcomes: Sequence[Outcome], rule: StoppingRule, order: Sequence[int]) -> tuple[bool, int, int | None]:
    """Draw `outcomes` in `order`, wave by wave, until `rule` holds: (whether the pick passes, samples drawn, their
    tokens or None). The definition the grid below computes faster."""
    n = len(order)
    drawn = n
    for first, size in rule.waves(n):
        if rule.check((outcomes[i].program, outcomes[i].score) for i in order[:first + size]) is not None:
            drawn = first + size
            break
    taken = list(order[:drawn])
    tokens = [outcomes[i].tokens for i in taken]
    return (outcomes[taken[pick(outcomes, taken)]].passed, drawn,
            None if any(t is None for t in tokens) else sum(t for t in tokens if t is not None))


@dataclass
class _Checkpoint:
    """The samples drawn after a wave, what the rules see then, and what would be submitted."""

    drawn: int
    best: float | None
    margin: float | None
    agreement: int
    passed: bool
    tokens: int | None


def _checkpoints(outcomes: Sequence[Outcome], order: Sequence[int], wave: int) -> list[_Checkpoint]:
    statistics = StopStatistics()
    points = []
    tokens: int | None = 0
    leader = -1  # position (in `order`) of the pick so far
    for position, i in enumerate(order):
        outcome = outcomes[i]
        statistics.add(outcome.program, outcome.score)
        tokens = None if tokens is None or outcome.tokens is None else tokens + outcome.tokens
        if leader < 0 or _beats(outcome, outcomes[order[leader]]):
            leader = position
        if (position + 1) % wave == 0 or position + 1 == len(order):
            points.append(_Checkpoint(position + 1, statistics.best, statistics.margin, statistics.agreement,
                                      outcomes[order[leader]].passed, tokens))
    return points


def _beats(challenger: Outcome, leader: Outcome) -> bool:
    """Whether a later sample displaces the pick so far: a strictly higher score (ties stay with the earlier)."""
    if challenger.score is None:
        return False
    return leader.score is None or challenger.score > leader.score


def _statistic(point: _Checkpoint, rule: str) -> float | None:
    if rule == SCORE:
        return point.best
    if rule == MARGIN:
        return point.margin
    return float(point.agreement)


# ---------------------------------------------------------------------------------------------------------------
# Every problem, every rule


def threshold_grid(per_problem: Sequence[Sequence[Outcome]]) -> dict[str, list[float | int]]:
    """The thresholds tried: quantiles of every valid score (score rule) and of the gaps between distinct programs'
    scores within a problem (margin rule), rounded to 3 decimals so they paste as printed; 1 .. N agreeing samples."""
    scores = sorted(o.score for outcomes in per_problem for o in outcomes
                    if o.program is not None and o.score is not None)
    gaps: list[float] = []
    for outcomes in per_problem:
        programs = sorted({o.program: o.score for o in reversed(outcomes)
                           if o.program is not None and o.score is not None}.values())
        gaps.extend(b - a for k, a in enumerate(programs) for b in programs[k + 1:])
    gaps.sort()
    largest = max((len(outcomes) for outcomes in per_problem), default=0)
    return {SCORE: _quantiles(scores), MARGIN: _quantiles(gaps), AGREEMENT: list(range(1, largest + 1))}


def _quantiles(values: Sequence[float]) -> list[float | int]:
    if not values:
        return []
    return sorted({round(values[min(len(values) - 1, int(q * len(values)))], 3) for q in QUANTILES})


def random_orders(n: int, count: int, seed: int, problem: int) -> list[list[int]]:
    """`count` random orders of a problem's n samples: the same for a seed and a problem's position, whatever else
    the run holds."""
    rng = random.Random(f"{seed}:{problem}")
    orders = []
    for _ in range(count):
        order = list(range(n))
        rng.shuffle(order)
        orders.append(order)
    return orders


def replay_grid(per_problem: Sequence[Sequence[Outcome]], *, wave: int, orders: int = DEFAULT_ORDERS, seed: int = 0,
                grid: dict[str, list[float | int]] | None = None) -> CostReport:
    """Every rule at every threshold of `grid` (default `threshold_grid`), replayed on each problem's samples in
    sample order (as listed) and in `orders` random orders; accuracy and costs are means over problems."""
    if wave < 1:
        raise ValueError("a wave needs at least one sample")
    grid = grid if grid is not None else threshold_grid(per_problem)
    count = len(per_problem)
    in_order = [_checkpoints(o, range(len(o)), wave) for o in per_problem]
    shuffled = [[_checkpoints(o, order, wave) for order in random_orders(len(o), orders, seed, index)]
                for index, o in enumerate(per_problem)]
    with_tokens = all(o.tokens is not None for outcomes in per_problem for o in outcomes)
    report = CostReport(wave=wave, orders=orders, seed=seed, n=max((len(o) for o in per_problem), default=0),
                        full=_mean([points[-1] for runs in shuffled for points in runs], count * orders, with_tokens),
                        full_in_order=_mean([points[-1] for points in in_order], count, with_tokens))
    for rule in RULES:
        for threshold in grid.get(rule, []):
            stop_in_order = [_stop(points, rule, threshold) for points in in_order]
            stop_shuffled = [_stop(points, rule, threshold) for runs in shuffled for points in runs]
            report.rows.append(ReplayRow(rule, threshold, _mean(stop_in_order, count, with_tokens),
                                         _mean(stop_shuffled, count * orders, with_tokens)))
    return report


def _stop(points: list[_Checkpoint], rule: str, threshold: float) -> _Checkpoint:
    for point in points:
        value = _statistic(point, rule)
        if value is not None and value >= threshold:
            return point
    return points[-1]


def _mean(points: Sequence[_Checkpoint], count: int, with_tokens: bool) -> Spent:
    if not count:
        return Spent(0.0, 0.0, None)
    return Spent(accuracy=sum(p.passed for p in points) / count, samples=sum(p.drawn for p in points) / count,
                 tokens=sum(p.tokens or 0 for p in points) / count if with_tokens else None)


def calibrate(report: CostReport, epsilon: float) -> Calibration:
    """The rule and threshold with the fewest expected samples (random orders) whose accuracy is at most `epsilon`
    below full-N's; ties: the more accurate, then rule order (score, margin, agreement), then the threshold."""
    order = {rule: position for position, rule in enumerate(RULES)}
    within = [row for row in report.rows if row.shuffled.accuracy >= report.full.accuracy - epsilon - 1e-12]
    best = min(within, key=lambda row: (row.shuffled.samples, -row.shuffled.accuracy, order[row.rule],
                                        row.threshold), default=None)
    # A rule that saves nothing is no answer: drawing all N is.
    if best is not None and best.shuffled.samples >= report.full.samples:
        best = None
    report.calibration = Calibration(epsilon=epsilon, row=best, wave=report.wave, n=report.n)
    return report.calibration


def describe_row(row: ReplayRow) -> str:
    return f"{RULE_FLAGS[row.rule]} {format_threshold(row.threshold)}"
