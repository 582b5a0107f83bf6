"""Reward scoring: the scorer protocol and reward shaping, the reward model's input texts, and three backends
(transformers in-process, vLLM's pooling runner in-process, remote vLLM servers) chosen by one `ScorerConfig`.

Backends import torch, transformers or vLLM only when they are opened.
"""

from .base import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_REWARD_MODEL,
    ProgressCallback,
    Scorer,
    ScoreRequest,
    ScoreResult,
    ScoringStats,
    reward_conversation,
    softplus,
)
from .config import SCORER_KINDS, ScorerConfig, open_scorer

__all__ = [
    "DEFAULT_MAX_LENGTH", "DEFAULT_REWARD_MODEL", "ProgressCallback", "SCORER_KINDS", "ScoreRequest", "ScoreResult",
    "Scorer", "ScorerConfig", "ScoringStats", "open_scorer", "reward_conversation", "softplus",
]
