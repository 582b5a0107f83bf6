"""A generator's settings in one object: which backend (an in-process vLLM engine, or OpenAI-compatible servers
with `urls`) and what it is asked for (samples per problem, sampling, seed, system message, prompt template)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from .base import DEFAULT_GENERATOR_MODEL, Generator, SamplingSettings

ENDPOINTS = ("chat", "completions")


@dataclass
class GeneratorConfig:
    """Everything needed to open a generator and to say what it samples. `urls` set means servers; otherwise an
    in-process vLLM engine. `model` None means the default generator in-process, and whatever the servers serve
    with `urls`. `seed` None: a random base seed, drawn by the run (and recorded in its output). `template`: the
    text of a prompt template with {question} (and optionally {starter_code}); None: LiveCodeBench's prompt.
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
    n: int = 16
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 4096
    seed: int | None = None
    system: str | None = None
    template: str | None = None

    @property
    def sampling(self) -> SamplingSettings:
        return SamplingSettings(n=self.n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens)

    def fingerprint(self) -> dict[str, Any]:
        """What the samples depend on, for the settings check of a resumed run: the model and how it runs, the
        sampling settings, the base seed, the system message and the prompt template (by its hash)."""
        template = self.template
        return {
            "generator_model": self.model or (None if self.urls else DEFAULT_GENERATOR_MODEL),
            "generator_revision": self.revision, "generator_dtype": self.dtype,
            "generator_max_model_len": self.max_model_len, "generator_endpoint": self.endpoint if self.urls else None,
            "generator_n": self.n, "generator_temperature": self.temperature, "generator_top_p": self.top_p,
            "generator_max_tokens": self.max_tokens, "generator_seed": self.seed, "generator_system": self.system,
            "generator_template": hashlib.sha256(template.encode("utf-8", "surrogatepass")).hexdigest()[:16]
            if template is not None else None,
        }

    def validate(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise UsageError(f"unknown endpoint '{self.endpoint}'", f"use one of: {', '.join(ENDPOINTS)}")


def open_generator(config: GeneratorConfig) -> Generator:
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
                         gpu_memory_utilization=config.gpu_memory_utilization, max_model_len=config.max_model_len)
