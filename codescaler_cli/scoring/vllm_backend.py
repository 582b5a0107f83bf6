"""Reward scoring with vLLM's pooling runner, in-process.

The texts are rendered and tokenized exactly as the transformers scorer does (same token ids, same truncation)
and handed to vLLM as token ids; vLLM returns the raw logit when `use_activation=False` (without it, a sigmoid
that saturates into false ties). Prefix caching shares the problem statement's KV cache across candidates.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..backends.loading import load_error
from ..backends.vllm import create_engine, import_vllm, shutdown_engine
from .base import DEFAULT_MAX_LENGTH, ProgressCallback, ScoreRequest, ScoreResult, ScoringStats
from .texts import RewardTexts


class VllmScorer:
    """Scores (question, code) pairs with `vllm.LLM(runner="pooling")` and `classify(use_activation=False)`."""

    def __init__(self, model: str, *, revision: str | None = None, dtype: str = "auto",
                 max_length: int = DEFAULT_MAX_LENGTH, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float | None = None, enforce_eager: bool | None = None,
                 max_num_batched_tokens: int | None = None) -> None:
        from transformers import AutoTokenizer

        vllm = import_vllm()

        self.stats = ScoringStats()
        self.model_name = model
        try:
            tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
        except Exception as exc:
            raise load_error("reward model", model, exc) from exc
        self.texts = RewardTexts(tokenizer, max_length)
        options: dict[str, Any] = dict(runner="pooling", max_model_len=max_length, enable_prefix_caching=True)
        if max_num_batched_tokens:
            options["max_num_batched_tokens"] = max_num_batched_tokens
        self.llm = create_engine("reward model", model, revision=revision, dtype=dtype,
                                 tensor_parallel_size=tensor_parallel_size,
                                 gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager, **options)
        self._params = vllm.PoolingParams(use_activation=False)

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressCallback | None = None) -> list[ScoreResult]:
        started = time.perf_counter()
        results: list[ScoreResult] = []
        prompts = []
        for request in requests:
            ids, truncated = self.texts.tokenize(request.question, request.code)
            results.append(ScoreResult(score=None, truncated=truncated, tokens=len(ids)))
            prompts.append({"prompt_token_ids": ids})
        if prompts:
            outputs = self.llm.classify(prompts, pooling_params=self._params, use_tqdm=False)
            for result, output in zip(results, outputs):
                error = getattr(output, "error", None)
                if error is not None:
                    result.error = str(getattr(error, "message", error))
                    continue
                result.score = float(output.outputs.probs[0])
                cached = int(getattr(output, "num_cached_tokens", 0) or 0)
                self.stats.tokens += result.tokens - cached
                self.stats.padded_tokens += result.tokens - cached
                self.stats.prefix_tokens += cached
            if progress is not None:
                progress(len(prompts))
        self.stats.texts += len(requests)
        self.stats.batches += 1
        self.stats.seconds += time.perf_counter() - started
        return results

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        shutdown_engine(llm)
