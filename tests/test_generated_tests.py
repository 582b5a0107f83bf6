"""Selection by generated tests (CodeT) and by reward-weighted vote: both are exact over subsets like the other
strategies, asserts are read out of test-writing responses, and `codescaler eval --generated-tests` runs end to end
with a tiny generator (trained, like the tiny coder, to answer with fixed responses: here assert tests of add) writing
the tests and the sandbox running every candidate on them.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
from helpers import parse_jsonl, write_jsonl
from tiny_models import CODER_RESPONSES, TESTER_RESPONSES
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.evaluation.generated_tests import call_of, extract_asserts
from codescaler_cli.evaluation.problems import problem_from_record
from codescaler_cli.evaluation.strategies import Outcome, strategy

runner = CliRunner()


def brute_force(name: str, outcomes: list[Outcome], size: int) -> float:
    subsets = list(itertools.combinations(range(len(outcomes)), size))
    return sum(strategy(name).select(outcomes, subset) for subset in subsets) / len(subsets)


def test_weighted_votes_are_exact_over_subsets_with_generated_tests_and_rewards() -> None:
    rng = random.Random(7)
    signatures = [frozenset(), frozenset({0}), frozenset({1}), frozenset({0, 1}), frozenset({0, 1, 2})]
    for _ in range(200):
        outcomes = []
        rewards = {name: rng.choice([0.5, 1.0, 1.5, 3.0]) for name in "abcd"}
        for _ in range(rng.randint(1, 9)):
            program = rng.choice(["a", "b", "c", "d", None])
            outcomes.append(Outcome(passed=rng.random() < 0.5, program=program,
                                    reward=0.0 if program is None else rewards[program],
                                    generated=None if program is None else rng.choice(signatures)))
        for name in ("reward-weighted-vote", "generated-tests"):
            for size in range(1, len(outcomes) + 1):
                assert strategy(name).expected(outcomes, size) == pytest.approx(
                    brute_force(name, outcomes, size), abs=1e-12), (name, outcomes, size)


def test_weighted_votes_pick_what_they_promise() -> None:
    outcomes = [
        Outcome(passed=False, program="x", reward=3.0, generated=frozenset({0})),  # the reward model's favourite
        Outcome(passed=True, program="y", reward=1.0, generated=frozenset({1, 2})),
        Outcome(passed=True, program="y", reward=1.0, generated=frozenset({1, 2})),
        Outcome(passed=False, program="z", reward=0.5, generated=frozenset({0})),
    ]
    # Rewards: y sums to 2.0 < x's 3.0; with a third y it would be 3.0, a tie that y loses on its lower reward.
    assert strategy("reward-weighted-vote").select(outcomes, range(4)) == 0.0
    assert strategy("vote").select(outcomes, range(4)) == 1.0
    # CodeT: {x, z} pass test 0 (2 x 1 = 2); the two y pass tests 1 and 2 (2 x 2 = 4).
    assert strategy("generated-tests").select(outcomes, range(4)) == 1.0
    # One y: 1 x 2 = 2 ties {x, z}'s 2 x 1; the set passing fewer tests loses the tie.
    assert strategy("generated-tests").select(outcomes, [0, 1, 3]) == 1.0
    assert strategy("generated-tests").select(outcomes, [0, 3]) == 0.0


def test_asserts_are_read_from_code_blocks_and_must_call_the_function() -> None:
    response = ("Here are tests.\n\n```python\nassert add(1, 2) == 3\nprint('x')\nassert other(1) == 1\n"
                "assert   add(2,2)==4  # spacing\n```\n```python\nassert add(0, 0) == 0\n```")
    assert extract_asserts(response, "add") == ["assert add(1, 2) == 3", "assert add(2, 2) == 4",
                                                "assert add(0, 0) == 0"]
    assert extract_asserts(response, "add", limit=1) == ["assert add(1, 2) == 3"]
    assert extract_asserts("```python\nassert add(1, 2) == 3\nassert add(\n```", "add") == \
        ["assert add(1, 2) == 3"]  # a cut-off block keeps the asserts that parse alone
    assert extract_asserts("assert Solution().solve([1]) == 1", "Solution().solve") == \
        ["assert Solution().solve([1]) == 1"]
    assert extract_asserts(CODER_RESPONSES[0], "add") == []


def test_what_a_test_calls() -> None:
    mbpp = problem_from_record({"task_id": 1, "text": "Add.", "test_list": ["assert add(1, 2) == 3"]}, "p", 1)
    functional = problem_from_record({"id": "s", "question": "Sum.", "fn_name": "solve",
                                      "starter_code": "class Solution:\n    def solve(self, xs):\n        ",
                                      "tests": [{"input": "[1]", "output": "1", "testtype": "functional"}]}, "p", 2)
    stdin = problem_from_record({"id": "io", "question": "Echo.", "tests": [{"input": "1\n", "output": "1"}]}, "p", 3)
    assert [call_of(mbpp), call_of(functional), call_of(stdin)] == ["add", "Solution().solve", None]


@pytest.mark.vllm
def test_eval_generated_tests_end_to_end_with_a_tiny_test_writer(tester_dir: Path, tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "problems.jsonl", [
        {"id": "add", "text": "Write a function add(a, b) that returns the sum of a and b.",
         "test_list": ["assert add(1, 2) == 3", "assert add(-4, 4) == 0"]},
        {"id": "echo", "question": "Print the input line.", "tests": [{"input": "hi\n", "output": "hi"}]},
    ])
    # The tiny coder's answers, the wrong one first: `first` picks it, CodeT's consensus should not.
    order = [2, 0, 1, 3, 4]
    records = [{"id": "add", "response": CODER_RESPONSES[k], "sample": j} for j, k in enumerate(order)]
    records += [{"id": "echo", "response": "```python\nprint(input())\n```", "sample": 0},
                {"id": "echo", "response": "```python\nprint('no')\n```", "sample": 1}]
    candidates = write_jsonl(tmp_path / "candidates.jsonl", records)
    out = tmp_path / "verdicts.jsonl"
    result = runner.invoke(app, ["eval", str(candidates), "--problems", str(problems), "-m", str(tester_dir),
                                 "--generated-tests", "6", "--seed", "0", "--max-tokens", "48",
                                 "--max-model-len", "512", "--jobs", "2", "-o", str(out),
                                 "--json", str(tmp_path / "report.json")])
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    written = report["generated_tests"]
    assert written["problems"] == 1 and written["tests"] >= 2  # echo reads stdin: nothing to call, no tests
    assert written["generation"] > 0 and written["execution"] > 0
    rows = {row["name"]: row for row in report["strategies"]}
    assert rows["generated-tests"]["latency_seconds"] == pytest.approx(written["generation"] + written["execution"])
    assert rows["first"]["accuracy"] == 0.5  # add: a - b first; echo: right first
    assert "generated tests" in result.stdout and "writing" in result.stdout
    verdicts = parse_jsonl(out.read_text(encoding="utf-8"))
    tests = written["written"]["add"]
    assert written["written"]["echo"] == []
    known = {test for response in TESTER_RESPONSES for test in extract_asserts(response, "add")}
    assert tests and set(tests) <= known and len(set(tests)) == len(tests)
    # Which tests each program passes, worked out from the tests' own text.
    def passes(function) -> set[int]:  # type: ignore[no-untyped-def]
        return {k for k, test in enumerate(tests) if eval(test.removeprefix("assert "), {"add": function})}

    right, wrong = passes(lambda a, b: a + b), passes(lambda a, b: a - b)
    by_code = {r["code"]: set(r["generated_passed"]) for r in verdicts if r["id"] == "add"}
    assert by_code["def add(a, b):\n    return a + b"] == right
    assert by_code["def add(a, b):\n    total = a\n    total += b\n    return total"] == right
    assert by_code["def add(a, b):\n    return a - b"] == wrong
    assert all(r["generated_passed"] == [] for r in verdicts if r["id"] == "echo" or not r["valid"])
    # CodeT on add: the three right candidates (two programs, one pass set) weigh 3 x |right|, a - b 1 x |wrong|.
    # On echo nothing was written: the first valid candidate, which is right.
    add_right = 1.0 if 3 * len(right) > len(wrong) or (3 * len(right) == len(wrong) and len(right) > len(wrong)) \
        else 0.0
    assert rows["generated-tests"]["accuracy"] == (add_right + 1.0) / 2
    assert right, "the tiny test writer's samples with seed 0 hold a right test"
