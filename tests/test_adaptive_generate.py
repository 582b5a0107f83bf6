"""Adaptive best-of-N with the real tiny coder on vLLM's in-process engine: an adaptive run draws exactly a prefix
of the samples a run of all N draws with the same seed, and each stopping rule stops a problem at the wave where
(worked out here from the full run's samples, independently of the library) it must.

One engine for the module (in-process engines share global state: the CLI's own runs are in
test_adaptive_cli.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codescaler_cli import ScorerConfig, best_of_n
from codescaler_cli.generation import SamplingSettings
from codescaler_cli.generation.vllm_engine import VllmGenerator
from codescaler_cli.pipeline import BestOfNRun, iter_best_of_n
from codescaler_cli.records import Candidate
from codescaler_cli.stopping import StoppingRule

pytestmark = pytest.mark.vllm

N, WAVE, SEED = 8, 2, 11
SETTINGS = SamplingSettings(n=N, temperature=0.6, top_p=0.95, max_tokens=48)
QUESTIONS = ["Write add(a, b)", "Add two integers a and b.", "Return the sum of a and b."]


@pytest.fixture(scope="module")
def generator(coder_dir: Path):  # type: ignore[no-untyped-def]
    engine = VllmGenerator(str(coder_dir), max_model_len=512)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def scorer(reward_dir: Path) -> ScorerConfig:
    return ScorerConfig(model=str(reward_dir), device="cpu")


@pytest.fixture(scope="module")
def full(generator: VllmGenerator, scorer: ScorerConfig) -> list[list[Candidate]]:
    """Every problem's N samples in sample order, scored: the run adaptive runs must draw a prefix of."""
    run = best_of_n(QUESTIONS, generator, scorer, SETTINGS, seed=SEED)
    return [sorted(group, key=lambda c: c.record["sample"]) for group in run.groups]


def adaptive(generator: VllmGenerator, scorer: ScorerConfig, rule: StoppingRule) -> tuple[BestOfNRun,
                                                                                           list[list[Candidate]]]:
    run = BestOfNRun()
    groups = list(iter_best_of_n(QUESTIONS, generator, scorer, SETTINGS, seed=SEED, run=run, stopping=rule))
    return run, [sorted(group, key=lambda c: c.record["sample"]) for group in groups]


def assert_prefix(groups: list[list[Candidate]], full: list[list[Candidate]]) -> None:
    for group, whole in zip(groups, full, strict=True):
        assert [(c.record["sample"], c.record["seed"], c.response) for c in group] == \
            [(c.record["sample"], c.record["seed"], c.response) for c in whole[:len(group)]]
        for mine, theirs in zip(group, whole):
            assert (mine.score is None) == (theirs.score is None)
            if mine.score is not None:
                assert mine.score == pytest.approx(theirs.score, abs=1e-4)
        assert [c.rank for c in sorted(group, key=lambda c: c.rank)] == list(range(1, len(group) + 1))


# What each rule sees after a prefix, written out here from the rule's words, not taken from the library.

def best_score(prefix: list[Candidate]) -> float | None:
    scores = [c.score for c in prefix if c.valid and c.score is not None]
    return max(scores) if scores else None


def margin(prefix: list[Candidate]) -> float | None:
    by_program: dict[str, float] = {}
    for c in prefix:
        if c.valid and c.score is not None:
            by_program.setdefault(c.dedup_key, c.score)
    scores = sorted(by_program.values(), reverse=True)
    return scores[0] - scores[1] if len(scores) >= 2 else None


def agreement(prefix: list[Candidate]) -> int:
    counts: dict[str, int] = {}
    for c in prefix:
        if c.valid:
            counts[c.dedup_key] = counts.get(c.dedup_key, 0) + 1
    return max(counts.values(), default=0)


def first_stop(whole: list[Candidate], holds) -> int:  # type: ignore[no-untyped-def]
    """Samples drawn when the rule first holds after a wave (N when it never does)."""
    return next((k for k in range(WAVE, N + 1, WAVE) if holds(whole[:k])), N)


def test_a_rule_that_never_holds_draws_the_full_run_wave_by_wave(generator: VllmGenerator, scorer: ScorerConfig,
                                                                 full: list[list[Candidate]]) -> None:
    run, groups = adaptive(generator, scorer, StoppingRule(wave=3, score=1e9))
    assert_prefix(groups, full)
    assert [len(g) for g in groups] == [N] * len(QUESTIONS)
    assert all(c.record["samples_drawn"] == N and c.record["stopped_by"] is None for g in groups for c in g)
    assert run.adaptive is not None and run.adaptive.drawn == run.adaptive.budget == N * len(QUESTIONS)
    assert run.generation is not None and run.generation.requests == 3 * len(QUESTIONS)  # waves of 3, 3 and 2


def test_score_rule_stops_where_the_best_score_first_reaches_the_threshold(
        generator: VllmGenerator, scorer: ScorerConfig, full: list[list[Candidate]]) -> None:
    # The threshold is what problem 0's best is after its second wave: it must stop there, or earlier if its
    # first wave already reached it; the others stop wherever their own best first reaches it.
    threshold = best_score(full[0][:2 * WAVE])
    assert threshold is not None
    expected = [first_stop(whole, lambda p: (best_score(p) or float("-inf")) >= threshold) for whole in full]
    assert expected[0] <= 2 * WAVE
    run, groups = adaptive(generator, scorer, StoppingRule(wave=WAVE, score=threshold))
    assert [len(g) for g in groups] == expected
    assert_prefix(groups, full)
    for group, drawn in zip(groups, expected):
        assert {(c.record["samples_drawn"], c.record["stopped_by"]) for c in group} == \
            {(drawn, "score" if drawn < N or (best_score(group) or float("-inf")) >= threshold else None)}
    assert run.adaptive is not None and run.adaptive.drawn == sum(expected)
    assert run.adaptive.stopped is not None and run.adaptive.stopped.get("score") == \
        sum((best_score(g) or float("-inf")) >= threshold for g in groups)


def test_margin_rule_stops_once_the_best_program_leads_the_next_by_the_margin(
        generator: VllmGenerator, scorer: ScorerConfig, full: list[list[Candidate]]) -> None:
    # The smallest margin any problem shows after some wave: at least that problem must stop at that wave.
    margins = [(m, k, i) for i, whole in enumerate(full) for k in range(WAVE, N + 1, WAVE)
               if (m := margin(whole[:k])) is not None]
    assert margins, "the tiny coder should give two distinct valid programs within N samples"
    threshold = min(m for m, _, _ in margins)
    expected = [first_stop(whole, lambda p: (margin(p) is not None and margin(p) >= threshold)) for whole in full]
    _, groups = adaptive(generator, scorer, StoppingRule(wave=WAVE, margin=threshold))
    assert [len(g) for g in groups] == expected and min(expected) < N
    assert_prefix(groups, full)
    for group in groups:
        holds = margin(group) is not None and margin(group) >= threshold
        assert all(c.record["stopped_by"] == ("margin" if holds else None) for c in group)


def test_agreement_rule_stops_once_k_samples_are_the_same_program(
        generator: VllmGenerator, scorer: ScorerConfig, full: list[list[Candidate]]) -> None:
    expected = [first_stop(whole, lambda p: agreement(p) >= 2) for whole in full]
    assert min(expected) < N, "the tiny coder repeats itself within N samples"
    _, groups = adaptive(generator, scorer, StoppingRule(wave=WAVE, agreement=2))
    assert [len(g) for g in groups] == expected
    assert_prefix(groups, full)
    for group in groups:
        assert all(c.record["stopped_by"] == ("agreement" if agreement(group) >= 2 else None) for c in group)
