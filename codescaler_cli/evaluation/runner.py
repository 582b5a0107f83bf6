"""The evaluation loop: score candidates with a reward model when asked, run their public tests (what a selection
strategy may use, timed on its own for the latency comparison), then all their tests, in the sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..pipeline import score_groups
from ..records import group_candidates
from ..scoring.base import Scorer
from .candidates import EvalCandidate
from .execution import DEFAULT_TEST_TIMEOUT, ERROR, TestsResult, run_tests
from .problems import EvalProblem, Test
from .sandbox import Limits, Sandbox

ProgressCallback = Callable[[int], None]


@dataclass
class Timings:
    """Seconds spent on each stage (wall clock). Public tests and reward scoring are the two ways to select."""

    scoring: float | None = None  # the reward model scoring every distinct program (None: not scored here)
    scoring_load: float | None = None
    public_tests: float = 0.0  # running every candidate's public tests, `jobs` in parallel
    public_test_processes: float = 0.0  # the same, summed over processes (what one core would take)
    all_tests: float = 0.0


def score_candidates(candidates: Sequence[EvalCandidate], scorer: Scorer,
                     progress: ProgressCallback | None = None, *, skip_groups: int = 0) -> float:
    """Score every distinct valid program with the reward model and rank each problem's candidates.

    `skip_groups`: the first problems (in first-seen order) are already scored and ranked (a resumed run); the
    rest are scored in the same chunks as in a run that scores them all, so their scores are the same to the bit.
    Returns the seconds the scorer spent.
    """
    before = scorer.stats.seconds
    groups = group_candidates(c.candidate for c in candidates)
    for _ in score_groups(groups, scorer, progress=progress, skip_groups=skip_groups):
        pass
    return scorer.stats.seconds - before


def problem_groups(candidates: Sequence[EvalCandidate]) -> list[list[EvalCandidate]]:
    """Candidates per problem, problems in first-seen order, each problem's candidates in input order."""
    groups: dict[str, list[EvalCandidate]] = {}
    for candidate in candidates:
        groups.setdefault(candidate.problem.key, []).append(candidate)
    return list(groups.values())


def problem_chunks(groups: Sequence[list[EvalCandidate]], programs: int | None) -> list[list[list[EvalCandidate]]]:
    """Whole problems in chunks of at least `programs` candidates (the last may be smaller); None: one chunk."""
    if programs is None:
        return [list(groups)] if groups else []
    chunks: list[list[list[EvalCandidate]]] = []
    chunk: list[list[EvalCandidate]] = []
    size = 0
    for group in groups:
        chunk.append(group)
        size += len(group)
        if size >= programs:
            chunks.append(chunk)
            chunk, size = [], 0
    if chunk:
        chunks.append(chunk)
    return chunks


def run_chunk(candidates: Sequence[EvalCandidate], sandbox: Sandbox, timings: Timings, *,
              test_timeout: float = DEFAULT_TEST_TIMEOUT, limits: Limits = Limits(),
              public_progress: ProgressCallback | None = None,
              all_progress: ProgressCallback | None = None) -> None:
    """Run some problems' public tests, then all their tests, adding the seconds to `timings`."""
    with_public = [c for c in candidates if c.problem.public_tests]
    wall, processes = run_all_tests(with_public, sandbox, public=True, test_timeout=test_timeout, limits=limits,
                                    progress=public_progress)
    timings.public_tests += wall
    timings.public_test_processes += processes
    wall, _ = run_all_tests(candidates, sandbox, public=False, test_timeout=test_timeout, limits=limits,
                            progress=all_progress)
    timings.all_tests += wall


def run_all_tests(candidates: Sequence[EvalCandidate], sandbox: Sandbox, *, public: bool,
                  test_timeout: float = DEFAULT_TEST_TIMEOUT, limits: Limits = Limits(),
                  progress: ProgressCallback | None = None) -> tuple[float, float]:
    """Run each candidate's public tests (`public=True`) or all its tests, `sandbox.jobs` programs at a time.

    A program that appears several times in a problem (one dedup key) runs once. Fills `public` or `result`
    of every candidate; returns (wall seconds, seconds summed over runs).
    """
    started = time.perf_counter()
    unique: dict[tuple[str, str], list[EvalCandidate]] = {}
    for candidate in candidates:
        if not candidate.candidate.valid:
            # Nothing to run: a response without valid Python code fails every test without taking a process.
            tests = candidate.problem.public_tests if public else candidate.problem.tests
            verdict = TestsResult(ERROR, 0, len(tests), 0.0, "no valid Python code to run")
            if public:
                candidate.public = verdict
            else:
                candidate.result = verdict
            if progress is not None:
                progress(1)
            continue
        # Programs that differ only in comments and spacing (one dedup key) get one run.
        unique.setdefault((candidate.problem.key, candidate.candidate.dedup_key), []).append(candidate)

    def task(problem: EvalProblem, program: str, tests: list[Test]) -> Callable[[], TestsResult]:
        return lambda: run_tests(sandbox, problem, program, tests, test_timeout=test_timeout, limits=limits)

    tasks = []
    for same in unique.values():
        problem = same[0].problem
        tests = problem.public_tests if public else problem.tests
        tasks.append(task(problem, same[0].program, list(tests)))
    total = 0.0
    for same, result in zip(unique.values(), sandbox.map(tasks)):
        assert isinstance(result, TestsResult)
        total += result.seconds
        for candidate in same:
            if public:
                candidate.public = result
            else:
                candidate.result = result
        if progress is not None:
            progress(len(same))
    return time.perf_counter() - started, total
