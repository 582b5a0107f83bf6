"""The benchmarks' own grading rules (evaluation/grading.py): for each rule, cases a program passes or fails only
because of that rule. Programs here are the tests' own, run in a child Python to show what a rule's program text
does (a stdin program through the harness's own way of serving input, `harness/stdio.py`); the comparisons are
called as the judge calls them, on plain values. tests/test_benchmark_rules.py runs the same rules through
`codescaler eval`."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.sample_candidates import LEETCODE_SUBARRAY_SUM as LEETCODE

from codescaler_cli.evaluation import harness
from codescaler_cli.evaluation.grading import (
    GRADING_RULES,
    LCB_IMPORT_HEADER,
    RLLM_IMPORT_HEADER,
    evalplus_equal,
    evalplus_output_ok,
    evalplus_plus_passed,
    evalplus_task_timeout,
    evalplus_time_limit,
    grading_rule,
    lcb_call_arguments,
    lcb_calls_solution_method,
    lcb_functional_equal,
    lcb_functional_program,
    lcb_global_timeout,
    lcb_stdin_equal,
    lcb_stdin_program,
    mbpp_program,
)


def run(program: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", program], input=stdin, capture_output=True, text=True, timeout=120)


# A stdin program as LiveCodeBench's runner (or rllm's copy) runs it: load it once, then call its wrapped function
# with the test's input served by the harness (`run_with_input`), printing what it printed.
STDIN_RUNNER = """
import sys, types
sys.path.insert(0, sys.argv[1])
import stdio
module = types.ModuleType("tmp_sol")
exec(compile(open(sys.argv[2]).read(), "solution.py", "exec"), module.__dict__)
text = sys.stdin.read()
sys.stdout.write(stdio.run_with_input(module.wrapped_function, text, sys.argv[3]))
"""


def run_stdin_program(program: str, stdin: str, tmp_path: Path,
                      flavour: str = "livecodebench") -> subprocess.CompletedProcess[str]:
    (tmp_path / "solution.py").write_text(program)
    return subprocess.run([sys.executable, "-c", STDIN_RUNNER, str(Path(harness.__file__).parent),
                           str(tmp_path / "solution.py"), flavour], input=stdin, capture_output=True, text=True,
                          timeout=120)


def test_lcb_stdin_comparison_strips_lines_and_compares_numbers_as_decimals() -> None:
    assert lcb_stdin_equal("1 2\n3\n", "  1 2  \n3.000\n\n")  # stripped lines; 3.000 == 3 as Decimals
    assert lcb_stdin_equal("0.5", "5e-1") and lcb_stdin_equal("1 2", "1   2")  # numbers, split on whitespace
    assert not lcb_stdin_equal("a b", "a  b")  # words are compared as the stripped line
    assert not lcb_stdin_equal("YES\nNO", "YES\n\nNO")  # a blank line inside the output is a line
    assert not lcb_stdin_equal("50000000000000000", "50000000000000001")  # exact, where float closeness is not
    assert math.isclose(50000000000000000, 50000000000000001)
    assert not lcb_stdin_equal("1", "") and not lcb_stdin_equal("nan", "NaN") and lcb_stdin_equal("nan", "nan")


def test_lcb_functional_comparison_is_python_equality_with_a_top_level_tuple_as_a_list() -> None:
    assert lcb_functional_equal("[1, 2]", (1, 2))
    assert not lcb_functional_equal("[[1, 2]]", [(1, 2)])  # only the top level
    assert lcb_functional_equal("0.30000000000000004", 0.1 + 0.2) and not lcb_functional_equal("0.3", 0.1 + 0.2)
    assert lcb_functional_equal("true", True) and lcb_functional_equal("1", True) and lcb_functional_equal("2", 2.0)
    assert lcb_call_arguments('[1, 2]\n"x"') == [[1, 2], "x"]
    with pytest.raises(ValueError):
        lcb_call_arguments("[1]\n")  # LiveCodeBench fails the whole program on a blank argument line too
    assert lcb_calls_solution_method("# class Solution is textual\ndef f(): pass")
    assert not lcb_calls_solution_method("def maxSum(nums): pass")



def test_lcb_header_lets_leetcode_programs_use_typing_and_collections_unimported() -> None:
    call = "\nprint(Solution().subarraySum(*[[1, 1, 1], 2]))\n"
    bare = run(LEETCODE + call)
    assert bare.returncode != 0 and "NameError: name 'List' is not defined" in bare.stderr
    headed = run(lcb_functional_program(LEETCODE) + call)
    assert headed.returncode == 0 and lcb_functional_equal("2", int(headed.stdout))
    assert lcb_functional_program(LEETCODE).startswith(LCB_IMPORT_HEADER + "\n\n")


def test_lcb_stdin_programs_run_wrapped_in_a_function_as_lcb_runs_them(tmp_path: Path) -> None:
    uses_global = "visits = 0\ndef bump():\n    global visits\n    visits += 1\nbump()\nprint(visits)\n"
    assert run(uses_global).stdout == "1\n"
    wrapped = run_stdin_program(lcb_stdin_program(uses_global), "", tmp_path)
    assert wrapped.returncode != 0 and "NameError" in wrapped.stderr  # `visits` became a local of wrapped_function
    deep = "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\nprint(depth(int(input())))\n"
    assert run(deep, "5000\n").returncode != 0  # Python's default recursion limit
    assert run_stdin_program(lcb_stdin_program(deep), "5000\n", tmp_path).stdout == "5000\n"  # the header: 50000
    exits = "import sys\nprint(42)\nsys.exit(1)\n"
    assert run(exits).returncode == 1
    ended = run_stdin_program(lcb_stdin_program(exits), "", tmp_path)
    assert ended.returncode == 0 and lcb_stdin_equal("42", ended.stdout)  # SystemExit ends the program, no error
    main = "def main():\n    print(int(input()) * 2)\nif __name__ == '__main__':\n    main()\n"
    assert run_stdin_program(lcb_stdin_program(main), "21\n", tmp_path).stdout == "42\n"
    assert lcb_stdin_program("print(1") == "print(1"  # unparsable: unchanged, and it fails to compile there too


def test_lcb_and_rllm_serve_stdin_each_in_its_own_way(tmp_path: Path) -> None:
    two_lines = "1\n2\n"

    def output(code: str, flavour: str) -> str:
        done = run_stdin_program(lcb_stdin_program(code), two_lines, tmp_path, flavour)
        return done.stdout if done.returncode == 0 else done.stderr.strip().splitlines()[-1]

    # sys.stdin.buffer: LiveCodeBench's gives its first line every time; rllm's stdin has none.
    buffered = "import sys\ninput = sys.stdin.buffer.readline\nprint(int(input()) + int(input()))\n"
    assert output(buffered, "livecodebench") == "2\n"
    assert "has no attribute 'buffer'" in output(buffered, "rllm")
    # Iterating over sys.stdin: LiveCodeBench's object is not iterable, rllm's StringIO is.
    iterated = "import sys\nprint(sum(int(line) for line in sys.stdin))\n"
    assert "is not iterable" in output(iterated, "livecodebench") and output(iterated, "rllm") == "3\n"
    # readlines(): LiveCodeBench's splits on newlines and keeps the empty last piece.
    listed = "import sys\nprint(sum(int(line) for line in sys.stdin.readlines()))\n"
    assert "invalid literal" in output(listed, "livecodebench") and output(listed, "rllm") == "3\n"
    # input() and sys.stdin.read() behave as on a file in both.
    for flavour in ("livecodebench", "rllm"):
        assert output("print(int(input()) + int(input()))\n", flavour) == "3\n"
        assert output("import sys\nprint(sum(map(int, sys.stdin.read().split())))\n", flavour) == "3\n"


def test_rllm_header_of_deepcoder_and_codescaler_brings_numpy_and_pandas(tmp_path: Path) -> None:
    program = "values = np.array(list(map(int, input().split())))\nprint(int(values.sum()), len(pd.Series(values)))\n"
    for name in ("deepcoder", "codescaler"):
        rule = grading_rule(name)
        assert rule.header == RLLM_IMPORT_HEADER and rule.stdin_program is not None and rule.stdin_input == "rllm"
        done = run_stdin_program(rule.stdin_program(program), "1 2 3\n", tmp_path, rule.stdin_input)
        assert done.returncode == 0 and lcb_stdin_equal("6 3", done.stdout), done.stderr
        assert rule.functional_program is not None and rule.functional_program("x = 1").startswith(RLLM_IMPORT_HEADER)
    lcb = grading_rule("livecodebench")
    assert lcb.stdin_program is not None
    done = run_stdin_program(lcb.stdin_program(program), "1 2 3\n", tmp_path)
    assert "NameError: name 'np' is not defined" in done.stderr
    # Upstream's limits per test: LiveCodeBench and DeepCoder 6 s, the CodeScaler paper's evaluation 2 s.
    assert [GRADING_RULES[name].test_timeout for name in ("livecodebench", "deepcoder", "codescaler")] == [6, 6, 2]
    assert lcb_global_timeout(6, 10) == 75


def test_mbpp_asserts_run_after_the_setup() -> None:
    code = "def circle(r):\n    return math.pi * r * r\n"
    asserts = ["assert abs(circle(1) - 3.14159) < 1e-3"]
    assert run(mbpp_program(code, "import math", asserts)).returncode == 0
    assert "NameError" in run(mbpp_program(code, "", asserts)).stderr


def test_evalplus_compares_floats_within_atol_and_types_exactly() -> None:
    assert evalplus_equal(0.3, 0.1 + 0.2, 0)  # atol 0 with a float output: 1e-6 is enforced
    assert not evalplus_equal(1.0, 1.00001, 0)
    assert evalplus_equal(1.0, 1.00001, 1e-4)  # the task's own atol
    assert not evalplus_equal([1.0, 2.0], (1.0, 2.0), 1e-6)  # close, but a tuple is not a list
    assert not evalplus_equal([1.0], [1.0, 1.0], 1e-3)
    assert not evalplus_equal(2, 2.0000001, 0)  # an int output gets no tolerance
    assert evalplus_equal([1, (2, 3)], [1, (2, 3)], 0) and not evalplus_equal([1, [2, 3]], [1, (2, 3)], 0)
    assert not evalplus_equal("a", "b", 1e-6)  # allclose cannot compare them: a failed input


def test_evalplus_special_oracles() -> None:
    shared = [(3, 4, 5, 6), (5, 7, 4, 10)]
    assert evalplus_output_ok("mbpp", "similar_elements", shared, (4, 5), (5, 4), 0)  # compared as sets
    assert not evalplus_output_ok("mbpp", "other_task", shared, (4, 5), (5, 4), 0)
    assert evalplus_output_ok("mbpp", "check_str", ["abc"], True, "a match object", 0)  # only "not None" counts
    assert not evalplus_output_ok("mbpp", "check_str", ["abc"], True, None, 0)
    assert evalplus_output_ok("mbpp", "sum_div", [7], 1, 0, 0)
    assert not evalplus_output_ok("mbpp", "sum_div", [7], 1, 2, 0)
    assert evalplus_output_ok("mbpp", "are_equivalent", [36, 57], False, True, 0)
    # surface_Area(3, 4): the canonical solution says 33; the other reading of "height" gives 35.
    assert evalplus_output_ok("mbpp", "surface_Area", [3, 4], 33, 35, 0)
    assert not evalplus_output_ok("mbpp", "surface_Area", [3, 4], 33, 34, 0)
    assert evalplus_output_ok("humaneval", "find_zero", [[1.0, 2.0]], -0.5, -0.5000001, 1e-6)  # |poly(x)| <= atol
    assert not evalplus_output_ok("humaneval", "find_zero", [[1.0, 2.0]], -0.5, 0.0, 1e-6)
    assert evalplus_time_limit(0.1) == 4.0 and evalplus_time_limit(2.0) == 8.0
    assert evalplus_task_timeout([4.0] * 3) == 14.0 and evalplus_task_timeout([4.0] * 100) == 62.0
    assert evalplus_plus_passed(True, True) and not evalplus_plus_passed(True, False)
