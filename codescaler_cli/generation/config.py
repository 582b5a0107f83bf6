"""Choosing a generator backend from settings: an in-process vLLM engine, or OpenAI-compatible servers (`urls`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError
from .base import DEFAULT_GENERATOR_MODEL, Generator

ENDPOINTS = ("chat", "completions")


@dataclass
class GeneratorConfig:
    """Everything needed to open a generator. `urls` set means servers; otherwise an in-process vLLM engine.

    `model` None means the default generator in-process, and whatever the servers serve with `urls`.
    """

    model: str | None = None
    urls: list[str] = field(default_factory=list)
    endpoint: str = "chat"
    tokenizer: str | None = None
    revision: str | None = None
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    # None: vLLM's engine picks (on CPU, a share sized to the machine rather than vLLM's 0.9 of the node).
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    api_key: str | None = None
    concurrency: int = 8
    timeout: float = 600.0
    max_retries: int = 4

    def validate(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise UsageError(f"unknown endpoint '{self.endpoint}'", f"use one of: {', '.join(ENDPOINTS)}")


def open_generator(config: GeneratorConfig, *, show_progress: bool = False) -> Generator:
    """Start the engine or connect to the servers (heavy imports happen here)."""
    config.validate()
    if config.urls:
        from .openai_server import OpenAIGenerator

        return OpenAIGenerator(config.urls, config.model, endpoint=config.endpoint, tokenizer=config.tokenizer,
                               api_key=config.api_key, concurrency=config.concurrency, timeout=config.timeout,
                               max_retries=config.max_retries, revision=config.revision)
    from .vllm_engine import VllmGenerator

    return VllmGenerator(config.model or DEFAULT_GENERATOR_MODEL, revision=config.revision, dtype=config.dtype,
                         tensor_parallel_size=config.tensor_parallel_size,
                         gpu_memory_utilization=config.gpu_memory_utilization, max_model_len=config.max_model_len,
                         show_progress=show_progress)
