"""The transformers scorer against an independent implementation of the model card's recipe, on a real tiny model.

A score must equal the card recipe applied to that one text alone (to 1e-4 in float32), whatever else shares
its batch, whichever padding side the tokenizer has, and whether or not the problem's prefix cache is reused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import torch

from helpers.scoring import REQUESTS, SUBARRAY_CORRECT, SUBARRAY_QUESTION, card_recipe

from codescaler_cli.backends.loading import is_out_of_memory
from codescaler_cli.extraction import extract_all
from codescaler_cli.records import Candidate, group_candidates
from codescaler_cli.scoring import ScoreRequest, reward_conversation
from codescaler_cli.scoring import transformers_backend as transformers_scorer
from codescaler_cli.scoring.transformers_backend import TransformersScorer, _Item

@pytest.fixture(scope="module")
def reference(reward_dir: Path) -> list[float]:
    """Each request scored alone by the card recipe."""
    return [card_recipe(reward_dir, [(r.question, r.code)])[0] for r in REQUESTS]


@pytest.fixture(scope="module")
def scorer(reward_dir: Path) -> TransformersScorer:
    return TransformersScorer(str(reward_dir), device="cpu")


def test_card_recipe_is_batch_and_padding_independent(reward_dir: Path, reference: list[float]) -> None:
    # The premise of the contract, checked on the tiny model: right and left padding give the same logits.
    pairs = [(r.question, r.code) for r in REQUESTS]
    for side in ("right", "left"):
        batched = card_recipe(reward_dir, pairs, padding_side=side)
        assert batched == pytest.approx(reference, abs=1e-4)


def test_scores_have_real_spread(reference: list[float]) -> None:
    # Otherwise the exactness tests below could pass with a model that scores everything alike.
    assert max(reference) - min(reference) > 0.5


@pytest.mark.parametrize("reuse_prefix", [True, False])
@pytest.mark.parametrize("max_batch_tokens", [1, 64, 100000])
def test_scores_equal_card_recipe_alone(reward_dir: Path, reference: list[float], reuse_prefix: bool,
                                        max_batch_tokens: int) -> None:
    scorer = TransformersScorer(str(reward_dir), device="cpu", max_batch_tokens=max_batch_tokens,
                                reuse_prefix=reuse_prefix)
    results = scorer.score(REQUESTS)
    assert [r.score for r in results] == pytest.approx(reference, abs=1e-4)
    assert not any(r.truncated for r in results)
    if reuse_prefix:
        assert scorer.stats.prefix_tokens > 0
    else:
        assert scorer.stats.prefix_tokens == 0


def test_a_left_padding_tokenizer_does_not_change_scores(reward_dir: Path, reference: list[float], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # A copy of the reward model whose saved tokenizer pads on the left, as some reward models ship. A scorer that
    # let the tokenizer pad a batch and then read the logit at `length - 1` would read padding here.
    left = tmp_path / "left-padding-reward"
    shutil.copytree(reward_dir, left)
    config_path = left / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["padding_side"] = "left"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.setattr(transformers_scorer, "MAX_PADDING", 1.0)  # let texts of any length share a batch
    scorer = TransformersScorer(str(left), device="cpu", max_batch_tokens=100000)
    assert scorer.tokenizer.padding_side == "left"  # the premise: the tokenizer really pads on the left
    results = scorer.score(REQUESTS)
    assert scorer.stats.batches < len(REQUESTS)  # texts of different lengths really shared batches
    assert [r.score for r in results] == pytest.approx(reference, abs=1e-4)
    # ... and the card recipe itself, left-padded, agrees: the contract holds for such a model.
    pairs = [(r.question, r.code) for r in REQUESTS]
    assert card_recipe(left, pairs, padding_side="left") == pytest.approx(reference, abs=1e-4)


def test_prefix_is_reused_only_where_token_ids_match(scorer: TransformersScorer) -> None:
    prefix = scorer.texts.prefix_ids(SUBARRAY_QUESTION)
    assert prefix is not None
    merged, _ = scorer.texts.tokenize(SUBARRAY_QUESTION, "\n    x = 1\ny = 2")
    clean, _ = scorer.texts.tokenize(SUBARRAY_QUESTION, SUBARRAY_CORRECT)
    assert clean[: len(prefix)] == prefix
    # This is the case the fallback exists for; if the tokenizer ever stops merging here the test says so.
    assert merged[: len(prefix)] != prefix


def test_scores_do_not_depend_on_batch_company(scorer: TransformersScorer, reference: list[float]) -> None:
    alone = scorer.score([REQUESTS[0]])[0].score
    with_others = scorer.score(list(reversed(REQUESTS)))[-1].score
    assert alone == pytest.approx(reference[0], abs=1e-4)
    assert with_others == pytest.approx(reference[0], abs=1e-4)


def test_truncation_matches_card_recipe_at_max_length(reward_dir: Path) -> None:
    long_code = "def f(x):\n" + "".join(f"    x = x + {i}\n" for i in range(120)) + "    return x"
    request = ScoreRequest(SUBARRAY_QUESTION, long_code)
    scorer = TransformersScorer(str(reward_dir), device="cpu", max_length=128)
    result = scorer.score([request, REQUESTS[2]])
    assert result[0].truncated and not result[1].truncated
    assert result[0].tokens == 128
    expected = card_recipe(reward_dir, [(request.question, request.code)], max_length=128)[0]
    assert result[0].score == pytest.approx(expected, abs=1e-4)


def test_cuda_out_of_memory_halves_the_budget_and_keeps_every_score(reward_dir: Path, reference: list[float],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Fault injection around a real model: batches of more than two rows "run out of memory".
    monkeypatch.setattr(transformers_scorer, "MAX_PADDING", 1.0)  # let rows of any length share a batch
    class Cramped(TransformersScorer):
        attempts: list[int] = []

        def _forward(self, batch, prefix, cache):  # type: ignore[no-untyped-def]
            self.attempts.append(len(batch))
            if len(batch) > 2:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return super()._forward(batch, prefix, cache)

    scorer = Cramped(str(reward_dir), device="cpu", max_batch_tokens=100000)
    results = scorer.score(REQUESTS)
    assert [r.score for r in results] == pytest.approx(reference, abs=1e-4)
    assert any(n > 2 for n in scorer.attempts) and all(r.error is None for r in results)


def test_single_text_out_of_memory_is_a_per_item_error(reward_dir: Path) -> None:
    class Hopeless(TransformersScorer):
        def _forward(self, batch, prefix, cache):  # type: ignore[no-untyped-def]
            if any(len(item.ids) > 60 for item in batch):
                raise torch.OutOfMemoryError("CUDA out of memory")
            return super()._forward(batch, prefix, cache)

    scorer = Hopeless(str(reward_dir), device="cpu", reuse_prefix=False)
    results = scorer.score([REQUESTS[0], REQUESTS[6]])
    assert results[0].score is None and "out of memory" in (results[0].error or "")
    assert results[1].score is not None and results[1].error is None


def test_out_of_memory_on_a_problem_prefix_falls_back_to_full_texts(reward_dir: Path,
                                                                      reference: list[float]) -> None:
    class NoRoomForPrefixes(TransformersScorer):
        prefixes_tried = 0

        def _encode_prefix(self, prefix):  # type: ignore[no-untyped-def]
            self.prefixes_tried += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")

    scorer = NoRoomForPrefixes(str(reward_dir), device="cpu")
    results = scorer.score(REQUESTS)
    assert scorer.prefixes_tried > 0
    assert [r.score for r in results] == pytest.approx(reference, abs=1e-4)
    assert all(r.error is None for r in results) and scorer.stats.prefix_tokens == 0


def test_batches_stay_within_budget_and_padding_bound(scorer: TransformersScorer) -> None:
    lengths = [900, 880, 870, 400, 390, 385, 380, 50, 49]
    ordered = [_Item(position, [0] * length) for position, length in enumerate(lengths)]
    batches, start = [], 0
    while start < len(ordered):
        batch = scorer._take_batch(ordered, start, budget=2000)
        batches.append([item.run_length for item in batch])
        start += len(batch)
    assert batches == [[900, 880], [870], [400, 390, 385, 380], [50, 49]]
    for batch in batches:
        assert len(batch) * batch[0] <= 2000 or len(batch) == 1
        assert sum(batch) >= (1 - transformers_scorer.MAX_PADDING) * len(batch) * batch[0]


def test_out_of_memory_detection() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_conversation_is_question_then_code_only() -> None:
    assert reward_conversation("Q", "code") == [{"role": "user", "content": "Q"},
                                                 {"role": "assistant", "content": "code"}]


def two_programs_each(problems: int) -> list[list[Candidate]]:
    """`problems` problems of two distinct programs each, extracted and grouped."""
    candidates = [Candidate(record={}, source="t", line=i, index=i, question=f"Problem {p}: add one.", response=None,
                            given_code=f"def f(x):\n    return x + {v}", group_key=("id", p))
                  for i, (p, v) in enumerate((p, v) for p in range(problems) for v in range(2))]
    return group_candidates(extract_all(candidates))


def test_resumed_scoring_runs_done_problems_in_their_batches_but_keeps_their_restored_scores(
        scorer: TransformersScorer) -> None:
    from codescaler_cli.pipeline import score_groups

    uninterrupted = list(score_groups(two_programs_each(3), scorer))
    resumed = two_programs_each(3)
    for candidate in resumed[0]:
        candidate.score = 123.0  # restored from an earlier run's output: a re-score must not overwrite it
    counted: list[int] = []
    yielded = list(score_groups(resumed, scorer, progress=counted.append, skip_groups=1))
    assert [[c.score for c in g] for g in yielded] == [[c.score for c in g] for g in uninterrupted[1:]]
    assert [c.score for c in resumed[0]] == [123.0, 123.0]
    assert sum(counted) == 4  # the new problems' programs only


def test_resumed_scoring_scores_every_chunk_after_the_one_it_resumed_in(scorer: TransformersScorer) -> None:
    """Chunks of 4 programs hold two problems each; resuming after 3 problems restarts in the middle of the second
    chunk, and every problem after it is scored in full (the third chunk's too)."""
    from codescaler_cli.pipeline import score_groups

    uninterrupted = list(score_groups(two_programs_each(6), scorer, chunk_requests=4))
    resumed = list(score_groups(two_programs_each(6), scorer, chunk_requests=4, skip_groups=3))
    assert [[c.score for c in g] for g in resumed] == [[c.score for c in g] for g in uninterrupted[3:]]
    assert all(c.score is not None for g in resumed for c in g)
