"""Best-of-N selection: turning scores into rewards and ranks within a problem's group of candidates, by the reward
model alone (the default) or by votes of equivalent programs (`rank --select`)."""

from __future__ import annotations

from .errors import UsageError
from .records import Candidate
from .scoring.base import softplus

# How `rank --select` orders a problem's candidates; each puts first what eval's strategy of that name picks.
SELECTIONS = ("reward-model", "vote", "reward-weighted-vote")


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


def select_ranks(group: list[Candidate], select: str = "reward-model") -> list[Candidate]:
    """Rank one scored group by a selection strategy; returns it sorted by the new rank (1 = what is submitted).

    reward-model: `assign_ranks`. vote: the most candidates of one program (dedup key) first, ties by the program's
    reward, then input order. reward-weighted-vote: the largest sum of a program's rewards (its candidates' count
    times its reward) first, ties by the reward, then input order. A program's reward is the highest of its
    candidates' (duplicates share one score); candidates without a valid program come last, in input order, as in
    eval's strategies of the same names.
    """
    if select == "reward-model":
        return assign_ranks(group)
    if select not in SELECTIONS:
        raise UsageError(f"unknown selection '{select}'", f"use one of: {', '.join(SELECTIONS)}")
    counts: dict[str, int] = {}
    rewards: dict[str, float] = {}
    for candidate in group:
        if candidate.valid:
            counts[candidate.dedup_key] = counts.get(candidate.dedup_key, 0) + 1
            rewards[candidate.dedup_key] = max(candidate.reward, rewards.get(candidate.dedup_key, candidate.reward))

    def key(candidate: Candidate) -> tuple[float, ...]:
        if not candidate.valid:
            return (1, 0.0, 0.0, candidate.index)
        count, reward = counts[candidate.dedup_key], rewards[candidate.dedup_key]
        weight = count if select == "vote" else count * reward
        return (0, -weight, -reward, candidate.index)

    ordered = sorted(group, key=key)
    for rank, candidate in enumerate(ordered, start=1):
        candidate.rank = rank
    return ordered
