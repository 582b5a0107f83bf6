"""Selection strategies: each strategy's exact accuracy-vs-N equals brute force over every subset, and pass@k is
the unbiased estimator of Chen et al. (2021)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from codescaler_cli.evaluation.strategies import (
    STRATEGIES,
    Outcome,
    curve_sizes,
    pass_at_k,
    strategy,
    wilson_interval,
)


def brute_force(name: str, outcomes: list[Outcome], size: int) -> float:
    subsets = list(itertools.combinations(range(len(outcomes)), size))
    return sum(strategy(name).select(outcomes, subset) for subset in subsets) / len(subsets)


def random_problem(rng: random.Random, *, with_reward: bool) -> list[Outcome]:
    n = rng.randint(1, 9)
    programs = ["a", "b", "c", None]
    # Usually one score per program (scores are shared by duplicates), sometimes not (hand-edited records).
    program_reward = {p: rng.choice([0.5, 1.0, 2.0]) for p in programs}
    outcomes = []
    for _ in range(n):
        program = rng.choice(programs)
        reward = None
        if with_reward:
            reward = 0.0 if program is None else (program_reward[program] if rng.random() < 0.8
                                                  else rng.choice([0.5, 1.0, 2.0]))
        outcomes.append(Outcome(passed=rng.random() < 0.5, public_passed=rng.randint(0, 2), reward=reward,
                                program=program))
    return outcomes


@pytest.mark.parametrize("name", [s.name for s in STRATEGIES])
def test_exact_expectation_equals_brute_force_over_subsets(name: str) -> None:
    rng = random.Random(1234)
    for trial in range(150):
        outcomes = random_problem(rng, with_reward=trial % 3 != 0)
        for size in range(1, len(outcomes) + 1):
            assert strategy(name).expected(outcomes, size) == pytest.approx(brute_force(name, outcomes, size),
                                                                            abs=1e-12), (outcomes, size)


def test_strategies_pick_what_they_promise() -> None:
    outcomes = [
        Outcome(passed=False, public_passed=1, reward=3.0, program="x"),  # reward model's favourite
        Outcome(passed=True, public_passed=2, reward=1.0, program="y"),  # passes most public tests
        Outcome(passed=True, public_passed=2, reward=2.0, program="y"),  # same program: a vote of two
        Outcome(passed=False, public_passed=0, reward=0.0, program=None),
    ]
    everything = range(4)
    assert strategy("reward-model").select(outcomes, everything) == 0.0
    assert strategy("first").select(outcomes, everything) == 0.0
    assert strategy("random").select(outcomes, everything) == 0.5
    assert strategy("vote").select(outcomes, everything) == 1.0
    assert strategy("public-tests").select(outcomes, everything) == 1.0
    assert strategy("oracle").select(outcomes, everything) == 1.0
    # public-tests+reward-model breaks the 2-2 public tie by reward: candidate 2.
    assert strategy("public-tests+reward-model").select(outcomes, [0, 1, 2]) == 1.0


def test_vote_ignores_a_consensus_of_invalid_answers() -> None:
    outcomes = [Outcome(passed=False, program=None)] * 3 + [Outcome(passed=True, program="a")]
    assert strategy("vote").select(outcomes, range(4)) == 1.0


def test_pass_at_k_matches_the_combinatorial_definition() -> None:
    for n in range(1, 12):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_oracle_at_n_is_pass_at_n_and_random_is_pass_at_1() -> None:
    outcomes = [Outcome(passed=p) for p in (True, False, False, True, False)]
    assert strategy("oracle").expected(outcomes, 3) == pytest.approx(pass_at_k(5, 2, 3))
    assert strategy("random").expected(outcomes, 3) == pytest.approx(pass_at_k(5, 2, 1))


def test_curve_sizes_and_interval() -> None:
    assert curve_sizes(16) == [1, 2, 4, 8, 16]
    assert curve_sizes(10) == [1, 2, 4, 8, 10]
    assert curve_sizes(1) == [1]
    low, high = wilson_interval(0.5, 100)
    assert 0.40 < low < 0.41 and 0.59 < high < 0.60
    assert wilson_interval(1.0, 164)[1] == pytest.approx(1.0) and wilson_interval(1.0, 164)[0] > 0.97
