"""The extract → dedup → score → rank pipeline, streamed problem by problem.

Groups are scored in chunks (so a backend sees large batches) and yielded one group at a time as soon as their
chunk is scored, so a caller can write results as they come and nothing computed is lost if a later chunk fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from .extraction import check_code, dedup_key, extract_code
from .records import Candidate
from .scoring.base import ProgressCallback, Scorer, ScoreRequest
from .selection import apply_score, assign_ranks

# Unique programs handed to the scorer per call: large enough to batch well, small enough to stream results.
DEFAULT_CHUNK_REQUESTS = 256


def extract_candidate(candidate: Candidate) -> Candidate:
    """Fill `code`, `valid` and the dedup key: from `code` when the record has it, else from `response`."""
    if candidate.given_code is not None:
        extraction = check_code(candidate.given_code)
    else:
        extraction = extract_code(candidate.response or "")
    candidate.code, candidate.valid = extraction.code, extraction.valid
    candidate.dedup_key = dedup_key(extraction.code) if extraction.valid else ""
    return candidate


def extract_all(candidates: Iterable[Candidate]) -> list[Candidate]:
    return [extract_candidate(candidate) for candidate in candidates]


def unique_programs(group: Sequence[Candidate]) -> dict[str, Candidate]:
    """The first valid candidate of each distinct program (dedup key) in a group, in input order."""
    unique: dict[str, Candidate] = {}
    for candidate in group:
        if candidate.valid and candidate.dedup_key not in unique:
            unique[candidate.dedup_key] = candidate
    return unique


def count_unique(groups: Sequence[Sequence[Candidate]]) -> int:
    """How many texts the scorer will run: one per distinct valid program per group."""
    return sum(len(unique_programs(group)) for group in groups)


def score_groups(groups: Sequence[list[Candidate]], scorer: Scorer | None, *, progress: ProgressCallback | None = None,
                 chunk_requests: int = DEFAULT_CHUNK_REQUESTS) -> Iterator[list[Candidate]]:
    """Score and rank extracted groups; yield each group sorted by rank, in input order of groups.

    Each distinct valid program of a group is scored once and its score shared by its duplicates; invalid
    candidates are never scored (score None, reward 0.0) and rank after every valid one. `scorer` may be None
    only when no group has a valid candidate (then no model needs loading).
    """
    chunk: list[tuple[list[Candidate], dict[str, Candidate]]] = []
    pending = 0
    for group in groups:
        unique = unique_programs(group)
        chunk.append((group, unique))
        pending += len(unique)
        if pending >= chunk_requests:
            yield from _score_chunk(chunk, scorer, progress)
            chunk, pending = [], 0
    if chunk:
        yield from _score_chunk(chunk, scorer, progress)


def _score_chunk(chunk: list[tuple[list[Candidate], dict[str, Candidate]]], scorer: Scorer | None,
                 progress: ProgressCallback | None) -> Iterator[list[Candidate]]:
    representatives = [c for _, unique in chunk for c in unique.values()]
    requests = [ScoreRequest(question=c.question or "", code=c.code) for c in representatives]
    if requests and scorer is None:
        raise ValueError("valid candidates need a scorer")
    results = scorer.score(requests, progress) if requests and scorer is not None else []
    for representative, result in zip(representatives, results):
        apply_score(representative, result.score)
        representative.truncated = result.truncated
        representative.error = result.error
    for group, unique in chunk:
        for candidate in group:
            if not candidate.valid:
                apply_score(candidate, None)
                continue
            representative = unique[candidate.dedup_key]
            if representative is not candidate:
                apply_score(candidate, representative.score)
                candidate.truncated, candidate.error = representative.truncated, representative.error
        yield assign_ranks(group)
