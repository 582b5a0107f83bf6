"""The benchmarks' own grading rules: the program text each official harness runs, how it compares what a program
produced with what was expected, and its time limits.

Nothing here runs a program. `execution.py` builds each candidate's program with its problem's rule and runs its
tests in the sandbox: the candidate's process answers with plain values (a function's return value, or what a stdin
program printed), and the judge (harness/judge.py), a process the candidate cannot reach, compares them with the
rule's comparison. The comparisons the judge applies live in `harness/comparisons.py` (it cannot import this
package) and are exported here; how a stdin program is fed its input lives in `harness/stdio.py`. Each rule says
which harness it follows and where that harness's code lives:

- `livecodebench`: LiveCodeBench's `lcb_runner/evaluation/testing_util.py` (github:LiveCodeBench/LiveCodeBench).
- `deepcoder`: DeepCoder's copy of it in rllm (`rllm/rewards/code_utils/livecodebench.py`, `lcb_check_correctness_v2`,
  6 s per test), with a different import header (numpy and pandas included).
- `codescaler`: the CodeScaler paper's evaluation (`recipe/codescaler/eval.py` calls the rllm copy with 2 s per test).
- `humaneval`: openai/human-eval's `execution.py`.
- `mbpp`: asserts after the program (MBPP ships no harness; bigcode-evaluation-harness's, 3 s).
- `evalplus`: EvalPlus's `evalplus/eval/__init__.py` (`unsafe_execute`, `untrusted_check`) and `evaluate.py`.
"""

from __future__ import annotations

import ast
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .harness import stdio
from .harness.comparisons import lcb_call_arguments, lcb_functional_equal, lcb_stdin_equal

# ---------------------------------------------------------------------------------------------------------------
# Import headers: the text each harness puts in front of every program.

# LiveCodeBench, lcb_runner/evaluation/testing_util.py: `import_string`, character for character.
LCB_IMPORT_HEADER = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\nfrom heapq import *\n"
    "from bisect import *\nfrom copy import *\nfrom math import *\nfrom random import *\nfrom statistics import *\n"
    "from itertools import *\nfrom functools import *\nfrom operator import *\nfrom io import *\nfrom sys import *\n"
    "from json import *\nfrom builtins import *\nfrom typing import *\nimport string\nimport re\nimport datetime\n"
    "import collections\nimport heapq\nimport bisect\nimport copy\nimport math\nimport random\nimport statistics\n"
    "import itertools\nimport functools\nimport operator\nimport io\nimport sys\nimport json\n"
    "sys.setrecursionlimit(50000)\n"
)

# rllm (DeepCoder) rllm/rewards/code_utils/livecodebench.py `BASE_IMPORTS`, which CodeScaler's
# recipe/codescaler/livecodebench.py copies. It imports numpy and pandas: the interpreter that runs the programs
# must have both, or every program fails on its first line.
RLLM_IMPORT_HEADER = """from itertools import accumulate, chain, combinations, count, permutations, product, groupby, islice, repeat
from copy import deepcopy
from string import ascii_lowercase, ascii_uppercase
from math import floor, log2, log10, sqrt, comb, gcd, ceil, inf, isqrt, factorial, atan2, pi
from collections import defaultdict, deque, Counter
from bisect import bisect, bisect_left, bisect_right, insort
from heapq import heappush, heappop, heapify, merge, nlargest, nsmallest, heapreplace
from functools import reduce, cache, lru_cache, cmp_to_key, reduce
from random import randrange, shuffle
from operator import itemgetter, sub, xor, or_
from re import search as re_search  # Assuming 're' refers to a regex search
from os.path import commonprefix
from typing import List, Tuple, Dict, Set, Optional, Union, Any, Callable, Iterable, Iterator, Generator, Deque
import copy
import string
import math
import collections
import bisect
import heapq
import functools
import random
import itertools
import operator
import re
import datetime
from time import time
import numpy as np
import pandas as pd
from math import log, prod  # 'log' and 'prod' are functions in the math module
from collections import deque, defaultdict, Counter, OrderedDict
from itertools import accumulate, permutations, combinations, product, groupby, islice, chain, repeat, zip_longest, cycle, pairwise
from functools import lru_cache, reduce, partial
from operator import iand
import sys
import io, os
"""


# ---------------------------------------------------------------------------------------------------------------
# LiveCodeBench (and the rllm copy DeepCoder and CodeScaler use: same program shapes and comparisons)


def lcb_stdin_program(code: str, header: str = LCB_IMPORT_HEADER) -> str:
    """The program LiveCodeBench loads for a stdin problem: `clean_if_name`, then `make_function`.

    A final `if __name__ == '__main__':` block is replaced by its body; every top-level statement except imports
    moves into `def wrapped_function():`, after the header and the program's own imports (so a name the program
    assigns at top level is a local of that function, and `global x` in a helper fails as it fails in
    LiveCodeBench). A program `ast` cannot parse is returned unchanged, as LiveCodeBench does (it then fails to
    compile). Loading it runs only the header and the imports; each test then calls `wrapped_function()` with the
    test's input served as the harness serves it (`harness/stdio.py`, `run_with_input`), `SystemExit` counting as
    a normal end.
    """
    code = _clean_if_name(code)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return code
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    others = [node for node in tree.body if not isinstance(node, (ast.Import, ast.ImportFrom))]
    function = ast.FunctionDef(
        name="wrapped_function",
        args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
        body=others, decorator_list=[], lineno=-1, **({"type_params": []} if sys.version_info >= (3, 12) else {}))
    try:
        wrapped = header + "\n" + ast.unparse(imports) + "\n" + ast.unparse(function)  # type: ignore[arg-type]
    except (ValueError, RecursionError):
        return code
    return wrapped + "\n"


def _clean_if_name(code: str) -> str:
    try:
        tree = ast.parse(code)
        last = tree.body[-1]
        if isinstance(last, ast.If) and ast.unparse(last.test).strip() == "__name__ == '__main__'":
            return ast.unparse(tree.body[:-1]) + "\n" + ast.unparse(last.body)  # type: ignore[arg-type]
    except Exception:  # LiveCodeBench keeps the code as it is whenever this fails
        pass
    return code


def lcb_functional_program(code: str, header: str = LCB_IMPORT_HEADER) -> str:
    """The program LiveCodeBench loads for a functional (LeetCode) problem: the header, a blank line, the code."""
    return header + "\n\n" + code


def lcb_calls_solution_method(code: str) -> bool:
    """Where LiveCodeBench finds the function to call: on a `Solution()` instance when the text `class Solution`
    occurs anywhere in the code (its own test, textual), else at module level."""
    return "class Solution" in code


def lcb_global_timeout(test_timeout: float, tests: int) -> float:
    """The whole process's limit around LiveCodeBench's per-test alarms: (timeout + 1) x tests + 5 seconds."""
    return (test_timeout + 1) * tests + 5


# ---------------------------------------------------------------------------------------------------------------
# human-eval and MBPP


def humaneval_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """human-eval's check program: prompt + completion + test + `check(entry_point)`; it passes when it runs to the
    end without an exception within the time limit."""
    return prompt + completion + "\n" + test + "\n" + f"check({entry_point})"


def mbpp_program(code: str, setup: str, asserts: Sequence[str]) -> str:
    """An MBPP check program: the solution, the setup (test_imports, test_setup_code), then its asserts."""
    return "\n".join([code, setup, *asserts]) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# EvalPlus


EVALPLUS_MIN_TIME_LIMIT = 4.0  # evalplus/config.py DEFAULT_MIN_TIME_LIMIT
EVALPLUS_TIME_LIMIT_FACTOR = 4.0  # evalplus/config.py DEFAULT_GT_TIME_LIMIT_FACTOR
EVALPLUS_TASK_TIMEOUT = 60.0  # EVALPLUS_TIMEOUT_PER_TASK's default: the cap on one process (base or plus inputs)
EVALPLUS_MIN_FLOAT_ATOL = 1e-6  # enforced when a task's atol is 0 and its expected output is a float (or floats)

# evalplus/eval/_special_oracle.py: MBPP+ tasks graded by a rule of their own.
MBPP_PLUS_SET_EQUAL_TASKS = frozenset({"similar_elements", "find_char_long", "common_in_nested_lists",
                                       "extract_singly", "larg_nnum", "intersection_array", "find_dissimilar",
                                       "Diff"})
MBPP_PLUS_NOT_NONE_TASKS = frozenset({"check_str", "text_match_three", "text_starta_endb"})


def evalplus_is_floats(value: Any) -> bool:
    """EvalPlus's `is_floats`: a float, a non-empty list or tuple of floats only, or a float numpy array."""
    if isinstance(value, float):
        return True
    if isinstance(value, (list, tuple)) and value:
        return all(isinstance(item, float) for item in value)
    dtype = getattr(value, "dtype", None)
    return dtype is not None and str(dtype) in ("float64", "float32")


def evalplus_equal(expected: Any, actual: Any, atol: float) -> bool:
    """EvalPlus's generic verdict for one input (`unsafe_execute`).

    Equal under `==`, or, when that fails and the tolerance is not zero: the same type, the same length for lists
    and tuples, and `numpy.allclose(actual, expected, rtol=1e-07, atol=atol)`. A zero `atol` becomes 1e-6 when the
    expected output is a float or a list/tuple of floats.
    """
    try:
        return _evalplus_tolerant(expected, actual, atol, bool(actual == expected))
    except Exception:  # EvalPlus counts an exception while comparing as a failed input
        return False


def _evalplus_tolerant(expected: Any, actual: Any, atol: float, exact: bool) -> bool:
    if atol == 0 and evalplus_is_floats(expected):
        atol = EVALPLUS_MIN_FLOAT_ATOL
    if exact or atol == 0:
        return exact
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, (list, tuple)) and len(actual) != len(expected):
        return False
    import numpy

    return bool(numpy.allclose(actual, expected, rtol=1e-07, atol=atol))


def evalplus_output_ok(dataset: str, entry_point: str, inputs: Sequence[Any], expected: Any, actual: Any,
                       atol: float) -> bool:
    """EvalPlus's verdict for one input, special oracles included (`dataset`: "humaneval" or "mbpp").

    MBPP+: `are_equivalent` always passes; `sum_div` also passes with 0; `surface_Area` and `digit_distance_nums`
    also pass with their alternative reading of the task; the set-equal tasks compare as sets; the not-None tasks
    compare `out is not None` with the expected boolean. HumanEval+ `find_zero` passes when |poly(xs, out)| <= atol.
    Everything else: `evalplus_equal`. `expected` is what the canonical solution returned (for the not-None tasks,
    whether it returned something other than None, as EvalPlus records it).
    """
    try:
        if dataset == "humaneval" and entry_point == "find_zero":
            return abs(_poly(*inputs, actual)) <= atol
        exact = bool(actual == expected)
        if dataset == "mbpp":
            if entry_point == "are_equivalent":
                exact = True
            elif entry_point == "sum_div":
                exact = exact or actual == 0
            elif entry_point == "surface_Area":
                exact = exact or abs(actual - _surface_area(*inputs)) <= atol
            elif entry_point == "digit_distance_nums":
                exact = exact or actual == _digit_distance_nums(*inputs)
            elif entry_point in MBPP_PLUS_SET_EQUAL_TASKS:
                exact = set(actual) == set(expected)
            elif entry_point in MBPP_PLUS_NOT_NONE_TASKS:
                exact = actual == expected if isinstance(actual, bool) else expected == (actual is not None)
        return _evalplus_tolerant(expected, actual, atol, bool(exact))
    except Exception:
        return False


def _poly(xs: Sequence[float], x: float) -> float:
    return sum(coefficient * math.pow(x, power) for power, coefficient in enumerate(xs))


def _surface_area(base_edge: float, height: float) -> int:
    slant_height = math.sqrt((base_edge / 2) ** 2 + height ** 2)
    return round(base_edge ** 2 + 4 * (base_edge * slant_height) / 2)


def _digit_distance_nums(first: int, second: int) -> int:
    a, b = str(first), str(second)
    width = max(len(a), len(b))
    return sum(abs(int(x) - int(y)) for x, y in zip(a.zfill(width), b.zfill(width)))


def evalplus_time_limit(reference_seconds: float) -> float:
    """The limit for one input: 4 x the canonical solution's time on it, at least 4 seconds."""
    return max(EVALPLUS_MIN_TIME_LIMIT, EVALPLUS_TIME_LIMIT_FACTOR * reference_seconds)


def evalplus_task_timeout(input_limits: Sequence[float]) -> float:
    """The limit for the process running one input set (base or plus): the sum of the inputs' limits, capped at
    60 s, plus EvalPlus's 2 s of slack."""
    return min(EVALPLUS_TASK_TIMEOUT, sum(input_limits)) + 2


def evalplus_plus_passed(base_passed: bool, plus_passed: bool) -> bool:
    """A sample counts for HumanEval+ / MBPP+ only when it passes the base inputs and the plus inputs."""
    return base_passed and plus_passed


# ---------------------------------------------------------------------------------------------------------------
# The rules, by name


@dataclass(frozen=True)
class GradingRule:
    """How one official harness turns a candidate into a verdict.

    `header` goes in front of every program; `stdin_program` / `functional_program` build the program a stdin or
    functional problem loads (None: the candidate's code as it is); `stdin_input` is how a stdin test's input is
    served (`harness/stdio.py`: "livecodebench" or "rllm"); `stdin_comparison` / `functional_comparison` name the
    judge's comparisons (`harness/judge.py`, COMPARISONS) of a stdin program's output and a function's value.
    `test_timeout` is the harness's limit per test in seconds (for a check program: the whole check), unless the
    user sets --test-timeout; `call_timeout` limits each call a check makes to the candidate's code within that
    (EvalPlus: each input). `preload`: modules the programs import (the header's), imported once per sandbox
    process instead of in every program.
    """

    name: str
    harness: str
    test_timeout: float
    header: str = ""
    stdin_program: Callable[[str], str] | None = None
    functional_program: Callable[[str], str] | None = None
    stdin_input: str = stdio.LIVECODEBENCH
    stdin_comparison: str = "lcb_output"
    functional_comparison: str = "lcb_value"
    call_timeout: float | None = None
    preload: tuple[str, ...] = ()
    summary: str = ""


def _rllm_stdin_program(code: str) -> str:
    return lcb_stdin_program(code, RLLM_IMPORT_HEADER)


def _rllm_functional_program(code: str) -> str:
    return lcb_functional_program(code, RLLM_IMPORT_HEADER)


# What LiveCodeBench's runner imports to feed stdin (`unittest.mock`) and its header's one costly module.
_LCB_PRELOAD = ("unittest.mock", "statistics")
_RLLM_PRELOAD = ("unittest.mock", "numpy", "pandas")

GRADING_RULES: dict[str, GradingRule] = {rule.name: rule for rule in (
    GradingRule("livecodebench", "github:LiveCodeBench/LiveCodeBench lcb_runner/evaluation/testing_util.py", 6.0,
                LCB_IMPORT_HEADER, lcb_stdin_program, lcb_functional_program, stdio.LIVECODEBENCH,
                preload=_LCB_PRELOAD,
                summary="import header; stdin lines stripped, exact or equal as Decimals; functional return == JSON "
                "value (top-level tuple as list); 6 s per test; pass = every test"),
    GradingRule("deepcoder", "github:agentica-project/rllm rllm/rewards/code_utils/livecodebench.py "
                "(lcb_check_correctness_v2)", 6.0, RLLM_IMPORT_HEADER, _rllm_stdin_program,
                _rllm_functional_program, stdio.RLLM, preload=_RLLM_PRELOAD,
                summary="LiveCodeBench's comparisons with rllm's header (numpy, pandas) and stdin; 6 s per test"),
    GradingRule("codescaler", "CodeScaler recipe/codescaler/eval.py -> lcb_check_correctness(tests, code, 2)", 2.0,
                RLLM_IMPORT_HEADER, _rllm_stdin_program, _rllm_functional_program, stdio.RLLM,
                preload=_RLLM_PRELOAD,
                summary="LiveCodeBench's comparisons with rllm's header and stdin; 2 s per test; every "
                "test_input/test_output"),
    GradingRule("humaneval", "github:openai/human-eval human_eval/execution.py", 3.0,
                summary="prompt + completion + test + check(entry_point) runs without an exception in 3 s"),
    GradingRule("mbpp", "MBPP ships no harness; bigcode-evaluation-harness runs code + asserts, 3 s", 3.0,
                summary="the solution, test_imports/test_setup_code, then each assert without an exception"),
    GradingRule("evalplus", "github:evalplus/evalplus evalplus/eval/__init__.py, evalplus/evaluate.py",
                EVALPLUS_TASK_TIMEOUT, call_timeout=EVALPLUS_MIN_TIME_LIMIT, preload=("numpy",),
                summary="outputs equal the canonical solution's (floats within atol, special oracles); base and "
                "plus inputs must both pass; 4 s per input, 60 s per check"),
)}


def grading_rule(name: str) -> GradingRule:
    """The rule called `name` (one of GRADING_RULES); KeyError for another name."""
    return GRADING_RULES[name]


__all__ = [
    "EVALPLUS_MIN_TIME_LIMIT", "EVALPLUS_TASK_TIMEOUT", "EVALPLUS_TIME_LIMIT_FACTOR", "GRADING_RULES",
    "GradingRule", "LCB_IMPORT_HEADER", "MBPP_PLUS_NOT_NONE_TASKS", "MBPP_PLUS_SET_EQUAL_TASKS",
    "RLLM_IMPORT_HEADER", "evalplus_equal", "evalplus_is_floats",
    "evalplus_output_ok", "evalplus_plus_passed", "evalplus_task_timeout", "evalplus_time_limit", "grading_rule",
    "humaneval_program", "lcb_call_arguments", "lcb_calls_solution_method", "lcb_functional_equal",
    "lcb_functional_program", "lcb_global_timeout", "lcb_stdin_equal", "lcb_stdin_program", "mbpp_program",
]
