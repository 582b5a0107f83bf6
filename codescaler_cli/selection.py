"""Best-of-N selection: turning scores into rewards and ranks within a problem's group of candidates."""

from __future__ import annotations

from .records import Candidate
from .scoring.base import softplus


def apply_score(candidate: Candidate, score: float | None) -> None:
    """Record a raw score and its validity-preserving reward (softplus when scored, 0.0 otherwise)."""
    candidate.score = score
    candidate.reward = softplus(score) if score is not None else 0.0


def assign_ranks(group: list[Candidate]) -> list[Candidate]:
    """Rank one group: scored candidates by score (highest first), then the rest; ties keep input order.

    Returns the group sorted by rank (1 = best).
    """
    ordered = sorted(group, key=lambda c: (c.score is None, -(c.score or 0.0), c.index))
    for rank, candidate in enumerate(ordered, start=1):
        candidate.rank = rank
    return ordered


def top_k(ranked: list[Candidate], k: int | None) -> list[Candidate]:
    """Keep ranks <= k (all when k is None)."""
    return ranked if k is None else [c for c in ranked if c.rank is not None and c.rank <= k]
