"""What is reported: selection strategies (which of N candidates a best-of-N system would submit), their accuracy
with a 95% interval, pass@k, and accuracy against N as an exact expectation over every subset of N candidates.

A strategy sees, per candidate, only what it could see at selection time: its position, its reward, its program
(for voting), how many public tests it passes and which generated tests (CodeT) it passes. Whether it passes all
tests is what we score it on. Each strategy has `select` (pick from a concrete set; the definition) and `expected`
(the exact mean of `select`'s correctness over all subsets of size m, computed combinatorially; tests check the two
agree).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Outcome:
    """One candidate as strategies see it. `program` is its dedup key, None when it has no valid program."""

    passed: bool
    public_passed: int = 0
    reward: float | None = None
    program: str | None = None
    score: float | None = None  # the raw reward-model score (what stopping rules compare), None when not scored
    tokens: int | None = None  # generated tokens of the sample, when its record says
    generated: frozenset[int] | None = None  # the generated tests it passes (None: no generated tests were run)


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    needs_reward: bool = False
    needs_public_tests: bool = False
    needs_generated_tests: bool = False

    def select(self, outcomes: Sequence[Outcome], subset: Sequence[int]) -> float:
        """Correctness (1, 0, or a probability for `random`) of what this strategy picks among `subset`."""
        raise NotImplementedError

    def expected(self, outcomes: Sequence[Outcome], size: int) -> float:
        """Mean of `select` over all subsets of `size` candidates, exactly."""
        raise NotImplementedError


@dataclass(frozen=True)
class _OrderStrategy(Strategy):
    """Pick the best candidate under a fixed total order (ties always end in input order)."""

    order: str = "first"

    def _key(self, outcomes: Sequence[Outcome], index: int) -> tuple[float, ...]:
        outcome = outcomes[index]
        reward = outcome.reward if outcome.reward is not None else 0.0
        if self.order == "reward":
            return (-reward, index)
        if self.order == "public":
            return (-outcome.public_passed, index)
        if self.order == "public+reward":
            return (-outcome.public_passed, -reward, index)
        return (index,)

    def select(self, outcomes: Sequence[Outcome], subset: Sequence[int]) -> float:
        return float(outcomes[min(subset, key=lambda i: self._key(outcomes, i))].passed)

    def expected(self, outcomes: Sequence[Outcome], size: int) -> float:
        # The candidate at position p of the order is picked iff it is in the subset and the p better ones are not.
        n = len(outcomes)
        ordered = sorted(range(n), key=lambda i: self._key(outcomes, i))
        total = math.comb(n, size)
        return sum(math.comb(n - 1 - position, size - 1) for position, index in enumerate(ordered)
                   if outcomes[index].passed) / total


@dataclass(frozen=True)
class _Random(Strategy):
    def select(self, outcomes: Sequence[Outcome], subset: Sequence[int]) -> float:
        return sum(outcomes[i].passed for i in subset) / len(subset)

    def expected(self, outcomes: Sequence[Outcome], size: int) -> float:
        return sum(o.passed for o in outcomes) / len(outcomes)


@dataclass(frozen=True)
class _Oracle(Strategy):
    def select(self, outcomes: Sequence[Outcome], subset: Sequence[int]) -> float:
        return float(any(outcomes[i].passed for i in subset))

    def expected(self, outcomes: Sequence[Outcome], size: int) -> float:
        return pass_at_k(len(outcomes), sum(o.passed for o in outcomes), size)


@dataclass(frozen=True)
class _Vote(Strategy):
    """The largest group of equivalent programs; ties by reward, then by input order.

    Precisely: the candidate maximising (has a valid program, its program's count in the set, its program's
    reward, -position). A program's reward is the highest reward any of its candidates got (they normally share
    one score). Candidates without a valid program never group (a shared empty answer is no consensus).
    """

    @staticmethod
    def _program_rewards(outcomes: Sequence[Outcome]) -> dict[str | None, float]:
        rewards: dict[str | None, float] = {}
        for outcome in outcomes:
            reward = outcome.reward if outcome.reward is not None else 0.0
            rewards[outcome.program] = max(reward, rewards.get(outcome.program, reward))
        return rewards

    def select(self, outcomes: Sequence[Outcome], subset: Sequence[int]) -> float:
        rewards = self._program_rewards(outcomes)
        counts: dict[str, int] = {}
        for i in subset:
            if outcomes[i].program is not None:
                counts[outcomes[i].program] = counts.get(outcomes[i].program, 0) + 1

        def key(i: int) -> tuple[float, ...]:
            outcome = outcomes[i]
            valid = outcome.program is not None
            return (valid, counts[outcome.program] if valid else 1,  # type: ignore[index]
                    rewards[outcome.program] if valid else 0.0, -i)

        return float(outcomes[max(subset, key=key)].passed)

    def expected(self, outcomes: Sequence[Outcome], size: int) -> float:
        n = len(outcomes)
        groups: dict[str, list[int]] = {}
        invalid: list[int] = []
        for i, outcome in enumerate(outcomes):
            if outcome.program is None:
                invalid.append(i)
            else:
                groups.setdefault(outcome.program, []).append(i)
        rewards = self._program_rewards(outcomes)
        favourable = 0
        for i, outcome in enumerate(outcomes):
            if not outcome.passed:
                continue
            if outcome.program is None:
                # Picked only when the set holds no valid program and no earlier invalid candidate.
                favourable += math.comb(sum(1 for j in invalid if j > i), size - 1)
                continue
            favourable += self._ways_picked(i, outcomes, groups, len(invalid), size, rewards)
        return favourable / math.comb(n, size)

    def _ways_picked(self, i: int, outcomes: Sequence[Outcome], groups: dict[str, list[int]], invalid: int,
                     size: int, rewards: dict[str | None, float]) -> int:
        """Subsets of `size` in which candidate i (valid) is the one picked."""
        own = groups[outcomes[i].program]  # type: ignore[index]
        later_own = sum(1 for j in own if j > i)  # members before i must be absent: i is its group's first
        reward = rewards[outcomes[i].program]
        ways = 0
        for count in range(1, later_own + 2):
            rest = size - count
            if rest < 0:
                break
            # Polynomial (coefficient list, degree <= rest): ways to fill `rest` places from the other groups
            # without any of them beating i, and from invalid candidates (which never beat a valid one).
            poly = [math.comb(invalid, j) for j in range(min(invalid, rest) + 1)]
            for program, members in groups.items():
                if program == outcomes[i].program:
                    continue
                other = rewards[program]
                size_h = len(members)
                allowed = [math.comb(size_h, j) if j < count or (j == count and other < reward) else 0
                           for j in range(min(size_h, count) + 1)]
                if other == reward and count <= size_h:
                    # Equal count and reward: h loses only if all its members in the set come after i.
                    allowed[count] = math.comb(sum(1 for j in members if j > i), count)
                poly = _multiply(poly, allowed, rest)
            if rest < len(poly):
                ways += math.comb(later_own, count - 1) * poly[rest]
        return ways


@dataclass(frozen=True)
class _WeightedVote(Strategy):
    """Consensus sets weighted: the set with the largest (members in the subset) x (the set's weight) wins, ties by
    the weight, then by input order; the pick is the set's first candidate in the subset. Candidates in no set
    (no valid program) are picked only when the subset has no candidate in a set.

    `by="reward"` (reward-weighted vote): the sets are programs (dedup keys) and a set's weight is its program's
    reward (the highest its candidates got: they normally share one score), so a set weighs the sum of its members'
    rewards. `by="generated"` (CodeT's dual agreement): the sets are candidates that pass exactly the same generated
    tests and a set's weight is how many tests that is, so a set weighs |candidates| x |tests they pass|.
    """

    by: str = "reward"

    def _set_of(self, outcome: Outcome) -> object | None:
        if outcome.program is None:
            return None
        return outcome.program if self.by == "reward" else outcome.generated

    def _weights(self, outcomes: Sequence[Outcome]) -> dict[object, float]:
        weights: dict[object, float] = {}
        for outcome in outcomes:
            key = self._set_of(outcome)
            if key is None:
                continue
            if self.by == "reward":
                reward = outcome.reward if outcome.reward is not None else 0.0
                weights[key] = max(reward, weights.get(key, reward))
            else:
                weights[key] = float(len(outcome.generated or ()))
        return weights

    def select(self, outcomes: Sequence[Outcome], subset: Sequence[int]) -> float:
        weights = self._weights(outcomes)
        counts: dict[object, int] = {}
        for i in subset:
            key = self._set_of(outcomes[i])
            if key is not None:
                counts[key] = counts.get(key, 0) + 1

        def rank(i: int) -> tuple[float, ...]:
            key = self._set_of(outcomes[i])
            if key is None:
                return (False, 0.0, 0.0, -i)
            return (True, counts[key] * weights[key], weights[key], -i)

        return float(outcomes[max(subset, key=rank)].passed)

    def expected(self, outcomes: Sequence[Outcome], size: int) -> float:
        n = len(outcomes)
        sets: dict[object, list[int]] = {}
        loose: list[int] = []
        for i, outcome in enumerate(outcomes):
            key = self._set_of(outcome)
            if key is None:
                loose.append(i)
            else:
                sets.setdefault(key, []).append(i)
        weights = self._weights(outcomes)
        # Sets whose weight differs from a set's own weight never tie with it on position: the ways to fill the rest
        # of a subset from them depend only on the set and its count, so they are worked out once per pair.
        untied: dict[tuple[object, int], list[int]] = {}
        favourable = 0
        for i, outcome in enumerate(outcomes):
            if not outcome.passed:
                continue
            key = self._set_of(outcome)
            if key is None:
                # Picked only when the subset holds no candidate in a set and no earlier loose candidate.
                favourable += math.comb(sum(1 for j in loose if j > i), size - 1)
                continue
            own, weight = sets[key], weights[key]
            later_own = sum(1 for j in own if j > i)  # members before i must be absent: i is its set's first
            for count in range(1, min(later_own + 1, size) + 1):
                rest = size - count
                cached = untied.get((key, count))
                if cached is None:
                    cached = [math.comb(len(loose), j) for j in range(min(len(loose), rest) + 1)]
                    for other, members in sets.items():
                        if other != key and weights[other] != weight:
                            cached = _multiply(cached, self._allowed(len(members), weights[other], count, weight,
                                                                     rest), rest)
                    untied[(key, count)] = cached
                poly = cached
                for other, members in sets.items():
                    if other != key and weights[other] == weight:
                        after = sum(1 for j in members if j > i)
                        poly = _multiply(poly, self._allowed(len(members), weight, count, weight, rest, after),
                                         rest)
                if rest < len(poly):
                    favourable += math.comb(later_own, count - 1) * poly[rest]
        return favourable / math.comb(n, size)

    @staticmethod
    def _allowed(members: int, other_weight: float, count: int, weight: float, rest: int,
                 after: int | None = None) -> list[int]:
        """Ways to take j = 0.. members of another set without it beating the chosen set (`count` members of
        `weight`); `after`: with equal weights, how many of its members come after the chosen candidate."""
        allowed = [1]
        for j in range(1, min(members, rest) + 1):
            mine, theirs = count * weight, j * other_weight
            if theirs < mine or (theirs == mine and other_weight < weight):
                allowed.append(math.comb(members, j))
            elif theirs == mine and other_weight == weight and after is not None:
                allowed.append(math.comb(after, j))  # a tie on everything: it loses only if all come after
            else:
                allowed.append(0)
        return allowed


def _multiply(left: list[int], right: list[int], degree: int) -> list[int]:
    product = [0] * min(len(left) + len(right) - 1, degree + 1)
    for a, x in enumerate(left):
        if x == 0:
            continue
        for b, y in enumerate(right):
            if a + b > degree:
                break
            product[a + b] += x * y
    return product


STRATEGIES: tuple[Strategy, ...] = (
    _OrderStrategy("reward-model", "the candidate the reward model ranks first", needs_reward=True, order="reward"),
    _OrderStrategy("first", "the first sample", order="first"),
    _Random("random", "a sample at random (expected pass@1)"),
    _Vote("vote", "the largest group of equivalent programs, ties by reward"),
    _WeightedVote("reward-weighted-vote", "the program whose candidates' rewards sum highest", needs_reward=True,
                  by="reward"),
    _WeightedVote("generated-tests", "CodeT: most candidates x generated tests they all pass",
                  needs_generated_tests=True, by="generated"),
    _OrderStrategy("public-tests", "most public tests passed, ties by input order", needs_public_tests=True,
                   order="public"),
    _OrderStrategy("public-tests+reward-model", "most public tests passed, ties by reward", needs_reward=True,
                   needs_public_tests=True, order="public+reward"),
    _Oracle("oracle", "some candidate passes (pass@N)"),
)


def strategy(name: str) -> Strategy:
    return next(s for s in STRATEGIES if s.name == name)


# ---------------------------------------------------------------------------------------------------------------
# Aggregates


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k), computed stably."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def wilson_interval(mean: float, count: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion measured on `count` problems."""
    if count == 0:
        return (0.0, 1.0)
    z2 = Z_95 * Z_95
    centre = (mean + z2 / (2 * count)) / (1 + z2 / count)
    half = Z_95 * math.sqrt(max(mean * (1 - mean), 0.0) / count + z2 / (4 * count * count)) / (1 + z2 / count)
    return (max(0.0, centre - half), min(1.0, centre + half))


def curve_sizes(smallest_n: int) -> list[int]:
    """N = 1, 2, 4, ... and the largest N every problem has."""
    sizes, size = [], 1
    while size < smallest_n:
        sizes.append(size)
        size *= 2
    sizes.append(smallest_n)
    return sizes


def pass_at_k_values(smallest_n: int) -> list[int]:
    return sorted({k for k in (1, 10, smallest_n) if k <= smallest_n})
