"""The reward-model metrics against brute-force versions of their published definitions: pairwise accuracy (a strict
win, a tie loses), and RM-Bench's easy / normal / hard as THU-KEG/RM-Bench's scripts/utils.py defines them (per
domain, safety sub-domains merged, overall = the mean over domains)."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codescaler_cli.rm.data import merge_domain
from codescaler_cli.rm.metrics import beats, pairwise_accuracy, rm_bench_accuracy, rm_bench_overall

# Scores drawn from a handful of values so that ties are frequent; None is a response that was not scored.
SCORE = st.one_of(st.none(), st.sampled_from([-2.0, -0.5, 0.0, 0.5, 1.0, 3.25]))
ROW = st.tuples(st.lists(SCORE, min_size=3, max_size=3), st.lists(SCORE, min_size=3, max_size=3))


def brute_force_rm_bench(rows: list[tuple[list, list]]) -> dict[str, float]:
    """RM-Bench's definition, comparison by comparison: response styles are 0 = concise, 1 = detailed plain,
    2 = detailed markdown. Hard: the chosen response is plainer than the rejected one (i < j); normal: the same
    style (i = j); easy: the chosen one is fancier (i > j). Each accuracy is the share of such comparisons won, a win
    being a strictly higher score (unscored responses count as minus infinity)."""
    def value(score: float | None) -> float:
        return float("-inf") if score is None else score

    outcomes: dict[str, list[bool]] = {"hard": [], "normal": [], "easy": []}
    for chosen, rejected in rows:
        for i, j in itertools.product(range(3), range(3)):
            kind = "hard" if i < j else "normal" if i == j else "easy"
            won = value(chosen[i]) > value(rejected[j]) and chosen[i] is not None
            outcomes[kind].append(won)
    return {kind: sum(wins) / len(wins) for kind, wins in outcomes.items()}


@settings(max_examples=300, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=12))
def test_rm_bench_easy_normal_hard_equal_the_brute_force_definition(rows: list[tuple[list, list]]) -> None:
    result = rm_bench_accuracy(rows)
    expected = brute_force_rm_bench(rows)
    assert result.hard == pytest.approx(expected["hard"])
    assert result.normal == pytest.approx(expected["normal"])
    assert result.easy == pytest.approx(expected["easy"])
    assert result.mean == pytest.approx(sum(expected.values()) / 3)
    assert result.rows == len(rows)


def test_rm_bench_regions_of_the_matrix() -> None:
    # One row where only the comparisons chosen[0] > rejected[2] (upper triangle: hard) and chosen[2] > rejected[0]
    # (lower triangle: easy) are won, everything else tied or lost.
    row = ([5.0, 0.0, 5.0], [9.0, 9.0, 1.0])
    result = rm_bench_accuracy([row])
    assert result.matrix == ((0.0, 0.0, 1.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    assert (result.hard, result.normal, result.easy) == (pytest.approx(1 / 3), pytest.approx(1 / 3), 0.0)
    # A tie is a loss everywhere.
    tied = rm_bench_accuracy([([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])])
    assert (tied.hard, tied.normal, tied.easy) == (0.0, 0.0, 0.0)


def test_overall_is_the_mean_over_domains_whatever_their_size() -> None:
    rng = random.Random(3)
    domains_rows = {name: [([rng.gauss(0, 1) for _ in range(3)], [rng.gauss(0, 1) for _ in range(3)])
                           for _ in range(size)] for name, size in (("chat", 5), ("code", 40), ("safety", 2))}
    domains = {name: rm_bench_accuracy(rows) for name, rows in domains_rows.items()}
    overall = rm_bench_overall(domains)
    for kind in ("easy", "normal", "hard"):
        expected = sum(brute_force_rm_bench(rows)[kind] for rows in domains_rows.values()) / 3
        assert getattr(overall, kind) == pytest.approx(expected)
    # RM-Bench's total_avg_acc: the mean of the domains' means.
    assert overall.mean == pytest.approx(sum(d.mean for d in domains.values()) / 3)
    assert overall.rows == 47 and overall.domains == 3


@pytest.mark.parametrize(("domain", "merged"), [("safety-refuse", "safety"), ("safety-response", "safety"),
                                                 ("chat", "chat"), ("code", "code"), ("math", "math"),
                                                 ("other", "other")])
def test_safety_sub_domains_merge(domain: str, merged: str) -> None:
    assert merge_domain(domain) == merged


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(SCORE, SCORE), min_size=1, max_size=20))
def test_pairwise_accuracy_is_the_share_of_strict_wins(pairs: list[tuple]) -> None:
    wins = sum(1 for chosen, rejected in pairs
               if chosen is not None and (rejected is None or chosen > rejected))
    assert pairwise_accuracy(pairs) == pytest.approx(wins / len(pairs))


def test_beats_is_strict_and_an_unscored_response_loses() -> None:
    assert beats(1.0, 0.5) and not beats(0.5, 1.0) and not beats(1.0, 1.0)
    assert beats(-100.0, None) and not beats(None, -100.0) and not beats(None, None)
