"""Selection by generated tests (CodeT, Chen et al. 2022): the generator writes assert tests for each problem, every
candidate runs them in the sandbox, and the `generated-tests` strategy picks by dual agreement (the set of
candidates passing exactly the same tests with the largest |candidates| x |tests|). This is the unit-test baseline
the CodeScaler paper compares the reward model's latency with, so its seconds (writing the tests and running them)
are measured and reported beside the reward model's.

Tests are asserts that call the problem's function (HumanEval's entry point, MBPP's tested function, a
LiveCodeBench method on `Solution()`); a stdin problem gets none. Programs run through the public `Sandbox.run`
with a small harness of ours that reports each test's verdict.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..generation import Generator, Problem, SamplingSettings, sample_candidates
from ..generation.config import GeneratorConfig
from .candidates import EvalCandidate
from .problems import STDIN, EvalProblem
from .sandbox import Limits, Program, Sandbox

if TYPE_CHECKING:
    from ..runs.cache import Cache

# Asserts kept from one sample, as CodeT keeps the first 5 of each.
TESTS_PER_SAMPLE = 5
TEST_PROMPT = (
    "{question}\n\n"
    "Do not solve the problem. Write {count} Python assert statements that check a correct solution: each calls "
    "`{call}(...)` with concrete arguments and compares the result with the expected value. Answer with one "
    "```python block holding only the asserts."
)
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[^\n]*\n(.*?)(?:^[ \t]{0,3}\1[ \t]*$|\Z)", re.S | re.M)


@dataclass
class GeneratedTests:
    """The tests written for each problem (by problem key, in the order first written) and what writing them took."""

    tests: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0  # the generator's sampling time (not its loading)
    samples: int = 0

    @property
    def total(self) -> int:
        return sum(len(tests) for tests in self.tests.values())


def call_of(problem: EvalProblem) -> str | None:
    """What a test calls: HumanEval's entry point, a functional problem's function (a method of `Solution()` when
    the starter code has that class), MBPP's function as its first test calls it; None for stdin problems."""
    if problem.entry_point:
        return problem.entry_point
    if problem.fn_name:
        solution = "class Solution" in (problem.starter_code or "") or "class Solution" in problem.question
        return f"Solution().{problem.fn_name}" if solution else problem.fn_name
    for test in problem.tests:
        if test.kind == STDIN:
            return None
        match = re.search(r"\bassert\s+(?:not\s+)?\(?\s*([A-Za-z_]\w*)\s*\(", test.input)
        if match and match.group(1) not in ("set", "abs", "math", "isclose", "sorted", "len"):
            return match.group(1)
    return None


def test_prompt(problem: EvalProblem, count: int = TESTS_PER_SAMPLE) -> str | None:
    """The request for tests of one problem (None when there is nothing to call)."""
    call = call_of(problem)
    if call is None:
        return None
    question = problem.prompt or problem.question
    return TEST_PROMPT.format(question=question.strip("\n"), count=count, call=call)


def extract_asserts(response: str, call: str, limit: int = TESTS_PER_SAMPLE) -> list[str]:
    """The first `limit` top-level asserts in a response's code blocks (or its text) that call `call`'s function,
    each as one normalised statement."""
    name = call.rsplit(".", 1)[-1]
    blocks = [match.group(2) for match in _FENCE.finditer(response)] or [response]
    found: list[str] = []
    for block in blocks:
        for statement in _statements(block):
            if isinstance(statement, ast.Assert) and any(
                    isinstance(node, ast.Call) and _called_name(node) == name for node in ast.walk(statement)):
                found.append(ast.unparse(statement))
                if len(found) == limit:
                    return found
    return found


def _statements(block: str) -> list[ast.stmt]:
    try:
        return list(ast.parse(block).body)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # A block that does not parse whole (a truncated sample): its assert lines that parse alone.
        statements = []
        for line in block.splitlines():
            if line.startswith("assert"):
                try:
                    statements.extend(ast.parse(line).body)
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    continue
        return statements


def _called_name(call: ast.Call) -> str | None:
    function = call.func
    if isinstance(function, ast.Name):
        return function.id
    if isinstance(function, ast.Attribute):
        return function.attr
    return None


def write_tests(problems: Sequence[EvalProblem], generator: Generator | GeneratorConfig, samples: int, *,
                seed: int, cache: Cache | None = None,
                progress: Callable[[int], None] | None = None) -> GeneratedTests:
    """Sample `samples` test-writing responses per problem (sample j of the problem at position i with seed
    `seed + i * samples + j`) and keep the distinct asserts, at most TESTS_PER_SAMPLE a response."""
    from ..pipeline import _open_generator

    prompts = [(problem, test_prompt(problem)) for problem in problems]
    asking = [Problem(id=problem.key, question=prompt, record={}) for problem, prompt in prompts if prompt is not None]
    written = GeneratedTests(tests={problem.key: [] for problem in problems})
    if not asking:
        return written
    config = generator if isinstance(generator, GeneratorConfig) else None
    settings = SamplingSettings(n=samples, temperature=config.temperature if config else 0.6,
                                top_p=config.top_p if config else 0.95,
                                max_tokens=config.max_tokens if config else 1024)
    opened = _open_generator(generator, cache)
    before = opened.stats.seconds
    try:
        responses = sample_candidates(asking, opened, settings, seed=seed, template="{question}",
                                      system=config.system if config else None, progress=progress)
    finally:
        written.seconds = opened.stats.seconds - before
        if opened is not generator:
            opened.close()
    calls = {problem.key: call_of(problem) for problem, prompt in prompts if prompt is not None}
    for response in responses:
        key = str(response.record["id"])
        written.samples += 1
        for test in extract_asserts(response.response or "", calls[key] or ""):
            if test not in written.tests[key]:
                written.tests[key].append(test)
    return written


def run_generated_tests(candidates: Sequence[EvalCandidate], tests: dict[str, list[str]], sandbox: Sandbox, *,
                        test_timeout: float, limits: Limits = Limits(),
                        progress: Callable[[int], None] | None = None) -> tuple[float, float]:
    """Run each distinct valid program of each problem on its problem's generated tests (one sandboxed process
    each) and set every candidate's `generated` to the tests it passes; a problem without tests, or a candidate
    without a valid program, passes none. Returns (wall seconds, seconds summed over processes)."""
    started = time.perf_counter()
    unique: dict[tuple[str, str], list[EvalCandidate]] = {}
    for candidate in candidates:
        problem_tests = tests.get(candidate.problem.key, [])
        if not candidate.candidate.valid or not problem_tests:
            candidate.generated = frozenset()
            if progress is not None:
                progress(1)
            continue
        unique.setdefault((candidate.problem.key, candidate.candidate.dedup_key), []).append(candidate)

    def task(candidate: EvalCandidate) -> Callable[[], tuple[frozenset[int], float]]:
        problem_tests = tests[candidate.problem.key]
        spec = {"timeout": test_timeout, "tests": problem_tests}
        program = candidate.problem.grading.header + "\n" + candidate.program \
            if candidate.problem.grading.header else candidate.program
        files = {"main.py": HARNESS, "solution.py": program, "tests.json": json.dumps(spec)}
        budget = test_timeout * (len(problem_tests) + 1) + 1.0

        def run() -> tuple[frozenset[int], float]:
            result = sandbox.run(Program(files, limits=limits.with_timeout(budget)))
            return _passed(result.stdout, len(problem_tests)), result.seconds

        return run

    groups = list(unique.values())
    summed = 0.0
    for same, outcome in zip(groups, sandbox.map([task(same[0]) for same in groups])):
        passed, seconds = outcome  # type: ignore[misc]
        summed += seconds
        for candidate in same:
            candidate.generated = passed
        if progress is not None:
            progress(len(same))
    return time.perf_counter() - started, summed


def _passed(stdout: str, count: int) -> frozenset[int]:
    passed = set()
    for line in stdout.splitlines():
        try:
            verdict = json.loads(line)
        except ValueError:
            continue
        if isinstance(verdict, dict) and verdict.get("passed") is True and isinstance(verdict.get("index"), int) \
                and 0 <= verdict["index"] < count:
            passed.add(verdict["index"])
    return frozenset(passed)


# The program the sandbox runs: loads the candidate (solution.py) as a module, then runs each generated assert on
# a copy of its namespace with its own timer, writing one verdict per line on the stdout it saved first (the
# candidate's prints go to /dev/null). A program that fails to load passes nothing; after a timeout it stops.
HARNESS = r'''
import json, os, signal

_results = os.fdopen(os.dup(1), "w")
_null = os.open(os.devnull, os.O_RDWR)
os.dup2(_null, 0)
os.dup2(_null, 1)

with open("tests.json", encoding="utf-8") as _handle:
    _spec = json.load(_handle)


class _Timeout(BaseException):
    pass


def _on_alarm(signum, frame):
    raise _Timeout()


signal.signal(signal.SIGALRM, _on_alarm)


def _timed(source, namespace):
    signal.setitimer(signal.ITIMER_REAL, _spec["timeout"])
    try:
        exec(compile(source, "<test>", "exec"), namespace)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _main():
    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        with open("solution.py", encoding="utf-8") as handle:
            _timed(handle.read(), namespace)
    except BaseException:
        return
    for index, test in enumerate(_spec["tests"]):
        try:
            _timed(test, dict(namespace))
            passed, timed_out = True, False
        except BaseException as exc:
            passed, timed_out = False, isinstance(exc, _Timeout)
        _results.write(json.dumps({"index": index, "passed": passed}) + "\n")
        _results.flush()
        if timed_out:
            return


_main()
'''
