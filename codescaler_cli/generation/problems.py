"""Best-of-N for whole problems: read problems, sample N responses each, then hand them to extract → score → rank.

Every sample becomes a candidate record carrying what produced it (`prompt`, `sample`, `seed`, `finish_reason`),
so `codescaler rank` on `generate`'s output reproduces its scores exactly.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import InputError
from .base import GenerationRequest, Generator, ProgressCallback, SamplingSettings
from .prompts import build_prompt, chat_messages
from ..records import Candidate, iter_lines, parse_record


@dataclass
class Problem:
    """One problem to solve: its id, statement, optional starter code, and the record it came from."""

    id: str | int | None
    question: str
    starter_code: str | None = None
    record: dict[str, Any] | None = None
    source: str = "<argument>"
    line: int = 0


def read_problems(path: str | Path | None, *, stdin: IO[bytes] | None = None) -> list[Problem]:
    """Read `{"id", "question", "starter_code"?}` records (other fields pass through); validate all first.

    A problem without an `id` gets its 0-based position, or the next number no other problem of the file uses
    as an explicit id, so an automatic id never collides with a later explicit one.
    """
    problems: list[Problem] = []
    seen: dict[Any, int] = {}
    for source, line, text in iter_lines(path, stdin):
        if not text.strip():
            continue
        record = parse_record(source, line, text)
        question = record.get("question")
        if not isinstance(question, str) or not question.strip():
            raise InputError(source, line, "missing or empty field 'question' (a string)",
                             "each problem needs a non-empty 'question' string")
        starter = record.get("starter_code")
        if starter is not None and not isinstance(starter, str):
            raise InputError(source, line, "field 'starter_code' must be a string")
        problem_id = record.get("id")
        if problem_id is not None:
            if isinstance(problem_id, bool) or not isinstance(problem_id, (str, int)):
                raise InputError(source, line, "field 'id' must be a string or an integer")
            if problem_id in seen:
                raise InputError(source, line, f"duplicate id {problem_id!r} (first on line {seen[problem_id]})",
                                 "give every problem its own id")
            seen[problem_id] = line
        problems.append(Problem(problem_id, question, starter, record, source, line))
    automatic = (number for number in itertools.count() if number not in seen)
    for position, problem in enumerate(problems):
        if problem.id is None:
            problem.id = position if position not in seen else next(automatic)
            seen[problem.id] = problem.line
    return problems


def problem_seeds(count: int, n: int, seed: int | None) -> tuple[int, list[int]]:
    """A base seed (drawn when not given, so every run is reproducible from its output) and one per problem.

    Problem i gets base + i * n, so with vLLM's seed+j per sample no two samples of a run share a seed.
    """
    base = seed if seed is not None else random.SystemRandom().randrange(2**31 - 1 - count * n)
    return base, [base + i * n for i in range(count)]


def sample_candidates(problems: Sequence[Problem], generator: Generator, settings: SamplingSettings, *,
                      seed: int | None = None, template: str | None = None, system: str | None = None,
                      progress: ProgressCallback | None = None) -> list[Candidate]:
    """Sample `settings.n` responses per problem; one candidate per sample (with `error` where it failed)."""
    base, _ = problem_seeds(len(problems), settings.n, seed)
    return sample_wave(list(enumerate(problems)), generator, settings, seed=base, first=0, count=settings.n,
                       template=template, system=system, progress=progress)


def sample_wave(problems: Sequence[tuple[int, Problem]], generator: Generator, settings: SamplingSettings, *,
                seed: int, first: int, count: int, template: str | None = None, system: str | None = None,
                progress: ProgressCallback | None = None) -> list[Candidate]:
    """Samples `first` .. `first + count - 1` of each (position, problem): those a run of `settings.n` samples per
    problem with base seed `seed` draws for the problem at that position (its seed is `seed + position * n`,
    sample j's `+ j`), so waves of an adaptive run draw exactly a prefix of the full run's samples.

    A candidate's `index` is `position * n + sample`, as in the full run: ties within a problem break alike.
    """
    prompts = [build_prompt(p.question, p.starter_code, template) for _, p in problems]
    seeds = [seed + position * settings.n for position, _ in problems]
    requests = [GenerationRequest(chat_messages(prompt, system), count, problem_seed + first)
                for prompt, problem_seed in zip(prompts, seeds)]
    outputs = generator.generate(requests, settings, progress)
    candidates: list[Candidate] = []
    for (position, problem), prompt, problem_seed, samples in zip(problems, prompts, seeds, outputs):
        for offset, sample in enumerate(samples):
            number = first + offset
            record: dict[str, Any] = dict(problem.record or {})
            record.update({"id": problem.id, "question": problem.question, "prompt": prompt,
                           "response": sample.text, "sample": number, "seed": problem_seed + number,
                           "finish_reason": sample.finish_reason, "completion_tokens": sample.tokens})
            candidate = Candidate(record=record, source=problem.source, line=problem.line,
                                  index=position * settings.n + number, question=problem.question,
                                  response=sample.text or "", given_code=None, group_key=("id", problem.id))
            if sample.error is not None:
                candidate.error = sample.error
            candidates.append(candidate)
    return candidates
