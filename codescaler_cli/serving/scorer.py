"""The scorer a server owns: the same backends `rank` uses, plus scoring of pre-tokenized ids for `/classify`.

`rank --reward-url` sends token ids it rendered and tokenized itself; scoring them needs the backend's model
without its own tokenization step. The transformers backend gets that through a subclass (its batching and
out-of-memory handling are reused as they are); vLLM takes token ids natively.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..scoring.base import ScoreResult
from ..scoring.config import ScorerConfig
from ..scoring.transformers_backend import TransformersScorer, _Item


class ServingTransformersScorer(TransformersScorer):
    """A TransformersScorer that can also score token ids it did not tokenize itself."""

    def score_ids(self, ids_list: Sequence[list[int]]) -> list[ScoreResult]:
        results: list[ScoreResult | None] = []
        items = []
        for position, ids in enumerate(ids_list):
            truncated = len(ids) > self.max_length
            ids = list(ids[: self.max_length])
            results.append(ScoreResult(score=None, truncated=truncated, tokens=len(ids)))
            items.append(_Item(position, ids))
        runnable = [item for item in items if item.ids]
        for item in items:
            if not item.ids:
                result = results[item.position]
                assert result is not None
                result.error = "empty input: nothing to score"
        self._run_all(runnable, None, None, results, None)
        self.stats.texts += len(runnable)
        return [result for result in results if result is not None]


def open_serving_scorer(config: ScorerConfig, *, reuse_prefix: bool = True) -> Any:
    """Load the configured backend for serving (transformers or in-process vLLM).

    `reuse_prefix=False` runs every text whole: texts of different problems then share forward passes, which
    pays when many small requests about different problems are batched together.
    """
    if config.kind == "transformers":
        return ServingTransformersScorer(config.model, revision=config.revision, device=config.device,
                                         dtype=config.dtype, max_length=config.max_length,
                                         max_batch_tokens=config.max_batch_tokens, reuse_prefix=reuse_prefix)
    from ..scoring.config import open_scorer

    return open_scorer(config)


def tokenizer_of(scorer: Any) -> Any:
    return scorer.texts.tokenizer


def score_token_ids(scorer: Any, ids_list: Sequence[list[int]]) -> list[ScoreResult]:
    """Raw logits of pre-tokenized texts (cut at the scorer's max length and flagged truncated)."""
    if hasattr(scorer, "score_ids"):
        return scorer.score_ids(ids_list)
    llm = getattr(scorer, "llm", None)
    if llm is None:
        raise TypeError(f"{type(scorer).__name__} cannot score token ids")
    max_length = scorer.texts.max_length
    results = [ScoreResult(score=None, truncated=len(ids) > max_length, tokens=min(len(ids), max_length))
               for ids in ids_list]
    runnable = [i for i, ids in enumerate(ids_list) if ids]
    for i, ids in enumerate(ids_list):
        if not ids:
            results[i].error = "empty input: nothing to score"
    if runnable:
        prompts = [{"prompt_token_ids": list(ids_list[i][:max_length])} for i in runnable]
        outputs = llm.classify(prompts, pooling_params=scorer._params, use_tqdm=False)
        for i, output in zip(runnable, outputs):
            error = getattr(output, "error", None)
            if error is not None:
                results[i].error = str(getattr(error, "message", error))
            else:
                results[i].score = float(output.outputs.probs[0])
    scorer.stats.texts += len(runnable)
    scorer.stats.tokens += sum(r.tokens for r in results)
    return results
