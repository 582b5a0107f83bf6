"""The scorer seam: what a reward-model backend takes and returns, and the reward shaping applied to its scores.

A scorer maps (question, code) pairs to raw reward-model logits. Backends (transformers, vLLM, remote servers)
implement the `Scorer` protocol; everything above them (dedup, ranking, output) is shared.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

DEFAULT_REWARD_MODEL = "LARK-Lab/CodeScaler-4B"
# Upstream training used right truncation at 4096 tokens; the model card's example uses 2048.
DEFAULT_MAX_LENGTH = 4096

ProgressCallback = Callable[[int], None]


def report_started(progress: ProgressCallback | None) -> None:
    """Tell a progress callback that its phase's work has started (the model it waited for is loaded), if it
    listens (`progress.start()`)."""
    start = getattr(progress, "start", None)
    if start is not None:
        start()


# The kind of a failed score (`ScoreResult.error_kind`) when the backend could not be used at all (a server down,
# or answering 5xx or nonsense after its retries), rather than refusing this one text: nothing here is the text's
# fault, and a run whose every text fails this way stops instead of writing the rest as errors.
SERVER_UNAVAILABLE = "server-unavailable"


@dataclass(frozen=True)
class ScoreRequest:
    """One text to score: the problem as the user turn, the extracted code as the assistant turn."""

    question: str
    code: str


@dataclass
class ScoreResult:
    """A raw logit (None when scoring this item failed, with `error` saying why and `error_kind` what kind of
    failure it was, e.g. SERVER_UNAVAILABLE) and whether input was cut."""

    score: float | None
    truncated: bool = False
    error: str | None = None
    tokens: int = 0
    error_kind: str | None = None


@dataclass
class ScoringStats:
    """What a scorer actually ran, for summaries and the benchmark: texts, tokens through the model, padding."""

    texts: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    prefix_tokens: int = 0
    batches: int = 0
    seconds: float = 0.0


class Scorer(Protocol):
    """A reward-model backend: scores (question, code) pairs with the model's raw logit."""

    stats: ScoringStats

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressCallback | None = None) -> list[ScoreResult]:
        """Score every request; results are in request order. `progress(k)` is called as k more are done."""
        ...

    def close(self) -> None:
        """Release the model (GPU memory, engines, connections)."""
        ...


def reward_conversation(question: str, code: str) -> list[dict[str, str]]:
    """The two-turn chat the reward model reads: the problem, then the code alone (no prose, no fences)."""
    return [{"role": "user", "content": question}, {"role": "assistant", "content": code}]


def softplus(score: float) -> float:
    """log(1 + exp(score)), computed without overflow; always > 0 so every valid candidate beats every invalid one."""
    return max(score, 0.0) + math.log1p(math.exp(-abs(score)))
