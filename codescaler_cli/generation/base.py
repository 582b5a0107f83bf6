"""The generator seam: what a sampling backend takes (conversations, N, a seed) and returns (N samples each).

With `n=N` and seed s, vLLM's sample j uses seed s+j; a problem's samples can therefore be split into chunks
(chunk starting at sample j0 gets seed s+j0) and spread over replicas without changing what is sampled.
A failure is per request: its samples carry an `error` and the rest of the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


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


def report_tokens(progress: ProgressCallback | None, tokens: int) -> None:
    """Tell a progress callback how many tokens were sampled, if it listens (`progress.add_tokens(k)`).

    A plain callable (e.g. `list.append`) only counts samples; codescaler's progress bar also shows tokens/s.
    Generators report 0 when they start sampling, which starts the rate's clock.
    """
    add_tokens = getattr(progress, "add_tokens", None)
    if add_tokens is not None and tokens >= 0:
        add_tokens(tokens)


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
