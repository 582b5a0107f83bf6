"""A generator's settings in one object: which backend (an in-process vLLM engine, or OpenAI-compatible servers
with `urls`) and what it is asked for (samples per problem, sampling, seed, system message, prompt template)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..stopping import DEFAULT_WAVE, StoppingRule
from .base import DEFAULT_GENERATOR_MODEL, Generator, SamplingSettings

ENDPOINTS = ("chat", "completions")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class GeneratorConfig:
    """Everything needed to open a generator and to say what it samples. `urls` set means servers; otherwise an
    in-process vLLM engine. Each field's `metadata["help"]` says what it does (the CLI's option help is that text).
    """

    model: str | None = field(default=None, metadata=_help(
        f"Generator: hub id or local directory (default {DEFAULT_GENERATOR_MODEL}); with servers, the served name "
        "(default: theirs)."))
    urls: list[str] = field(default_factory=list, metadata=_help(
        "Sample from OpenAI-compatible servers (http://host:8000/v1) instead of in-process vLLM; repeat for "
        "several."))
    endpoint: str = field(default="chat", metadata=_help(
        "Server endpoint: chat (the server applies the chat template) or completions (codescaler renders the "
        "prompt with the served model's tokenizer)."))
    tokenizer: str | None = field(default=None, metadata=_help(
        "Tokenizer that renders completions prompts (default: the served model's)."))
    revision: str | None = field(default=None, metadata=_help("Generator revision on the hub."))
    dtype: str = field(default="auto", metadata=_help("Generator dtype. auto: bfloat16 on GPU, float32 on CPU."))
    tensor_parallel_size: int = field(default=1, metadata=_help("GPUs of the generator's vLLM engine."))
    gpu_memory_utilization: float | None = field(default=None, metadata=_help(
        "Share of GPU memory the generator's vLLM engine may use. Default: vLLM's 0.9 on GPUs; on CPU, what the "
        "machine can give."))
    max_model_len: int | None = field(default=None, metadata=_help(
        "Context length of the in-process generator engine."))
    api_key: str | None = field(default=None, metadata=_help("Bearer token for the generator servers."))
    concurrency: int = field(default=4, metadata=_help("Requests in flight per generator server."))
    timeout: float = field(default=600.0, metadata=_help(
        "Seconds before one request to a generator server is given up (then retried)."))
    max_retries: int = field(default=4, metadata=_help(
        "Retries of a generator request on connection errors, 429 and 5xx."))
    n: int = field(default=16, metadata=_help("Samples per problem (serve: when a request gives no best_of)."))
    temperature: float = field(default=0.6, metadata=_help("Sampling temperature."))
    top_p: float = field(default=0.95, metadata=_help("Nucleus sampling."))
    max_tokens: int = field(default=4096, metadata=_help("Longest response, in tokens."))
    seed: int | None = field(default=None, metadata=_help(
        "Same seed, same candidates. Default: random, and recorded."))
    system: str | None = field(default=None, metadata=_help("A system message for the generator."))
    template: str | None = field(default=None, metadata=_help(
        "A prompt template with {question} (and optionally {starter_code}) instead of the LiveCodeBench-style "
        "prompt."))
    wave: int = field(default=DEFAULT_WAVE, metadata=_help(
        "Samples drawn between two checks of the --stop-* rules (eval: the replay's waves)."))
    stop_score: float | None = field(default=None, metadata=_help(
        "Adaptive sampling: stop a problem once its best valid candidate's raw reward-model score reaches this "
        "(serve: a request's `stop_score` wins)."))
    stop_margin: float | None = field(default=None, metadata=_help(
        "Adaptive sampling: stop a problem once its best program's score leads the next distinct program's by at "
        "least this (serve: a request's `stop_margin` wins)."))
    stop_agreement: int | None = field(default=None, metadata=_help(
        "Adaptive sampling: stop a problem once this many of its samples are the same program (serve: a request's "
        "`stop_agreement` wins)."))

    @property
    def sampling(self) -> SamplingSettings:
        return SamplingSettings(n=self.n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens)

    @property
    def stopping(self) -> StoppingRule:
        """The adaptive-sampling rule (not adaptive when no --stop-* threshold is set)."""
        return StoppingRule(wave=self.wave, score=self.stop_score, margin=self.stop_margin,
                            agreement=self.stop_agreement)

    def fingerprint(self) -> dict[str, Any]:
        """What the samples depend on, for the settings check of a resumed run: the model and how it runs, the
        sampling settings, the base seed, the system message, the prompt template (by its hash) and, for an
        adaptive run, its waves and stopping rules (None when not adaptive, as runs before them recorded)."""
        template = self.template
        stopping = self.stopping
        return {
            "generator_model": self.model or (None if self.urls else DEFAULT_GENERATOR_MODEL),
            "generator_revision": self.revision, "generator_dtype": self.dtype,
            "generator_max_model_len": self.max_model_len, "generator_endpoint": self.endpoint if self.urls else None,
            "generator_n": self.n, "generator_temperature": self.temperature, "generator_top_p": self.top_p,
            "generator_max_tokens": self.max_tokens, "generator_seed": self.seed, "generator_system": self.system,
            "generator_template": hashlib.sha256(template.encode("utf-8", "surrogatepass")).hexdigest()[:16]
            if template is not None else None,
            "generator_wave": stopping.wave if stopping.adaptive else None,
            "generator_stop_score": stopping.score, "generator_stop_margin": stopping.margin,
            "generator_stop_agreement": stopping.agreement,
        }

    def validate(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise UsageError(f"unknown endpoint '{self.endpoint}'", f"use one of: {', '.join(ENDPOINTS)}")
        self.stopping.validate()


def check_generator(config: GeneratorConfig) -> None:
    """Fail in seconds, before anything loads, when the generator cannot work: its options, and an in-process
    model's kind (a reward model passed as the generator names the swap) read from its config."""
    config.validate()
    if not config.urls:
        from ..backends.loading import GENERATOR, check_model

        check_model(config.model or DEFAULT_GENERATOR_MODEL, config.revision, GENERATOR)


def open_generator(config: GeneratorConfig) -> Generator:
    """Start the engine or connect to the servers (heavy imports happen here). An in-process model's kind is checked
    from its config first: a reward model passed as the generator fails in seconds, before the engine starts."""
    check_generator(config)
    if config.urls:
        from .openai_server import OpenAIGenerator

        return OpenAIGenerator(config.urls, config.model, endpoint=config.endpoint, tokenizer=config.tokenizer,
                               api_key=config.api_key, concurrency=config.concurrency, timeout=config.timeout,
                               max_retries=config.max_retries, revision=config.revision)
    from .vllm_engine import VllmGenerator

    return VllmGenerator(config.model or DEFAULT_GENERATOR_MODEL, revision=config.revision, dtype=config.dtype,
                         tensor_parallel_size=config.tensor_parallel_size,
                         gpu_memory_utilization=config.gpu_memory_utilization, max_model_len=config.max_model_len)
