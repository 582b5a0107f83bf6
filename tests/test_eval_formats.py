"""Test formats end to end through the sandbox: LiveCodeBench stdin and functional tests (including its compressed
private tests), MBPP asserts, HumanEval programs built from whole functions and from completions, and hostile
programs reported by status while the honest one passes."""

from __future__ import annotations

import base64
import json
import os
import pickle
import zlib
from pathlib import Path

import pytest
from helpers import parse_jsonl, write_jsonl
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.errors import InputError
from codescaler_cli.evaluation import Sandbox, build_program, load_benchmark, read_eval_candidates, run_tests
from codescaler_cli.evaluation.problems import decode_test_cases, problem_from_record

runner = CliRunner()


def lcb_compressed(tests: list[dict[str, str]]) -> str:
    """LiveCodeBench's release format for private tests: base64(zlib(pickle(json string)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


SUM_PROBLEM = {
    "question_id": "sum", "question_content": "Read two integers and print their sum.", "starter_code": "",
    "metadata": "{}",
    "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
    "private_test_cases": lcb_compressed([{"input": "10 -4\n", "output": "6", "testtype": "stdin"},
                                          {"input": "0 0\n", "output": "0\n\n", "testtype": "stdin"}]),
}

# Every program a hostile or careless candidate might be, and the status it must get.
HOSTILE = {
    "honest": ("a, b = map(int, input().split())\nprint(a + b)   ", "passed"),
    "wrong": ("a, b = map(int, input().split())\nprint(a - b)", "failed"),
    "crash": ("raise ValueError('no idea')", "error"),
    "infinite loop": ("while True:\n    pass", "timeout"),
    "fork bomb": ("import os\nwhile True:\n    os.fork()", "processes"),
    "50 GB": ("data = bytearray(50 * 10**9)\nprint(3)", "memory"),
    "segfault": ("import ctypes\nctypes.string_at(0)", "killed"),
    "write outside": ("open('/etc/codescaler-escape', 'w').write('x')\nprint(3)", "error"),
    "network": ("import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=0.5)\nprint(3)", "error"),
}


@pytest.mark.parametrize("isolation", ["bwrap", "fallback"])
def test_hostile_programs_are_contained_and_reported_and_the_honest_one_passes(tmp_path: Path, isolation: str
                                                                              ) -> None:
    problems = write_jsonl(tmp_path / "problems.jsonl", [SUM_PROBLEM])
    candidates = write_jsonl(tmp_path / "candidates.jsonl",
                             [{"id": "sum", "code": code, "kind": kind} for kind, (code, _) in HOSTILE.items()])
    out = tmp_path / "verdicts.jsonl"
    result = runner.invoke(app, ["eval", str(candidates), "--problems", str(problems), "--isolation", isolation,
                                 "--test-timeout", "1", "--jobs", "2", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    records = {r["kind"]: r for r in parse_jsonl(out.read_text())}
    for kind, (_, status) in HOSTILE.items():
        assert records[kind]["status"] == status, (kind, records[kind])
        assert records[kind]["passed"] is (status == "passed")
        assert records[kind]["seconds"] < 15
    honest = records["honest"]
    assert (honest["tests_passed"], honest["tests_total"], honest["public_passed"], honest["public_total"]) == \
        (3, 3, 1, 1)
    assert records["wrong"]["tests_passed"] == 1  # 0 0 -> 0 is right even by subtraction
    assert not os.path.exists("/etc/codescaler-escape")
    assert f"under {isolation}" in result.stdout


def test_lcb_functional_tests_call_the_solution_method(tmp_path: Path) -> None:
    problem = problem_from_record({
        "question_id": "two-sum", "question_content": "Return indices of two numbers adding up to target.",
        "starter_code": "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        ",
        "metadata": json.dumps({"func_name": "twoSum"}),
        "public_test_cases": json.dumps([{"input": "[2,7,11,15]\n9", "output": "[0, 1]", "testtype": "functional"}]),
        "private_test_cases": lcb_compressed([{"input": "[3,2,4]\n6", "output": "[1, 2]", "testtype": "functional"},
                                              {"input": "[3,3]\n6", "output": "[0,1]", "testtype": "functional"}]),
    }, "problems.jsonl", 1)
    assert problem.fn_name == "twoSum" and len(problem.tests) == 3 and len(problem.public_tests) == 1
    right = ("from typing import List\nclass Solution:\n    def twoSum(self, nums: List[int], target: int):\n"
             "        seen = {}\n        for i, x in enumerate(nums):\n            if target - x in seen:\n"
             "                return (seen[target - x], i)\n            seen[x] = i\n")
    wrong = "class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n"
    function = "def twoSum(nums, target):\n    return [[i, j] for i in range(len(nums)) for j in range(i + 1, " \
               "len(nums)) if nums[i] + nums[j] == target][0]\n"
    with Sandbox(jobs=1) as box:
        verdicts = [run_tests(box, problem, code, problem.tests, test_timeout=3) for code in (right, wrong, function)]
        public = run_tests(box, problem, wrong, problem.public_tests, test_timeout=3)
    assert [(v.status, v.passed, v.total) for v in verdicts] == [("passed", 3, 3), ("failed", 2, 3),
                                                                 ("passed", 3, 3)]
    assert "expected [1, 2]" in verdicts[1].detail
    assert (public.status, public.passed) == ("passed", 1)


def test_mbpp_asserts_with_setup_and_imports() -> None:
    problem = problem_from_record({
        "task_id": 7, "text": "Write a function to find the shared elements of two tuples.",
        "test_list": ["assert similar_elements((3, 4, 5, 6), (5, 7, 4, 10)) == (4, 5)",
                      "assert similar_elements((1, 2, 3, 4), (5, 4, 3, 7)) == (3, 4)",
                      "assert math.isclose(SCALE, 1.0)"],
        "test_setup_code": "SCALE = math.sqrt(1.0)", "test_imports": ["import math"],
    }, "mbpp.jsonl", 1)
    right = "def similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b)))\n"
    half = "def similar_elements(a, b):\n    return (4, 5)\n"
    with Sandbox(jobs=1) as box:
        assert run_tests(box, problem, right, problem.tests, test_timeout=3).passed == 3
        verdict = run_tests(box, problem, half, problem.tests, test_timeout=3)
        broken = run_tests(box, problem, "def similar_elements(a, b):\n    return (", problem.tests, test_timeout=3)
    assert (verdict.status, verdict.passed) == ("failed", 2)
    assert broken.status == "error" and broken.passed == 0 and "loading the program" in broken.detail


def test_humaneval_programs_from_functions_bodies_and_completions(tmp_path: Path) -> None:
    problems = load_benchmark("humaneval")
    assert len(problems) == 164
    first = problems[0]
    assert first.id == "HumanEval/0" and first.entry_point == "has_close_elements"
    assert len(first.public_tests) == 2  # the docstring's >>> examples
    body = "    for i, a in enumerate(numbers):\n        for b in numbers[i + 1:]:\n" \
           "            if abs(a - b) < threshold:\n                return True\n    return False\n"
    # A whole function keeps the prompt's imports (List) and redefines the stub.
    whole = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n" + body
    assert build_program(first, whole) == first.prompt + "\n" + whole
    assert build_program(first, body, is_completion=True) == first.prompt + body
    # Extracted code is dedented: a bare body with a top-level return continues the stub once re-indented.
    assert build_program(first, "return False") == first.prompt + "    return False"
    samples = write_jsonl(tmp_path / "samples.jsonl", [
        {"task_id": "HumanEval/0", "completion": body},
        {"task_id": "HumanEval/0", "response": f"Sure:\n```python\n{whole}```"},
        {"task_id": "HumanEval/0", "code": "def has_close_elements(numbers, threshold):\n    return None\n"},
    ])
    candidates = read_eval_candidates(samples, problems)
    with Sandbox(jobs=2) as box:
        verdicts = [run_tests(box, first, c.program, first.tests, test_timeout=3) for c in candidates]
        public = [run_tests(box, first, c.program, first.public_tests, test_timeout=3) for c in candidates]
    assert [v.status for v in verdicts] == ["passed", "passed", "failed"]
    assert [p.passed for p in public] == [2, 2, 0]
    assert candidates[0].candidate.valid and candidates[0].candidate.code.startswith(first.prompt)


def test_lcb_private_tests_never_unpickle_code(tmp_path: Path) -> None:
    class Exploit:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    payload = base64.b64encode(zlib.compress(pickle.dumps(Exploit()))).decode()
    with pytest.raises(InputError, match="refusing to load"):
        decode_test_cases(payload, "private_test_cases", "lcb.jsonl", 3)
    assert not (tmp_path / "pwned").exists()
    problems = write_jsonl(tmp_path / "lcb.jsonl", [{**SUM_PROBLEM, "private_test_cases": payload}])
    candidates = write_jsonl(tmp_path / "c.jsonl", [{"id": "sum", "code": "print(3)"}])
    result = runner.invoke(app, ["eval", str(candidates), "--problems", str(problems)])
    assert result.exit_code == 2
    assert "lcb.jsonl:1" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "pwned").exists()


def test_codecontests_columns_and_public_flags() -> None:
    problem = problem_from_record({
        "name": "cc", "description": "Echo.", "public_tests": {"input": ["a\n"], "output": ["a\n"]},
        "private_tests": {"input": ["b\n", "c\n"], "output": ["b\n", "c\n"]},
    }, "cc.jsonl", 1)
    assert [(t.kind, t.public) for t in problem.tests] == [("stdin", True), ("stdin", False), ("stdin", False)]
    marked = problem_from_record({"id": 1, "question": "Echo.", "tests": [
        {"input": "a", "output": "a", "public": True}, {"input": "b", "output": "b"}]}, "p.jsonl", 1)
    assert [t.public for t in marked.tests] == [True, False] and len(marked.public_tests) == 1


def test_python_api_evaluates_and_reports(tmp_path: Path) -> None:
    from codescaler_cli.evaluation import EvalConfig, evaluate

    problems = [problem_from_record({"id": "echo", "question": "Print the line you read.",
                                     "tests": [{"input": "a\n", "output": "a\n", "public": True},
                                               {"input": "b\n", "output": "b\n"}]}, "p.jsonl", 1)]
    samples = write_jsonl(tmp_path / "c.jsonl", [
        {"id": "echo", "code": "print('a')", "score": 3.0},
        {"id": "echo", "code": "print(input())", "score": 1.0},
        {"id": "echo", "code": "print(input())  # same program", "score": 1.0},
    ])
    candidates = read_eval_candidates(samples, problems)
    report = evaluate(candidates, EvalConfig(isolation="fallback", jobs=1, test_timeout=3))
    accuracy = {row.name: row.accuracy for row in report.strategies}
    # The reward model prefers the hard-coded answer, which passes the public test but not the hidden one.
    # Reward-weighted vote: the hard-coded answer's 3.0 outweighs the two equivalent programs' 1.0 + 1.0.
    assert accuracy == {"reward-model": 0.0, "first": 0.0, "random": pytest.approx(2 / 3), "vote": 1.0,
                        "reward-weighted-vote": 0.0, "public-tests": 0.0, "public-tests+reward-model": 0.0,
                        "oracle": 1.0}
    assert report.isolation == "fallback" and report.curve_sizes == [1, 2, 3]
    assert report.curves["oracle"] == [pytest.approx(2 / 3), 1.0, 1.0]
    records = [c.record() for c in candidates]
    assert [(r["status"], r["tests_passed"], r["public_passed"]) for r in records] == \
        [("failed", 1, 1), ("passed", 2, 1), ("passed", 2, 1)]
