"""Running candidates' tests in the sandbox: their public tests (what a selection strategy may use, timed on its own
for the latency comparison), then all their tests. The loop around it (scoring, chunks, output) is `loop`.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .candidates import EvalCandidate
from .execution import DEFAULT_TEST_TIMEOUT, ERROR, TestsResult, run_test_sets
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


def run_chunk(candidates: Sequence[EvalCandidate], sandbox: Sandbox, timings: Timings, *,
              test_timeout: float = DEFAULT_TEST_TIMEOUT, limits: Limits = Limits(),
              public_progress: ProgressCallback | None = None,
              all_progress: ProgressCallback | None = None) -> None:
    """Run some problems' public tests and all their tests, adding the seconds to `timings`.

    One sandboxed process per distinct program runs its public tests, then all its tests (stdin tests: one process
    per test, as ever). The public tests are timed on their own: `public_test_processes` adds up, per program,
    starting it, loading it and its public tests; `public_tests` is the wall time those would take on
    `sandbox.jobs` workers, scheduled in order as the sandbox schedules programs (they ran inside the all-tests
    runs, so their wall time is computed from their own durations, not measured).
    """
    started = time.perf_counter()
    public_seconds = _run_sets(candidates, sandbox, both=True, test_timeout=test_timeout, limits=limits,
                               public_progress=public_progress, all_progress=all_progress)
    timings.all_tests += time.perf_counter() - started
    timings.public_test_processes += sum(public_seconds)
    timings.public_tests += _makespan(public_seconds, sandbox.jobs)


def run_all_tests(candidates: Sequence[EvalCandidate], sandbox: Sandbox, *, public: bool,
                  test_timeout: float = DEFAULT_TEST_TIMEOUT, limits: Limits = Limits(),
                  progress: ProgressCallback | None = None) -> tuple[float, float]:
    """Run each candidate's public tests (`public=True`) or all its tests, `sandbox.jobs` programs at a time.

    A program that appears several times in a problem (one dedup key) runs once. Fills `public` or `result`
    of every candidate; returns (wall seconds, seconds summed over runs).
    """
    started = time.perf_counter()
    seconds = _run_sets(candidates, sandbox, both=False, public=public, test_timeout=test_timeout, limits=limits,
                        public_progress=progress, all_progress=progress)
    return time.perf_counter() - started, sum(seconds)


def _run_sets(candidates: Sequence[EvalCandidate], sandbox: Sandbox, *, both: bool, public: bool = False,
              test_timeout: float, limits: Limits, public_progress: ProgressCallback | None,
              all_progress: ProgressCallback | None) -> list[float]:
    """Run the public tests and all tests (`both`), or one of them, of every distinct program; fill the
    candidates' verdicts. Returns the seconds of the first set run for each program, in order."""
    unique: dict[tuple[str, str], list[EvalCandidate]] = {}
    for candidate in candidates:
        has_public = bool(candidate.problem.public_tests)
        if not candidate.candidate.valid:
            # Nothing to run: a response without valid Python code fails every test without taking a process.
            for is_public in _stored_sets(both, public, has_public):
                tests = candidate.problem.public_tests if is_public else candidate.problem.tests
                _store(candidate, is_public, TestsResult(ERROR, 0, len(tests), 0.0, "no valid Python code to run"))
            _advance(public_progress, all_progress, 1, both=both, public=public, has_public=has_public)
            continue
        # Programs that differ only in comments and spacing (one dedup key) get one run.
        unique.setdefault((candidate.problem.key, candidate.candidate.dedup_key), []).append(candidate)

    def sets_of(problem: EvalProblem) -> list[list[Test]]:
        if both:
            return [list(problem.public_tests), list(problem.tests)]
        return [list(problem.public_tests if public else problem.tests)]

    def task(problem: EvalProblem, program: str) -> Callable[[], list[TestsResult]]:
        return lambda: run_test_sets(sandbox, problem, program, sets_of(problem), test_timeout=test_timeout,
                                     limits=limits)

    tasks = [task(same[0].problem, same[0].program) for same in unique.values()]
    first_set_seconds: list[float] = []
    for same, results in zip(unique.values(), sandbox.map(tasks)):
        assert isinstance(results, list)
        first_set_seconds.append(results[0].seconds)
        has_public = bool(same[0].problem.public_tests)
        for candidate in same:
            for is_public, result in zip((True, False) if both else (public,), results):
                if is_public in _stored_sets(both, public, has_public):
                    _store(candidate, is_public, result)
        _advance(public_progress, all_progress, len(same), both=both, public=public, has_public=has_public)
    return first_set_seconds


def _stored_sets(both: bool, public: bool, has_public: bool) -> tuple[bool, ...]:
    """Which verdicts a candidate gets (True: public tests): both when its problem has public tests."""
    if both:
        return (True, False) if has_public else (False,)
    return (public,)


def _store(candidate: EvalCandidate, public: bool, verdict: TestsResult) -> None:
    if public:
        candidate.public = verdict
    else:
        candidate.result = verdict


def _advance(public_progress: ProgressCallback | None, all_progress: ProgressCallback | None, count: int, *,
             both: bool, public: bool, has_public: bool) -> None:
    if both:
        if has_public and public_progress is not None:
            public_progress(count)
        if all_progress is not None:
            all_progress(count)
    else:
        callback = public_progress if public else all_progress
        if callback is not None:
            callback(count)


def _makespan(durations: Sequence[float], workers: int) -> float:
    """The wall time of running `durations` in order on `workers` workers, each taking the next when free."""
    free = [0.0] * max(1, min(workers, len(durations)))
    heapq.heapify(free)
    end = 0.0
    for duration in durations:
        start = heapq.heappop(free)
        end = max(end, start + duration)
        heapq.heappush(free, start + duration)
    return end
