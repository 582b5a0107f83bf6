"""The benchmarks' own rules for comparing what a program produced with what was expected, applied in the judge
(the only process that holds expected outputs). `grading.py` exports the same functions to the library: one copy of
each rule.

- LiveCodeBench's (`lcb_runner/evaluation/testing_util.py`, and rllm's copy that DeepCoder and the CodeScaler paper
  grade with): `grade_stdio` for a stdin program's output, `grade_call_based` for a function's return value.

Standard library only, Python 3.8 and later (it runs under the sandbox's interpreter, not codescaler's).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List


def lcb_stdin_equal(expected: str, actual: str) -> bool:
    """LiveCodeBench's stdin verdict (`grade_stdio`).

    Both texts are stripped, split on newlines and each line stripped; the line counts must match. A line passes
    when it equals the expected one, or when both split on whitespace into numbers that are equal as `Decimal`s
    (so `1.0` matches `1`, `1e3` matches `1000`, and 50000000000000000 does not match 50000000000000001).
    """
    expected_lines, actual_lines = _stripped_lines(expected), _stripped_lines(actual)
    if len(expected_lines) != len(actual_lines):
        return False
    for want, got in zip(expected_lines, actual_lines):
        if want == got:
            continue
        try:
            if [Decimal(x) for x in got.split()] != [Decimal(x) for x in want.split()]:
                return False
        except (InvalidOperation, ValueError, TypeError):  # not numbers
            return False
    return True


def _stripped_lines(text: str) -> List[str]:
    return [line.strip() for line in text.strip().split("\n")]


def lcb_call_arguments(test_input: str) -> List[Any]:
    """A functional test's arguments: `json.loads` of each line of its input. A blank line is an error, as there
    (where it fails the whole program)."""
    return [json.loads(line) for line in test_input.split("\n")]


def lcb_functional_equal(expected_json: str, actual: Any) -> bool:
    """LiveCodeBench's functional verdict: the return value equals `json.loads(expected)` under Python's `==`.

    A tuple returned at the top level counts as a list ("don't penalize model if it produces tuples instead of
    lists"); nested tuples do not, and there is no float tolerance.
    """
    expected = json.loads(expected_json)
    if isinstance(actual, tuple):
        actual = list(actual)
    try:
        return bool(actual == expected)
    except Exception:  # a comparison that raises is a runtime error there: the test fails
        return False
