"""Tests for codescaler_cli.extraction: one test per rule of the extraction contract,
plus property tests that no input can make the public functions raise."""

from __future__ import annotations

import re
import warnings

import pytest
import tree_sitter_python
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tree_sitter import Language, Parser

from codescaler_cli.extraction import syntax as extraction
from codescaler_cli.extraction import (
    Extraction,
    check_code,
    dedup_key,
    entry_points,
    extract_code,
    is_valid_python,
)

SUBARRAY_SUM = '''\
from collections import defaultdict
from typing import List


class Solution:
    def subarraySum(self, nums: List[int], k: int) -> int:
        # prefix[j] - prefix[i] == k  <=>  nums[i:j] sums to k
        count = 0
        prefix = 0
        seen = defaultdict(int)
        seen[0] = 1
        for x in nums:
            prefix += x
            count += seen[prefix - k]
            seen[prefix] += 1
        return count'''

NO_ANSWER = Extraction(code="", valid=False)


def fenced(code: str, info: str = "python", fence: str = "```") -> str:
    return f"{fence}{info}\n{code}\n{fence}"


# ---------------------------------------------------------------------------
# Extraction dataclass


def test_extraction_is_frozen_value() -> None:
    result = Extraction(code="x = 1", valid=True)
    assert result == Extraction("x = 1", True)
    with pytest.raises(AttributeError):
        result.code = "y"  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Realistic responses


def test_realistic_llm_response() -> None:
    response = (
        "To solve this we keep a running prefix sum and count, for every position, how "
        "many earlier prefixes equal `prefix - k`.\n\n"
        f"```python\n{SUBARRAY_SUM}\n```\n\n"
        "**Complexity:** O(n) time and O(n) space, because each element is visited once "
        "and the dictionary holds at most n + 1 prefixes.\n"
    )
    assert extract_code(response) == Extraction(SUBARRAY_SUM, True)


def test_subarray_sum_solution_is_valid_bare_and_via_check_code() -> None:
    assert is_valid_python(SUBARRAY_SUM)
    assert extract_code(SUBARRAY_SUM) == Extraction(SUBARRAY_SUM, True)
    assert check_code("\n\n" + SUBARRAY_SUM + "\n\n") == Extraction(SUBARRAY_SUM, True)
    # Candidate code is never executed by the tool (nor here): the extracted text must be the program itself.
    assert extract_code(SUBARRAY_SUM).code == SUBARRAY_SUM


def test_crlf_response() -> None:
    response = "Here:\r\n```python\r\ndef f():\r\n    return 1\r\n```\r\nDone."
    assert extract_code(response) == Extraction("def f():\n    return 1", True)


# ---------------------------------------------------------------------------
# Rule 1: reasoning is not an answer


def test_closed_think_span_is_dropped() -> None:
    response = "<think>\nMaybe def g(): pass?\n</think>\n" + fenced("def f():\n    return 1")
    assert extract_code(response) == Extraction("def f():\n    return 1", True)


def test_think_containing_a_fence_is_ignored() -> None:
    response = (
        "<think>\nDraft:\n```python\ndef draft():\n    return 0\n```\n</think>\n"
        "Final answer:\n" + fenced("x = 2")
    )
    assert extract_code(response) == Extraction("x = 2", True)


def test_think_fence_ignored_even_when_answer_has_no_fence() -> None:
    # Without rule 1 the fence inside <think> would switch the whole text to fence mode.
    response = "<think>\n```python\ndef draft(): pass\n```\n</think>\ndef f():\n    return 1"
    assert extract_code(response) == Extraction("def f():\n    return 1", True)


def test_orphan_close_drops_everything_up_to_last_close() -> None:
    response = (
        "reasoning\n```python\ndef wrong(): pass\n```\n</think> more reasoning </think>\n"
        + fenced("def right():\n    return 1")
    )
    assert extract_code(response) == Extraction("def right():\n    return 1", True)


def test_orphan_close_after_a_balanced_span() -> None:
    response = (
        "<think>a</think>\n" + fenced("def wrong(): pass") + "\n</think>\n" + fenced("y = 1")
    )
    assert extract_code(response) == Extraction("y = 1", True)


def test_first_close_ends_the_span_tags_do_not_nest() -> None:
    # The inner <think> is just text of the span; counting it would leave the span open.
    response = "<think> a <think> b </think>\n" + fenced("def f():\n    return 1")
    assert extract_code(response) == Extraction("def f():\n    return 1", True)


def test_close_after_a_closed_span_is_an_orphan() -> None:
    # The first </think> closed the span, so the second has no opening tag before it
    # and drops everything before it, the block included.
    response = fenced("def f(): pass") + "\n<think> a <think> b </think> c </think>\nDone."
    assert extract_code(response) == NO_ANSWER
    response += "\n" + fenced("x = 1")
    assert extract_code(response) == Extraction("x = 1", True)


def test_orphan_close_inside_an_open_fence_is_code() -> None:
    # The cost of rule 1's "tags count only outside fences" for an orphan close: when the
    # reasoning (opening tag in the prompt) leaves a fence open, its </think> is code text
    # and the answer is not recovered. Pinned so that a change here is deliberate.
    response = "reasoning\n```python\ndef draft(:\n</think>\n" + fenced("x = 1")
    assert extract_code(response) == Extraction(
        "def draft(:\n</think>\n```python\nx = 1", False
    )


def test_unclosed_think_means_no_answer() -> None:
    response = "<think>\nLet me write it:\n" + fenced("def f():\n    return 1")
    assert extract_code(response) == NO_ANSWER


def test_unclosed_think_after_orphan_close_means_no_answer() -> None:
    response = "thoughts</think>\n" + fenced("x = 1") + "\n<think>\nmore"
    assert extract_code(response) == NO_ANSWER


def test_think_tag_inside_fenced_code_is_a_string() -> None:
    code = "TAG = '<think>'\nprint(TAG)"
    assert extract_code(fenced(code)) == Extraction(code, True)
    assert extract_code("<think>plan</think>\n" + fenced(code)) == Extraction(code, True)


def test_close_tag_inside_fenced_code_is_a_string() -> None:
    # Not an orphan close: it must not drop the code before it.
    code = 'def strip_reasoning(text):\n    return text.split("</think>")[-1]'
    assert extract_code("Here:\n" + fenced(code)) == Extraction(code, True)


def test_tags_inside_code_are_kept_as_code() -> None:
    # Inside a fence the tags are code text, so they stay (and here make it invalid).
    response = "```python\ndef f():<think>hmm</think>\n    return 1\n```"
    assert extract_code(response) == Extraction("def f():<think>hmm</think>\n    return 1", False)


def test_tags_outside_fences_are_dropped_mid_line() -> None:
    response = "```py<think>hmm</think>thon\nx = 1\n```"
    assert extract_code(response) == Extraction("x = 1", True)


def test_fence_left_open_in_reasoning_is_dropped_with_the_span() -> None:
    # Inside a span fences are not tracked: the first </think> ends it even though the
    # draft's fence never closed, so the unclosed fence cannot swallow the answer.
    response = (
        "<think>\nDraft:\n```python\ndef draft(nums):\n    for x in nums:\n</think>\n"
        + fenced("def f():\n    return 1")
    )
    assert extract_code(response) == Extraction("def f():\n    return 1", True)


# ---------------------------------------------------------------------------
# Rule 2: fenced blocks


@pytest.mark.parametrize(
    ("fence", "info"),
    [
        ("```", "python"),
        ("~~~", "py"),
        ("```", "PYTHON3"),
        ("```", "Py"),
        ("```", ""),
        ("```", " python title=solution.py"),
        ("```", "{.python}"),
        ("~~~~~", "python"),
    ],
)
def test_python_fences_are_recognised(fence: str, info: str) -> None:
    response = "Solution:\n" + fenced("def f():\n    return 1", info, fence) + "\nThat's it."
    assert extract_code(response) == Extraction("def f():\n    return 1", True)


def test_four_backtick_fence_contains_a_triple_backtick_line() -> None:
    code = 'def show():\n    return """\n```\n"""'
    assert extract_code(fenced(code, fence="````")) == Extraction(code, True)


def test_shorter_closing_fence_does_not_close() -> None:
    code = "def show():\n    return '''\n~~~\n'''"
    assert extract_code(fenced(code, fence="~~~~")) == Extraction(code, True)


def test_closing_fence_of_other_character_does_not_close() -> None:
    code = "def show():\n    return '''\n~~~\n'''"
    assert extract_code(fenced(code, fence="```")) == Extraction(code, True)


def test_closing_fence_with_trailing_text_does_not_close() -> None:
    code = "def show():\n    return '''\n```python\n'''"
    assert extract_code(fenced(code)) == Extraction(code, True)


def test_closing_fence_may_be_longer_and_have_trailing_whitespace() -> None:
    response = "```python\ndef f(): pass\n````` \t\nprint(f())"
    assert extract_code(response) == Extraction("def f(): pass", True)


def test_other_language_blocks_are_ignored() -> None:
    response = (
        fenced("def f():\n    return 1")
        + "\nRun it with:\n"
        + fenced("python solution.py", "bash")
        + "\nOr in JS:\n"
        + fenced("x = 3;", "javascript")
    )
    assert extract_code(response) == Extraction("def f():\n    return 1", True)


def test_all_other_language_fences_mean_no_code() -> None:
    response = "Use:\n" + fenced("x = 1", "bash") + "\nthen\n" + fenced("x = 2", "text")
    assert extract_code(response) == NO_ANSWER


def test_other_language_block_contents_are_not_scanned_for_fences() -> None:
    response = "````markdown\n```python\ndef f(): pass\n```\n````"
    assert extract_code(response) == NO_ANSWER


def test_backtick_info_string_with_backtick_is_not_a_fence() -> None:
    # "```python`" is not a fence (CommonMark), so this is bare text (rule 4).
    response = "```python` is how you open a block\nx = 1"
    assert extract_code(response) == NO_ANSWER
    assert extract_code("```x```\n" + fenced("x = 1")) == Extraction("x = 1", True)


def test_open_final_fence_runs_to_the_end() -> None:
    response = "Here is the code:\n```python\ndef f():\n    return 1\n"
    assert extract_code(response) == Extraction("def f():\n    return 1", True)


def test_fence_indented_by_three_spaces_is_recognised() -> None:
    response = "1. Write:\n   ```python\n   def f():\n       return 1\n   ```\n"
    assert extract_code(response) == Extraction("def f():\n    return 1", True)


def test_fence_indented_by_four_spaces_is_not_a_fence() -> None:
    # Not a fence, so the text is bare prose + code, which is invalid Python (rule 4).
    response = "Write:\n    ```python\n    x = 1\n    ```"
    assert extract_code(response) == NO_ANSWER


def test_indented_content_is_dedented_and_trimmed() -> None:
    response = "```python\n\n   \n    def f():\n        return 1\n\n    \n```"
    assert extract_code(response) == Extraction("def f():\n    return 1", True)


def test_unindented_content_keeps_whitespace_only_lines_in_strings() -> None:
    code = 'def f():\n    return """a\n    \nb"""'
    assert extract_code(fenced(code)).code == code


# ---------------------------------------------------------------------------
# Rule 3: choosing among blocks


def test_last_def_block_wins_over_later_non_def_block() -> None:
    response = (
        fenced("def f():\n    return 1")
        + "\nBetter:\n"
        + fenced("def g():\n    return 2")
        + "\nUsage:\n"
        + fenced("print(g())")
    )
    assert extract_code(response) == Extraction("def g():\n    return 2", True)


@pytest.mark.parametrize(
    "definition",
    [
        "class A:\n    pass",
        "async def f():\n    return 1",
        "@decorator\ndef f():\n    return 1",
        "@dataclass\nclass A:\n    x: int",
    ],
)
def test_definition_kinds_count_for_selection(definition: str) -> None:
    response = fenced(definition) + "\n" + fenced("print(1)")
    assert extract_code(response) == Extraction(definition, True)


def test_nested_definition_is_not_top_level() -> None:
    nested = "if True:\n    def f():\n        return 1"
    response = fenced("def g(): pass") + "\n" + fenced(nested)
    assert extract_code(response) == Extraction("def g(): pass", True)


def test_last_valid_block_when_none_defines() -> None:
    response = fenced("x = 1") + "\n" + fenced("y = 2") + "\n" + fenced("def broken(:")
    assert extract_code(response) == Extraction("y = 2", True)


def test_invalid_def_block_is_skipped() -> None:
    response = fenced("def f():\n    return 1") + "\nor\n" + fenced("def g(:\n    return 2")
    assert extract_code(response) == Extraction("def f():\n    return 1", True)


def test_last_eligible_block_when_none_is_valid() -> None:
    response = "\n".join([fenced("def f(:"), fenced("print x"), fenced("echo hi", "bash")])
    assert extract_code(response) == Extraction("print x", False)


def test_empty_python_block_is_not_valid() -> None:
    assert extract_code("```python\n```") == Extraction("", False)


# Rule 3a: the entry point the problem names

ADD = "def add(a, b):\n    return a + b"
ADD_DEMO = "def main():\n    print(add(1, 2))\n\nmain()"
TWO_SUM = (
    "class Solution:\n"
    "    def twoSum(self, nums, target):\n"
    "        seen = {}\n"
    "        for i, x in enumerate(nums):\n"
    "            if target - x in seen:\n"
    "                return [seen[target - x], i]\n"
    "            seen[x] = i"
)
LIST_HELPERS = "class ListNode:\n    def __init__(self, val=0):\n        self.val = val"


def test_entry_point_from_starter_def_beats_a_later_definition() -> None:
    response = fenced(ADD) + "\nTry it:\n" + fenced(ADD_DEMO)
    assert extract_code(response) == Extraction(ADD_DEMO, True)  # rule 3b alone
    assert extract_code(response, starter_code="def add(a, b):") == Extraction(ADD, True)


def test_entry_point_from_class_solution_starter() -> None:
    starter = "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
    response = fenced(TWO_SUM) + "\nHelper for local runs:\n" + fenced(LIST_HELPERS)
    assert extract_code(response, starter_code=starter) == Extraction(TWO_SUM, True)


def test_entry_point_written_as_a_call_in_the_question() -> None:
    question = "Write add(a, b) returning the sum. Use print() only for debugging."
    response = fenced(ADD) + "\n" + fenced(ADD_DEMO)
    assert extract_code(response, question=question) == Extraction(ADD, True)


def test_method_of_a_top_level_class_matches_a_name_in_the_question() -> None:
    question = "Implement twoSum(nums, target) returning the two indices."
    response = fenced(TWO_SUM) + "\n" + fenced(LIST_HELPERS)
    assert extract_code(response, question=question) == Extraction(TWO_SUM, True)


def test_entry_point_must_be_defined_at_top_level() -> None:
    nested = "if True:\n    def add(a, b):\n        return a + b"
    response = fenced(ADD) + "\n" + fenced(nested)
    assert extract_code(response, question="add(1, 2)") == Extraction(ADD, True)
    # Mentioned only (called, not defined): no block defines `print`, so rule 3b decides.
    response = fenced(ADD) + "\n" + fenced("def helper():\n    print(add(1, 2))")
    assert extract_code(response, question="print(add(1, 2))") == Extraction(ADD, True)


def test_names_no_block_defines_fall_through_to_the_next_rule() -> None:
    question = "Read input() and print(len(range(n)))? if(x) is not Python style."
    response = fenced(ADD) + "\n" + fenced(ADD_DEMO)
    assert extract_code(response, question=question) == Extraction(ADD_DEMO, True)


def test_invalid_block_defining_the_entry_point_is_skipped() -> None:
    response = fenced(ADD) + "\n" + fenced(ADD_DEMO) + "\n" + fenced("def add(a, b:\n    pass")
    assert extract_code(response, starter_code="def add(a, b):") == Extraction(ADD, True)


def test_entry_points_from_starter_code_and_question() -> None:
    starter = (
        "# class ListNode:\n#     def __init__(self, val=0):\n"
        "class Solution:\n    def twoSum(self, nums):\n"
        "def f(x):\n"  # incomplete: no body
        "async def g():\n"
        "@cache\ndef h(n):"
    )
    assert entry_points(None, starter) == {"Solution", "f", "g", "h"}
    assert entry_points("class K: see f(x)", None) == {"f"}  # the question's calls only
    assert entry_points(None, "    def f(x):\r\n    class K:") == {"f", "K"}  # dedented
    question = "Call solve(n) on each line; if(x) and not(y) are keywords; use print(ans)."
    assert entry_points(question, None) == {"solve", "print"}
    assert entry_points("Implement añadir(a, b).", "") == {"añadir"}
    assert entry_points(None, None) == frozenset()


# Rule 3b: test harnesses are not solutions


@pytest.mark.parametrize(
    "harness",
    [
        "def test_add():\n    assert add(1, 2) == 3",
        "def check(candidate):\n    assert candidate(1, 2) == 3\n\ncheck(add)",
        "import unittest\n\nclass TestAdd(unittest.TestCase):\n"
        "    def test_small(self):\n        self.assertEqual(add(1, 2), 3)",
        "def test_small():\n    assert add(1, 2) == 3\n\ndef test_zero():\n    assert add(0, 0) == 0",
    ],
)
def test_test_harness_after_the_solution_is_skipped(harness: str) -> None:
    response = fenced(ADD) + "\nTests:\n" + fenced(harness)
    assert extract_code(response) == Extraction(ADD, True)


def test_block_defining_solution_and_tests_is_a_solution() -> None:
    both = ADD + "\n\n\ndef test_add():\n    assert add(1, 2) == 3"
    response = fenced(ADD) + "\nWith tests:\n" + fenced(both)
    assert extract_code(response) == Extraction(both, True)


# Rule 3c: sample output is not a program

STDIN_PROGRAM = "n = int(input())\nprint(n * 2)"


@pytest.mark.parametrize(
    "output",
    ["6", "[1, 2, 3]", "'YES'", "YES", "-1", "1, 2", "True", "Output: 6", "6\n7", "3\n1 2 3"],
)
def test_sample_output_after_a_program_is_skipped(output: str) -> None:
    response = fenced(STDIN_PROGRAM) + "\nExpected output:\n" + fenced(output)
    assert extract_code(response) == Extraction(STDIN_PROGRAM, True)


def test_multi_line_sample_output_is_skipped_as_invalid() -> None:
    assert not is_valid_python("3\n1 2 3")  # so validity, not rule 3c, skips it


@pytest.mark.parametrize("program", ["print(6)", "x = 6", "import sys", "for x in y:\n    z"])
def test_a_call_assignment_or_statement_is_a_program(program: str) -> None:
    response = fenced(STDIN_PROGRAM) + "\n" + fenced(program) + "\n" + fenced("6")
    assert extract_code(response) == Extraction(program, True)


def test_call_nested_in_a_value_is_a_program() -> None:
    program = "[solve(line) for line in open(0)]"
    response = fenced(program) + "\n" + fenced("[1, 2]")
    assert extract_code(response) == Extraction(program, True)


# Rule 3d: the last valid block


def test_last_valid_block_when_all_are_output_like() -> None:
    response = fenced("6") + "\n" + fenced("'YES'") + "\n" + fenced("def f(:")
    assert extract_code(response) == Extraction("'YES'", True)


def test_each_block_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    real_parse = extraction._parse

    def counting_parse(code: str) -> object:
        parsed.append(code)
        return real_parse(code)

    monkeypatch.setattr(extraction, "_parse", counting_parse)
    blocks = [ADD, "def add(a, b:", ADD_DEMO, "def test_add():\n    assert add(1, 2) == 3", "6"]
    response = "\n".join(fenced(block) for block in blocks)
    assert extract_code(response, question="add(1, 2)") == Extraction(ADD, True)
    assert sorted(parsed) == sorted(blocks)


# ---------------------------------------------------------------------------
# Rule 4: no fence at all


def test_prose_only_is_not_code() -> None:
    assert extract_code("I am not sure how to solve this problem.") == NO_ANSWER


def test_bare_code_with_def_is_valid() -> None:
    code = "def f(x):\n    return x + 1"
    assert extract_code("\n\n" + code + "\n\n  ") == Extraction(code, True)


@pytest.mark.parametrize(
    "code",
    [
        "import os",
        "from os import path",
        "from __future__ import annotations",
        "x = 1",
        "x += 1",
        "x: int = 1",
    ],
)
def test_bare_import_or_assignment_is_valid(code: str) -> None:
    assert extract_code(code) == Extraction(code, True)


@pytest.mark.parametrize("code", ["1 + 1", "print('hi')", "pass", "Answer: yes", "x: int"])
def test_bare_code_without_definition_import_or_assignment_is_not_code(code: str) -> None:
    assert is_valid_python(code)
    assert extract_code(code) == NO_ANSWER


def test_bare_code_after_think_is_extracted() -> None:
    assert extract_code("<think>plan</think>\n\nimport sys\n") == Extraction("import sys", True)


def test_prose_mixed_with_code_is_not_code() -> None:
    assert extract_code("Here you go:\ndef f():\n    return 1") == NO_ANSWER


# ---------------------------------------------------------------------------
# Rule 5: validity


def test_python2_print_is_invalid_though_tree_sitter_accepts_it() -> None:
    tree = Parser(Language(tree_sitter_python.language())).parse(b"print x")
    assert not tree.root_node.has_error  # so CPython must be the one rejecting it
    assert not is_valid_python("print x")


@pytest.mark.parametrize("code", ["", "   \n\n", "# just a comment", "# a\n\n   # b\n"])
def test_empty_or_comment_only_is_invalid(code: str) -> None:
    assert not is_valid_python(code)
    assert check_code(code).valid is False


@pytest.mark.parametrize(
    "code",
    ["def f(:\n    pass", "x = (1,", "if x:\nreturn", "x = 1\n  y = 2", "return = 3", "x = '\x00'"],
)
def test_syntax_errors_are_invalid(code: str) -> None:
    assert not is_valid_python(code)


def test_ast_only_error_is_invalid() -> None:
    # tree-sitter-python accepts this, CPython does not.
    assert not is_valid_python("f(**x, *y)")


def test_valid_code_is_valid() -> None:
    assert is_valid_python("x = 1  # comment")
    assert is_valid_python("async def f():\n    await g()")
    assert is_valid_python("match x:\n    case 1:\n        pass")


def test_validation_emits_no_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert is_valid_python('x = "\\d"\nassert (x, "msg")')
    assert caught == []


def test_check_code_normalises_without_fence_processing() -> None:
    assert check_code("\r\n\r\ndef f():\r\n    return 1\r\n   \n") == Extraction(
        "def f():\n    return 1", True
    )
    assert check_code("\rx = 1\r") == Extraction("x = 1", True)
    assert check_code("```python\nx = 1\n```") == Extraction("```python\nx = 1\n```", False)
    assert check_code("<think>x</think>\nx = 1").valid is False


# ---------------------------------------------------------------------------
# Rule 6: dedup key


def test_dedup_key_is_full_sha256_hex() -> None:
    key = dedup_key("x = 1")
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert key == dedup_key("x = 1")


def test_comments_blank_lines_and_spacing_do_not_change_key() -> None:
    a = "def f(a, b):\n    return a+b\n"
    b = "# add\n\n\ndef f( a,b ):  # two args\n\n    # sum\n    return a  +  b\n\n"
    c = "def f(a, \\\n      b):\n  return (a\n    + b)"
    assert dedup_key(a) == dedup_key(b)
    # Line continuation and a different indentation width are spacing, not structure;
    # the parentheses do change the token stream.
    assert dedup_key("def f(a, \\\n b):\n  return a+b") == dedup_key(a)
    assert dedup_key(c) != dedup_key(a)
    assert dedup_key("x = 1\r\ny = 2\r\n") == dedup_key("x = 1\ny = 2")


def test_changed_identifier_changes_key() -> None:
    assert dedup_key("def f(a):\n    return a") != dedup_key("def f(b):\n    return b")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ('x = "a"', 'x = "b"'),
        ('x = "a b"', 'x = "a  b"'),  # spacing inside a string is content
        ('x = "a\\n"', 'x = "a\\t"'),
        # string_content with an escape_sequence child: its own text is only in the string
        ('x = "a\\n"', 'x = "b\\n"'),
        ('x = f"a{y}\\n"', 'x = f"b{y}\\n"'),
        ('x = f"{y}!"', 'x = f"{y}?"'),
        ('x = "a" "b"', 'x = "ab"'),
        ("x = '''a\n\nb'''", "x = '''a\nb'''"),  # blank line inside a string is content
    ],
)
def test_changed_string_content_changes_key(a: str, b: str) -> None:
    assert dedup_key(a) != dedup_key(b)


def test_indentation_structure_changes_key() -> None:
    assert dedup_key("if a:\n  b\nc") != dedup_key("if a:\n  b\n  c")
    assert dedup_key("for x in y:\n    if x:\n        a\n    b") != dedup_key(
        "for x in y:\n    if x:\n        a\nb"
    )


def test_statement_split_changes_key() -> None:
    assert is_valid_python("x = 1\n-1") and is_valid_python("x = 1 - 1")
    assert dedup_key("x = 1\n-1") != dedup_key("x = 1 - 1")
    assert dedup_key("return_value = f\n(x)") != dedup_key("return_value = f(x)")


def test_invalid_code_still_gets_a_key() -> None:
    for code in ["def f(:", "print x", "\x00", "\ud800", "(" * 100_000, ""]:
        assert re.fullmatch(r"[0-9a-f]{64}", dedup_key(code))
    assert dedup_key("def f(:") != dedup_key("def f(")


# ---------------------------------------------------------------------------
# Robustness


PATHOLOGICAL = [
    "(" * 100_000,
    "[" * 50_000 + "]" * 50_000,
    "-" * 100_000 + "1",
    "x = " + "not " * 30_000 + "y",
    "".join("    " * i + "if x:\n" for i in range(1_000)) + "    " * 1_000 + "pass",
    "```python\n" + "(" * 100_000 + "\n```",
    "\x00",
    "x = 1\x00",
    "\ud800",
    "```python\nx = '\udfff'\n```",
    "<think>" * 1_000 + "</think>" * 999,
    "</think>" * 1_000,
    "```" * 1_000,
    "\n" * 10_000,
]


@pytest.mark.parametrize("text", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
def test_pathological_inputs_do_not_raise(text: str) -> None:
    result = extract_code(text)
    assert isinstance(result, Extraction)
    assert not result.valid or is_valid_python(result.code)
    assert len(dedup_key(text)) == 64
    assert isinstance(is_valid_python(text), bool)
    assert isinstance(check_code(text), Extraction)


FRAGMENTS = [
    "```",
    "~~~",
    "````",
    "<think>",
    "</think>",
    "python",
    "py",
    "bash",
    "def f():",
    "class A:",
    "import os",
    "x = 1",
    "return x",
    "print x",
    "# note",
    '"""',
    "'",
    "\\",
    "\n",
    "\r\n",
    "\r",
    "    ",
    "   ",
    "\t",
    "(",
    ")",
    ":",
    "\x00",
    "\ud800",
    "é",
    " ",
]

responses = st.one_of(
    st.text(),
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=5)), max_size=30).map("".join),
)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(responses)
def test_extract_code_never_raises_and_valid_means_valid(text: str) -> None:
    result = extract_code(text)
    assert isinstance(result, Extraction)
    if result.valid:
        assert result.code
        assert is_valid_python(result.code)
        assert check_code(result.code) == result  # extracted code is already tidy


@FAST
@given(responses, st.none() | responses, st.none() | responses)
def test_extract_code_with_a_problem_never_raises(
    text: str, question: str | None, starter_code: str | None
) -> None:
    result = extract_code(text, question=question, starter_code=starter_code)
    assert isinstance(result, Extraction)
    if result.valid:
        assert is_valid_python(result.code)
    assert isinstance(entry_points(question, starter_code), frozenset)


@FAST
@given(responses)
def test_dedup_key_and_is_valid_python_never_raise(text: str) -> None:
    key = dedup_key(text)
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert dedup_key(text) == key
    assert isinstance(is_valid_python(text), bool)
    checked = check_code(text)
    assert checked.valid == is_valid_python(checked.code)


@FAST
@given(responses)
def test_appending_a_comment_keeps_the_key_of_valid_code(text: str) -> None:
    result = extract_code(text)
    if result.valid:
        assert dedup_key(result.code + "\n\n# trailing comment\n") == dedup_key(result.code)
