"""Sampling from OpenAI-compatible servers (vLLM's) through /chat/completions or /completions.

A problem's samples can be split into chunks (the chunk starting at sample j0 gets seed s+j0, as vLLM's own
seed+j) and spread over replicas without changing what is sampled. A failed request fails only its samples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..backends.http import EndpointPool, RequestFailed, served_models
from ..errors import UsageError
from .base import (
    GenerationRequest,
    GenerationStats,
    ProgressCallback,
    Sample,
    SamplingSettings,
    failed_samples,
    report_tokens,
)


@dataclass(frozen=True)
class _Chunk:
    request: int
    first: int
    n: int


class OpenAIGenerator:
    """Samples from OpenAI-compatible servers (vLLM's), through /chat/completions or /completions."""

    def __init__(self, urls: Sequence[str], model: str | None = None, *, endpoint: str = "chat",
                 tokenizer: str | None = None, api_key: str | None = None, concurrency: int = 8,
                 timeout: float = 600.0, max_retries: int = 4, backoff: float = 0.5,
                 revision: str | None = None) -> None:
        """`model` None means the model the servers serve; a name they do not serve is a usage error.

        For /completions the prompt is rendered here with the served model's chat template: the tokenizer is
        `tokenizer` when given, else the served model's own (vLLM's /v1/models names its path as `root`), and it
        is checked against the server's /tokenize so a mismatch is an error, not a silently wrong prompt.
        """
        self.stats = GenerationStats()
        self.endpoint = endpoint
        self.pool = EndpointPool(urls, api_key=api_key, timeout=timeout, max_retries=max_retries,
                                 concurrency=concurrency, backoff=backoff)
        answers = self.pool.check_servers("generator")
        first_url, first_answer = next(iter(answers.items()))
        served = served_models(first_answer)
        if model is None:
            self.model = next(iter(served), None) or "default"
        elif model in served or not served:
            self.model = model
        else:
            raise UsageError(f"generator server {first_url} serves {', '.join(repr(m) for m in served)}, "
                             f"not -m '{model}'", "pass -m with a served name, or leave -m out to use the "
                             "server's model")
        self.tokenizer = None
        if endpoint == "completions":
            self.tokenizer = self._load_tokenizer(tokenizer or served.get(self.model) or self.model, revision,
                                                  given=tokenizer is not None)

    def _load_tokenizer(self, name: str, revision: str | None, *, given: bool) -> Any:
        from transformers import AutoTokenizer

        from ..backends.loading import load_error

        try:
            tokenizer = AutoTokenizer.from_pretrained(name, revision=revision)
        except Exception as exc:
            error = load_error("generator tokenizer (needed to render prompts for /completions)", name, exc)
            if not given:
                error.hint = ("pass --tokenizer with the served model's tokenizer (a hub id or local directory), "
                              "or use --endpoint chat and let the server apply its chat template")
            raise error from exc
        if not getattr(tokenizer, "chat_template", None):
            raise UsageError(f"tokenizer '{name}' has no chat template to render /completions prompts with",
                             "use --endpoint chat, or pass --tokenizer with the served model's tokenizer")
        probe = "def add(a, b):\n    return a + b  # codescaler tokenizer check: ünïcödé"
        server_ids = self._server_tokens(probe)
        if server_ids is not None and server_ids != list(tokenizer(probe, add_special_tokens=False)["input_ids"]):
            raise UsageError(f"tokenizer '{name}' does not tokenize like the served model '{self.model}'",
                             "pass --tokenizer with the served model's own tokenizer, or use --endpoint chat")
        return tokenizer

    def _server_tokens(self, text: str) -> list[int] | None:
        """The server's own token ids for a text (vLLM's /tokenize), or None when it has no such endpoint."""
        try:
            answer = self.pool.post("/tokenize", {"model": self.model, "prompt": text, "add_special_tokens": False},
                                    root=True)
            return [int(token) for token in answer["tokens"]]
        except (RequestFailed, KeyError, TypeError, ValueError):
            return None

    def _chunks(self, requests: Sequence[GenerationRequest]) -> list[_Chunk]:
        # With fewer problems than replicas, split each problem's samples so every replica has work.
        replicas = len(self.pool.base_urls)
        chunks = []
        for index, request in enumerate(requests):
            size = request.n if len(requests) >= replicas else max(1, math.ceil(request.n / replicas))
            for first in range(0, request.n, size):
                chunks.append(_Chunk(index, first, min(size, request.n - first)))
        return chunks

    def _payload(self, request: GenerationRequest, chunk: _Chunk, settings: SamplingSettings) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "n": chunk.n, "seed": request.seed + chunk.first,
                                   "temperature": settings.temperature, "top_p": settings.top_p,
                                   "max_tokens": settings.max_tokens}
        if self.endpoint == "chat":
            payload["messages"] = request.messages
        else:
            assert self.tokenizer is not None
            payload["prompt"] = self.tokenizer.apply_chat_template(request.messages, tokenize=False,
                                                                   add_generation_prompt=True)
        return payload

    def generate(self, requests: Sequence[GenerationRequest], settings: SamplingSettings,
                 progress: ProgressCallback | None = None) -> list[list[Sample]]:
        started = time.perf_counter()
        report_tokens(progress, 0)  # tokens/s counts from here
        chunks = self._chunks(requests)
        path = "/chat/completions" if self.endpoint == "chat" else "/completions"

        def run(chunk: _Chunk) -> list[Sample]:
            answer = self.pool.post(path, self._payload(requests[chunk.request], chunk, settings))
            return parse_choices(answer, chunk.n, chat=self.endpoint == "chat")

        def done(index: int, value: Any, error: BaseException | None) -> None:
            if progress is not None:
                if error is None and value:
                    report_tokens(progress, sum(sample.tokens for sample in value))
                progress(chunks[index].n)

        outcomes = self.pool.map(run, chunks, on_done=done)
        results: list[list[Sample]] = [[] for _ in requests]
        for chunk, outcome in zip(chunks, outcomes):
            if isinstance(outcome, BaseException):
                cause = str(outcome) if isinstance(outcome, RequestFailed) else f"{type(outcome).__name__}: {outcome}"
                samples = failed_samples(chunk.n, f"generation request failed: {cause}")
            else:
                samples = outcome
            results[chunk.request].extend(samples)
            self.stats.completion_tokens += sum(s.tokens for s in samples)
            self.stats.failures += sum(s.error is not None for s in samples)
            self.stats.samples += len(samples)
        self.stats.requests += len(chunks)
        self.stats.seconds += time.perf_counter() - started
        return results

    def close(self) -> None:
        self.pool.close()


def parse_choices(answer: Any, n: int, *, chat: bool) -> list[Sample]:
    """Samples from a (chat) completions answer, ordered by choice index; token counts from `usage`."""
    try:
        choices = sorted(answer["choices"], key=lambda choice: choice.get("index", 0))
        texts = [choice["message"]["content"] if chat else choice["text"] for choice in choices]
        reasons = [choice.get("finish_reason") for choice in choices]
    except (KeyError, TypeError):
        raise RequestFailed("", f"unexpected answer: {str(answer)[:200]}") from None
    total = int((answer.get("usage") or {}).get("completion_tokens") or 0)
    share, rest = divmod(total, max(1, len(texts)))  # servers report one total; keep the sum exact
    samples = [Sample(text=text or "", finish_reason=reason, tokens=share + (rest if i == 0 else 0))
               for i, (text, reason) in enumerate(zip(texts, reasons))]
    if len(samples) != n:
        raise RequestFailed("", f"asked for {n} samples, got {len(samples)}")
    return samples
