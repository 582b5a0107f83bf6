"""Choosing a scorer backend from settings: transformers (default), in-process vLLM, or remote vLLM servers."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError
from .base import DEFAULT_MAX_LENGTH, DEFAULT_REWARD_MODEL, Scorer

SCORER_KINDS = ("transformers", "vllm")


@dataclass
class ScorerConfig:
    """Everything needed to open a reward-model scorer. `urls` set means remote servers, whatever `kind` says."""

    model: str = DEFAULT_REWARD_MODEL
    kind: str = "transformers"
    revision: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    max_length: int = DEFAULT_MAX_LENGTH
    max_batch_tokens: int = 16384
    urls: list[str] = field(default_factory=list)
    api_key: str | None = None
    concurrency: int = 4
    timeout: float = 600.0
    max_retries: int = 4
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9

    @property
    def description(self) -> str:
        if self.urls:
            return f"remote ({', '.join(self.urls)})"
        return self.kind


def open_scorer(config: ScorerConfig) -> Scorer:
    """Load the configured backend (heavy imports happen here, not at module import)."""
    if config.urls:
        from .remote import RemoteScorer

        return RemoteScorer(config.urls, config.model, revision=config.revision, max_length=config.max_length,
                            api_key=config.api_key, concurrency=config.concurrency, timeout=config.timeout,
                            max_retries=config.max_retries)
    if config.kind == "vllm":
        from .vllm_backend import VllmScorer

        return VllmScorer(config.model, revision=config.revision, dtype=config.dtype, max_length=config.max_length,
                          tensor_parallel_size=config.tensor_parallel_size,
                          gpu_memory_utilization=config.gpu_memory_utilization)
    if config.kind == "transformers":
        from .transformers_backend import TransformersScorer

        return TransformersScorer(config.model, revision=config.revision, device=config.device, dtype=config.dtype,
                                  max_length=config.max_length, max_batch_tokens=config.max_batch_tokens)
    raise UsageError(f"unknown scorer '{config.kind}'", f"use one of: {', '.join(SCORER_KINDS)}")
