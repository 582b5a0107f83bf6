"""Running candidates' tests in the sandbox: their public tests (what a selection strategy may use, timed on its own
for the latency comparison), then all their tests. The loop around it (scoring, chunks, output) is `loop`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
