"""Verdicts no candidate can forge: every cheat that made a wrong answer pass on the old in-process harness, and
one more per kind of cheat, ends `failed` or `error`, while honest programs of every judged style (HumanEval
`check`, docstring examples, MBPP asserts with setup code and classes, LiveCodeBench functional calls) pass.

Each cheat returns a wrong value, or none, and tries to make that pass: report verdicts itself, read the expected
outputs, replace the harness's `exec`, return an object equal to everything, exit before the asserts, or patch the
comparisons. Under bubblewrap and under the fallback alike, the tests run in the judge, which the candidate's
process cannot reach."""

from __future__ import annotations

import json
import os
import time

import pytest

from codescaler_cli.evaluation import Sandbox, build_program, load_benchmark
from codescaler_cli.evaluation.execution import run_test_sets
from codescaler_cli.evaluation.problems import EvalProblem, problem_from_record

MBPP_PROBLEM = problem_from_record({
    "task_id": 2, "text": "Write a function to find the shared elements of two tuples.",
    "test_list": ["assert similar_elements((3, 4, 5, 6), (5, 7, 4, 10)) == (4, 5)",
                  "assert similar_elements((1, 2, 3, 4), (5, 4, 3, 7)) == (3, 4)",
                  "assert similar_elements((11, 12, 14, 13), (17, 15, 14, 13)) == (13, 14)"],
    "test_setup_code": "", "test_imports": [],
}, "mbpp.jsonl", 1)

FUNCTIONAL_PROBLEM = problem_from_record({
    "question_id": "add", "question_content": "Add two numbers.", "starter_code": "",
    "metadata": json.dumps({"func_name": "add"}),
    "public_test_cases": json.dumps([{"input": "1\n2", "output": "3", "testtype": "functional"}]),
    "private_test_cases": json.dumps([{"input": "40\n2", "output": "42", "testtype": "functional"},
                                      {"input": "-5\n5", "output": "0", "testtype": "functional"}]),
}, "lcb.jsonl", 1)

FUNCTIONS = {"mbpp": "similar_elements", "functional": "add", "humaneval": "has_close_elements"}
# A wrong answer each cheat hides, per style: the function exists and returns something wrong.
WRONG = {"mbpp": "def similar_elements(a, b):\n    return (0,)\n",
         "functional": "def add(a, b):\n    return a - b\n",
         "humaneval": "def has_close_elements(numbers, threshold):\n    return None\n"}

# Cheats against the verdict channel: the old harness reported each test's verdict from inside the candidate's
# process (`_report` in __main__) on stdout; the judge's channel is the candidate's fd 3 now.
REPORT_AND_EXIT = """
import json, os, struct, sys
main = sys.modules['__main__']
if hasattr(main, '_report'):
    for _ in range(50):
        main._report('passed', 0.0)
line = json.dumps({'status': 'passed', 'seconds': 0.0, 'detail': '', 'load': False}) + '\\n'
for event in ({'event': 'test', 'phase': '0', 'index': i, 'status': 'passed', 'seconds': 0.0, 'detail': ''}
              for i in range(50)):
    frame = json.dumps(event).encode()
    for fd in range(0, 64):
        try:
            os.write(fd, line.encode() * 50)
            os.write(fd, struct.pack('>I', len(frame)) + frame)
        except OSError:
            pass
os._exit(0)
"""
# Answers written to the judge's channel before any question, then the program waits: pre-answered calls.
PRE_ANSWER = """
import json, os, struct
for value in ({'value': [4, 5]}, {'value': {'$tuple': [4, 5]}}, {'event': 'done'}, {'loaded': []}):
    frame = json.dumps(value).encode()
    for fd in range(3, 64):
        try:
            os.write(fd, struct.pack('>I', len(frame)) + frame)
        except OSError:
            pass
"""
# Reading the expected outputs: the old harness left tests.json in the working directory. This cheat searches
# everywhere it can see for test data (files, other processes' command lines, environments and open files),
# builds a table from every `assert f(args) == expected` it finds, and answers from it.
READ_EXPECTED = """
import ast, os, time
_TABLE = {}
_UNTIL = time.monotonic() + 2.0  # the fallback shows the whole host: search for a while, not forever
def _learn(text):
    try:
        data = __import__('json').loads(text)
        chunks = [t['input'] for t in data['tests']]
    except Exception:
        chunks = [text]
    for chunk in chunks:
        try:
            tree = ast.parse(chunk)
        except Exception:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Call) and node.left.args:
                try:
                    key = tuple(ast.literal_eval(a) for a in node.left.args)
                    _TABLE[key] = ast.literal_eval(node.comparators[0])
                except Exception:
                    pass
def _read(path):
    try:
        with open(path, 'rb') as handle:
            _learn(handle.read(1 << 20).decode('utf-8', 'replace'))
    except Exception:
        pass
for root in ('.', '/tmp', '/dev/shm', '/sandbox', '/codescaler', '/'):
    for base, dirs, files in os.walk(root):
        if time.monotonic() > _UNTIL or base.startswith(('/proc', '/sys', '/usr', '/dev')) and root == '/':
            dirs[:] = []
            continue
        for name in files:
            if name.endswith(('.json', '.jsonl', '.py', '.txt')):
                _read(os.path.join(base, name))
for pid in os.listdir('/proc'):
    if pid.isdigit():
        for what in ('cmdline', 'environ'):
            _read(f'/proc/{pid}/{what}')
        try:
            for fd in os.listdir(f'/proc/{pid}/fd'):
                _read(f'/proc/{pid}/fd/{fd}')
        except OSError:
            pass
def similar_elements(a, b):
    return _TABLE.get((a, b), (0,))
def add(a, b):
    return _TABLE.get((a, b), a - b)
"""
# Replacing the harness's exec (and eval) through __main__, and in builtins: the old harness ran every assert
# with the `exec` of its own module.
REPLACE_EXEC = """
import builtins, sys
main = sys.modules['__main__']
for target in (main, builtins):
    for name in ('exec', 'eval', 'compile'):
        try:
            setattr(target, name, lambda *args, **kwargs: None)
        except Exception:
            pass
"""
# The harness's own functions, replaced: whatever is asked, answer "True" (or report success).
REPLACE_HARNESS = """
import sys
main = sys.modules['__main__']
for name in list(vars(main)):
    if name.startswith('_') and callable(getattr(main, name)) and name not in ('__import__',):
        try:
            setattr(main, name, lambda *args, **kwargs: {'value': True})
        except Exception:
            pass
"""
# An answer equal to everything: the old harness compared with the candidate's own __eq__.
EQUAL_TO_EVERYTHING = """
class _Anything:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __hash__(self):
        return 0
    def __repr__(self):
        return 'True'
def similar_elements(a, b):
    return _Anything()
def add(a, b):
    return _Anything()
def has_close_elements(numbers, threshold):
    return _Anything()
"""
# The same, hidden in a subclass of a plain type: it crosses as the plain value it holds (a wrong one).
EQUAL_SUBCLASS = """
class _Tuple(tuple):
    def __eq__(self, other):
        return True
    __hash__ = tuple.__hash__
class _Int(int):
    def __eq__(self, other):
        return True
    __hash__ = int.__hash__
def similar_elements(a, b):
    return _Tuple((0,))
def add(a, b):
    return _Int(a - b)
def has_close_elements(numbers, threshold):
    return _Int(2)
"""
# Ending the process before the asserts run, with status 0.
EXIT_BEFORE_ASSERTS = "import os\nos._exit(0)\n"
# Ending it from inside the call: SystemExit(0), and killing every process the candidate can see.
EXIT_IN_CALL = """
import os, signal, sys
def similar_elements(a, b):
    sys.exit(0)
def add(a, b):
    try:
        os.kill(-1, signal.SIGKILL)
    finally:
        os._exit(0)
def has_close_elements(numbers, threshold):
    raise SystemExit(0)
"""
# Patching the comparison helpers and builtins the old harness used (json, its _shown and _json_value).
PATCH_COMPARISONS = """
import json, operator, sys
main = sys.modules['__main__']
json.loads = lambda *args, **kwargs: 0
operator.eq = lambda a, b: True
for name in ('_shown', '_json_value'):
    if hasattr(main, name):
        setattr(main, name, lambda value: 0)
"""
# Patching builtins the test code would use to compare: in the candidate's process, they are its own.
PATCH_BUILTINS = """
import builtins
builtins.isinstance = lambda *args: True
builtins.all = builtins.any = lambda *args: True
builtins.abs = lambda value: 0
builtins.AssertionError = type('AssertionError', (BaseException,), {})
"""
# Patching what decodes the judge's values and encodes the answers in the candidate's own process.
PATCH_WIRE = """
import sys
wire = sys.modules.get('wire')
if wire is not None:
    wire.encode = lambda value, **kwargs: {'$tuple': [4, 5]}
    wire.decode = lambda data, **kwargs: data
"""

CHEATS = {
    "report verdicts and exit": REPORT_AND_EXIT,
    "pre-answer the judge's calls": PRE_ANSWER,
    "read the expected outputs": READ_EXPECTED,
    "replace the harness's exec via __main__": REPLACE_EXEC,
    "replace the harness's functions": REPLACE_HARNESS,
    "an object equal to everything": EQUAL_TO_EVERYTHING,
    "a plain-type subclass equal to everything": EQUAL_SUBCLASS,
    "exit 0 before the asserts": EXIT_BEFORE_ASSERTS,
    "exit or kill everything inside the call": EXIT_IN_CALL,
    "patch the comparison helpers": PATCH_COMPARISONS,
    "patch builtins": PATCH_BUILTINS,
    "patch the wire encoding": PATCH_WIRE,
}


@pytest.fixture(scope="module", params=["bwrap", "fallback"])
def sandbox(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    with Sandbox(isolation=request.param, jobs=2) as box:
        yield box


@pytest.fixture(scope="module")
def humaneval_first() -> EvalProblem:
    return load_benchmark("humaneval")[0]


def verdicts(box: Sandbox, problem: EvalProblem, code: str) -> list:  # type: ignore[type-arg]
    """The public-tests and all-tests verdicts of one program, as `eval` runs them."""
    return run_test_sets(box, problem, build_program(problem, code), [problem.public_tests, problem.tests],
                         test_timeout=5)


def problems(humaneval: EvalProblem) -> dict[str, EvalProblem]:
    return {"mbpp": MBPP_PROBLEM, "functional": FUNCTIONAL_PROBLEM, "humaneval": humaneval}


@pytest.mark.parametrize("cheat", list(CHEATS))
def test_a_cheat_never_passes(sandbox: Sandbox, humaneval_first: EvalProblem, cheat: str) -> None:
    for style, problem in problems(humaneval_first).items():
        # The cheat's module-level code runs when the program loads; then the wrong function, unless the cheat
        # brings its own.
        code = CHEATS[cheat] if f"def {FUNCTIONS[style]}(" in CHEATS[cheat] else CHEATS[cheat] + "\n" + WRONG[style]
        compile(code, cheat, "exec")  # a cheat that cannot even load would prove nothing
        for result in verdicts(sandbox, problem, code):
            assert result.status in ("failed", "error"), (cheat, style, result)
            assert result.passed < result.total, (cheat, style, result)
            assert "SyntaxError" not in result.detail and "NameError" not in result.detail, (cheat, style, result)


# Tests that call builtins (MBPP's `set(...) == set(...)`, HumanEval's `abs(...) < 1e-6`, EvalPlus's loop over
# `enumerate(zip(inputs, results))`): a candidate that defines a builtin's name must not answer those calls.
SHADOWED_PROBLEMS = [
    problem_from_record({
        "task_id": 2, "text": "shared elements",
        "test_list": ["assert set(similar_elements((3, 4, 5, 6), (5, 7, 4, 10))) == set((4, 5))"],
        "test_setup_code": "", "test_imports": [],
    }, "mbpp.jsonl", 1),
    problem_from_record({
        "task_id": "HumanEval/4", "entry_point": "mean_absolute_deviation",
        "prompt": "from typing import List\n\ndef mean_absolute_deviation(numbers: List[float]) -> float:\n"
                  "    \"\"\"MAD.\"\"\"\n",
        "test": "def check(candidate):\n    assert abs(candidate([1.0, 2.0, 3.0]) - 2.0 / 3.0) < 1e-6\n",
    }, "humaneval.jsonl", 1),
    problem_from_record({
        "task_id": "HumanEval/0", "entry_point": "add", "prompt": "def add(a: int, b: int) -> int:\n    \"\"\"Add.\"\"\"\n",
        "test": "def check(candidate):\n    inputs = [[1, 2], [40, 2]]\n    results = [3, 42]\n"
                "    for i, (inp, exp) in enumerate(zip(inputs, results)):\n        assert candidate(*inp) == exp\n",
    }, "humaneval.jsonl", 2),
]
SHADOW_BUILTINS = """
def set(*args, **kwargs):
    return 0
def abs(*args):
    return 0
def zip(*args):
    raise ValueError(f"saw the expected outputs {args[-1]!r}")
def enumerate(*args):
    return []
def similar_elements(a, b):
    return 'WRONG'
def mean_absolute_deviation(numbers):
    return -12345.0
def add(a, b):
    return a - b
"""


def test_a_candidate_cannot_answer_the_builtins_tests_call(sandbox: Sandbox) -> None:
    for problem in SHADOWED_PROBLEMS:
        (result,) = run_test_sets(sandbox, problem, build_program(problem, SHADOW_BUILTINS), [problem.tests],
                                  test_timeout=5)
        assert result.status == "failed" and result.passed == 0, (problem.id, result)
        assert "saw the expected outputs" not in result.detail, (problem.id, result)
    # A program that defines a builtin's name for its own use still passes: only the tests' calls are the judge's.
    problem = SHADOWED_PROBLEMS[1]
    honest = ("import builtins\ndef abs(x):\n    return builtins.abs(x)\n"
              "def mean_absolute_deviation(numbers):\n    mean = sum(numbers) / len(numbers)\n"
              "    return sum(abs(x - mean) for x in numbers) / len(numbers)\n")
    (result,) = run_test_sets(sandbox, problem, build_program(problem, honest), [problem.tests], test_timeout=5)
    assert result.status == "passed", result


def test_honest_programs_of_every_judged_style_pass(sandbox: Sandbox, humaneval_first: EvalProblem) -> None:
    honest = {
        "mbpp": "def similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b)))\n",
        "functional": "def add(a, b):\n    return a + b\n",
        "humaneval": "def has_close_elements(numbers, threshold):\n    return any(abs(a - b) < threshold "
                     "for i, a in enumerate(numbers) for b in numbers[i + 1:])\n",
    }
    for style, problem in problems(humaneval_first).items():
        public, everything = verdicts(sandbox, problem, honest[style])
        assert everything.status == "passed" and everything.passed == everything.total > 0, (style, everything)
        assert public.status == "passed" and public.passed == public.total > 0, (style, public)


def test_judged_programs_keep_the_python_semantics_tests_rely_on(sandbox: Sandbox) -> None:
    """Tuples stay tuples, dict keys keep their types, big integers and floats cross exactly, the candidate's
    exceptions reach the test code as the builtin exception they derive from, objects the candidate makes can
    be used by name, and objects of classes the problem's setup code defines cross by their attributes."""
    problem = problem_from_record({
        "task_id": "semantics", "text": "Exercise the wire.",
        "test_list": [
            "assert shapes() == ((1, 2), {1: 'a', (2, 3): [4.5, None]}, {1, 2}, frozenset({3}), b'x', 2 ** 200, "
            "-0.0, 1e308, complex(1, 2))",
            "assert math.isinf(infinity()) and math.isnan(not_a_number())",
            "try:\n    fails()\nexcept ValueError as exc:\n    assert exc.args == ('bad', 3)\nelse:\n"
            "    raise AssertionError('no exception')",
            "pair = Pair(3, 4)\nassert pair.total() == 7 and pair.first == 3\nassert combine(pair, Pair(1, 1)) == 9",
            "assert depth(Node(1, Node(2, Node(3, None)))) == 3",
            "assert isinstance(shapes()[0], tuple) and pair_type() == 'Pair'",
        ],
        "test_setup_code": "class Node:\n    def __init__(self, value, next):\n        self.value = value\n"
                           "        self.next = next\n",
        "test_imports": ["import math"],
    }, "mbpp.jsonl", 1)
    program = """
class MyError(ValueError):
    pass
def shapes():
    return ((1, 2), {1: 'a', (2, 3): [4.5, None]}, {1, 2}, frozenset({3}), b'x', 2 ** 200, -0.0, 1e308, complex(1, 2))
def infinity():
    return float('inf')
def not_a_number():
    return float('nan')
def fails():
    raise MyError('bad', 3)
class Pair:
    def __init__(self, first, second):
        self.first, self.second = first, second
    def total(self):
        return self.first + self.second
def combine(a, b):
    return a.total() + b.total()
def depth(node):
    return 0 if node is None else 1 + depth(node.next)
def pair_type():
    return type(Pair(1, 2)).__name__
"""
    (result,) = run_test_sets(sandbox, problem, program, [problem.tests], test_timeout=5)
    assert (result.status, result.passed, result.total) == ("passed", 6, 6), result


def test_a_judge_server_that_died_is_replaced() -> None:
    # Fault injection: the judge server never ends on its own, but if it did, the next program gets a new one.
    with Sandbox(isolation="bwrap", jobs=1) as box:
        box._judge.process.kill()  # type: ignore[union-attr]
        box._judge.process.wait()  # type: ignore[union-attr]
        public, everything = verdicts(box, MBPP_PROBLEM, "def similar_elements(a, b):\n"
                                                         "    return tuple(sorted(set(a) & set(b)))\n")
        assert (public.status, everything.status) == ("passed", "passed")


def test_a_value_that_cannot_be_shown_is_a_wrong_answer(sandbox: Sandbox) -> None:
    # 10**5000 is over Python's limit for converting an int to decimal text: json.dumps and repr() both raise.
    # It is not the expected 3, so the test fails, as under LiveCodeBench (its `==` decides, not the rendering).
    (result,) = run_test_sets(sandbox, FUNCTIONAL_PROBLEM, "def add(a, b):\n    return 10 ** 5000\n",
                              [FUNCTIONAL_PROBLEM.tests], test_timeout=5)
    assert result.status == "failed" and result.passed == 0, result
    assert "int that cannot be shown" in result.detail, result


# A forged load error whose description costs the judge unbounded CPU to decode: 50,000 bases to try, each with a
# 100,000-element tuple of arguments. The judge must give up within its timer, and never outlive the verdict.
FORGED_LOAD_ERROR = """
import json, os
fd = [f for f in range(3, 64) if os.path.exists("/proc/self/fd/%d" % f)
      and os.readlink("/proc/self/fd/%d" % f).startswith("socket:")][0]
args = {"$tuple": [list(range(100000))]}
msg = {"load_error": {"type": "X", "builtin": ["UnicodeDecodeError"] * 50000 + ["ValueError"], "args": args,
                      "message": "m"}}
data = json.dumps(msg).encode()
os.write(fd, len(data).to_bytes(4, "big") + data)
os._exit(0)
"""


def forked_judges(box: Sandbox) -> list[int]:
    """The judges the judge server forked that are still alive: the server's descendants that are judge.py
    processes whose parent is one too (the server's own parent is bwrap, or us)."""
    parents: dict[int, int] = {}
    judges: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if fields[0] in (b"Z", b"X"):  # exited: it spins no more
            continue
        parents[int(entry)] = int(fields[1])
        if b"judge.py" in command and not command.split(b"\0")[0].endswith(b"bwrap"):
            judges.add(int(entry))

    def below_server(pid: int) -> bool:
        return parents.get(pid) in judges

    def descends_from(pid: int, root: int) -> bool:
        while pid in parents and pid != root:
            pid = parents[pid]
        return pid == root

    root = box._judge.process.pid  # type: ignore[union-attr]
    return [pid for pid in judges if below_server(pid) and descends_from(pid, root)]


def test_a_forged_load_error_cannot_keep_the_judge_busy(sandbox: Sandbox) -> None:
    started = time.monotonic()
    for result in verdicts(sandbox, FUNCTIONAL_PROBLEM, FORGED_LOAD_ERROR):
        assert result.status in ("timeout", "error"), result
    # The verdict is in: every judge of that program ends, on its own, within the test's timer (not the hour the
    # decoding would take). Waited for, with a generous bound.
    while forked_judges(sandbox):
        assert time.monotonic() - started < 60, f"judges still running: {forked_judges(sandbox)}"
        time.sleep(0.1)
    # And the next honest program is judged as ever.
    (result,) = run_test_sets(sandbox, FUNCTIONAL_PROBLEM, "def add(a, b):\n    return a + b\n",
                              [FUNCTIONAL_PROBLEM.tests], test_timeout=5)
    assert result.status == "passed", result
