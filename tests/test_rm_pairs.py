"""`codescaler pairs`: every count it prints equals a brute-force count from the verdicts, no problem is in both
splits, pairs are distinct programs (the dedup key), the draw and the split are fixed by the seed, and the three
output formats carry the same pairs."""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from conftest import parse_jsonl, write_jsonl
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.extraction import dedup_key, is_valid_python

runner = CliRunner()

RIGHT = ["def f(x):\n    return x + {k}\n", "def f(x):\n    # add\n    return x + {k}\n",
         "def f(x):\n    return x+{k}  # spacing differs\n", "def f(x):\n    y = x\n    return y + {k}\n"]
WRONG = ["def f(x):\n    return None\n", "def f(x):\n    return x - {k}\n", "def f(x):\n    pass\n",
         "def f(x):\n    return 0\n", "def f(x):\n    raise ValueError\n", "def f(x):\n    return -x\n"]
BROKEN = ["def f(x)\n    return x\n", "def f(x):\n    return (x\n"]


def verdict_records(seed: int = 0, problems: int = 40) -> list[dict[str, Any]]:
    """eval-like records: problems with only passing, only failing, mixed, duplicated (up to comments and spacing),
    flaky (one program both passing and failing) and unparsable candidates."""
    rng = random.Random(seed)
    records = []
    for number in range(problems):
        kind = rng.choice(["mixed", "mixed", "mixed", "all-pass", "all-fail", "flaky"])
        question = f"Write f(x) returning x + {number}."
        for sample in range(rng.randint(2, 9)):
            if kind == "all-pass" or (kind != "all-fail" and rng.random() < 0.4):
                code, passed = rng.choice(RIGHT).format(k=number), True
            elif rng.random() < 0.2:
                code, passed = rng.choice(BROKEN), False
            else:
                code, passed = rng.choice(WRONG).format(k=number), False
            records.append({"id": f"p{number}", "question": question, "code": code, "valid": is_valid_python(code),
                            "passed": passed, "status": "passed" if passed else "failed", "sample": sample})
        if kind == "flaky":  # the same program (up to a comment) once passing, once failing
            code = RIGHT[0].format(k=number)
            records.append({"id": f"p{number}", "question": question, "code": code, "valid": True, "passed": True})
            records.append({"id": f"p{number}", "question": question, "code": code + "# again\n", "valid": True,
                            "passed": False})
    return records


def brute_force(records: list[dict[str, Any]], max_pairs: int, invalid_rejected: bool) -> dict[str, Any]:
    """What pairs must report, counted directly from the definition."""
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_problem[record["id"]].append(record)
    counts = {"problems": len(by_problem), "candidates": len(records), "no_pass": 0, "no_fail": 0, "conflicts": 0,
              "pairs_per_problem": {}}
    for problem, group in by_problem.items():
        passing = {dedup_key(r["code"]) for r in group if r["valid"] and r["passed"]}
        failing = {dedup_key(r["code"]) for r in group if r["valid"] and not r["passed"]}
        if invalid_rejected:
            failing |= {"invalid:" + r["code"] for r in group if not r["valid"] and not r["passed"]}
        both = passing & failing
        counts["conflicts"] += len(both)
        passing, failing = passing - both, failing - both
        if not passing:
            counts["no_pass"] += 1
        elif not failing:
            counts["no_fail"] += 1
        else:
            counts["pairs_per_problem"][problem] = min(max_pairs, len(passing) * len(failing))
    return counts


def run_pairs(tmp_path: Path, records: list[dict[str, Any]], *args: str) -> tuple[list[dict[str, Any]], str]:
    verdicts = write_jsonl(tmp_path / "verdicts.jsonl", records)
    out = tmp_path / "pairs.jsonl"
    result = runner.invoke(app, ["pairs", str(verdicts), "-o", str(out), *args])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # with -o the pairs go to the file, the summary to stderr
    return parse_jsonl(out.read_text()), result.stderr


def printed_counts(stderr: str) -> dict[str, int]:
    first = re.search(r"(\d+) problems \((\d+) candidates\): (\d+) used \((\d+) train, (\d+) test\), (\d+) skipped "
                      r"\((\d+) with no passing program, (\d+) with no failing program\)", stderr)
    second = re.search(r"wrote (\d+) pairs to \S+ \((\d+) train, (\d+) test\)", stderr)
    conflicts = re.search(r"note: (\d+) programs both passed and failed", stderr)
    assert first and second, stderr
    names = ["problems", "candidates", "used", "train_problems", "test_problems", "skipped", "no_pass", "no_fail"]
    counts = dict(zip(names, map(int, first.groups())))
    counts.update(zip(["pairs", "train_pairs", "test_pairs"], map(int, second.groups())))
    counts["conflicts"] = int(conflicts.group(1)) if conflicts else 0
    return counts


@pytest.mark.parametrize(("max_pairs", "test_fraction", "invalid_rejected"), [(8, 0.1, False), (3, 0.25, True),
                                                                                (100, 0.5, False)])
def test_every_printed_count_matches_a_brute_force_count(tmp_path: Path, max_pairs: int, test_fraction: float,
                                                         invalid_rejected: bool) -> None:
    records = verdict_records()
    args = ["--max-pairs-per-problem", str(max_pairs), "--test-fraction", str(test_fraction)]
    rows, stderr = run_pairs(tmp_path, records, *args, *(["--invalid-rejected"] if invalid_rejected else []))
    expected = brute_force(records, max_pairs, invalid_rejected)
    printed = printed_counts(stderr)
    used = len(expected["pairs_per_problem"])
    assert printed["problems"] == expected["problems"] and printed["candidates"] == expected["candidates"]
    assert printed["no_pass"] == expected["no_pass"] and printed["no_fail"] == expected["no_fail"]
    assert printed["skipped"] == expected["no_pass"] + expected["no_fail"]
    assert printed["used"] == used == printed["problems"] - printed["skipped"]
    assert printed["conflicts"] == expected["conflicts"] > 0
    assert printed["test_problems"] == max(1, round(test_fraction * used))
    assert printed["train_problems"] == used - printed["test_problems"]
    # The rows agree with the summary, problem by problem.
    per_problem = defaultdict(int)
    splits = defaultdict(set)
    for row in rows:
        per_problem[row["id"]] += 1
        splits[row["id"]].add(row["split"])
    assert dict(per_problem) == expected["pairs_per_problem"]
    assert printed["pairs"] == len(rows) == sum(expected["pairs_per_problem"].values())
    assert printed["test_pairs"] == sum(1 for row in rows if row["split"] == "test")
    assert printed["train_pairs"] == sum(1 for row in rows if row["split"] == "train")
    # No problem on both sides.
    assert all(len(sides) == 1 for sides in splits.values())
    assert sum(1 for sides in splits.values() if sides == {"test"}) == printed["test_problems"]


def test_pairs_are_distinct_programs_passing_over_failing(tmp_path: Path) -> None:
    records = verdict_records()
    rows, _ = run_pairs(tmp_path, records, "--max-pairs-per-problem", "100", "--invalid-rejected")
    verdict_of = defaultdict(dict)
    for record in records:
        verdict_of[record["id"]].setdefault(record["code"], set()).add(record["passed"])
    seen = set()
    for row in rows:
        chosen, rejected = row["code_pos"], row["code_neg"]
        assert verdict_of[row["id"]][chosen] == {True} and verdict_of[row["id"]][rejected] == {False}
        assert is_valid_python(chosen)
        key = (row["id"], dedup_key(chosen), dedup_key(rejected) if is_valid_python(rejected) else rejected)
        assert key not in seen  # the same program in another spelling is not another pair
        seen.add(key)
        assert row["question_content"] == f"Write f(x) returning x + {row['id'][1:]}."
    assert any(not is_valid_python(row["code_neg"]) for row in rows)  # --invalid-rejected lets broken code in


def test_the_seed_fixes_the_draw_and_the_split_whatever_the_file_order(tmp_path: Path) -> None:
    records = verdict_records()
    args = ["--max-pairs-per-problem", "2", "--test-fraction", "0.3"]
    first, _ = run_pairs(tmp_path, records, *args)
    again, _ = run_pairs(tmp_path, records, *args)
    assert first == again
    shuffled = list(records)
    random.Random(9).shuffle(shuffled)
    # Reordered, a program may come first in another spelling: the same pairs are the same programs.
    by_id = lambda rows: sorted((r["id"], r["split"], dedup_key(r["code_pos"]), dedup_key(r["code_neg"]))  # noqa: E731
                                for r in rows)
    reordered, _ = run_pairs(tmp_path, shuffled, *args)
    assert by_id(reordered) == by_id(first)
    other, _ = run_pairs(tmp_path, records, *args, "--seed", "1")
    assert {r["id"] for r in other if r["split"] == "test"} != {r["id"] for r in first if r["split"] == "test"}


def test_formats_hold_the_same_pairs(tmp_path: Path) -> None:
    records = verdict_records(problems=10)
    codescaler, _ = run_pairs(tmp_path, records)
    trl, _ = run_pairs(tmp_path, records, "--format", "trl")
    openrlhf, _ = run_pairs(tmp_path, records, "--format", "openrlhf")
    assert len(codescaler) == len(trl) == len(openrlhf) > 0
    for plain, conversation, prompted in zip(codescaler, trl, openrlhf):
        assert plain["id"] == conversation["id"] == prompted["id"]
        assert plain["split"] == conversation["split"] == prompted["split"]
        user = {"role": "user", "content": plain["question_content"]}
        assert conversation["chosen"] == [user, {"role": "assistant", "content": plain["code_pos"]}]
        assert conversation["rejected"] == [user, {"role": "assistant", "content": plain["code_neg"]}]
        assert set(conversation) == {"id", "split", "chosen", "rejected"}
        assert prompted["prompt"] == [user]
        assert prompted["chosen"] == [{"role": "assistant", "content": plain["code_pos"]}]
        assert prompted["rejected"] == [{"role": "assistant", "content": plain["code_neg"]}]


def test_pairs_to_stdout_and_from_stdin(tmp_path: Path) -> None:
    records = verdict_records(problems=6)
    text = "".join(json.dumps(r) + "\n" for r in records)
    result = runner.invoke(app, ["pairs", "-", "--quiet"], input=text)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    rows = parse_jsonl(result.stdout)
    from_file, _ = run_pairs(tmp_path, records)
    assert rows == from_file


def test_humaneval_verdicts_take_their_questions_from_the_benchmark(tmp_path: Path) -> None:
    records = [{"task_id": "HumanEval/0", "completion": "    return False\n", "code": "def f():\n    return 1\n",
                "valid": True, "passed": True},
               {"task_id": "HumanEval/0", "completion": "    pass\n", "code": "def f():\n    pass\n", "valid": True,
                "passed": False}]
    path = write_jsonl(tmp_path / "verdicts.jsonl", records)
    missing = runner.invoke(app, ["pairs", str(path)])
    assert missing.exit_code == 2
    assert f"{path}:1: the record has no 'question'" in missing.stderr
    result = runner.invoke(app, ["pairs", str(path), "--benchmark", "humaneval", "--test-fraction", "0"])
    assert result.exit_code == 0, result.stderr
    row = parse_jsonl(result.stdout)[0]
    assert row["id"] == "HumanEval/0" and row["question_content"].startswith("from typing import List")


@pytest.mark.parametrize(("record", "message"), [
    ({"id": "a", "question": "q", "code": "x = 1\n"}, "no test verdict ('passed' true or false)"),
    ({"question": "q", "code": "x = 1\n", "passed": True}, "names no problem"),
    ({"id": "a", "question": "q", "passed": True}, "no extracted 'code'"),
])
def test_records_that_are_not_verdicts_exit_2_naming_the_line(tmp_path: Path, record: dict[str, Any],
                                                              message: str) -> None:
    good = {"id": "a", "question": "q", "code": "x = 1\n", "valid": True, "passed": True}
    path = write_jsonl(tmp_path / "verdicts.jsonl", [good, record])
    result = runner.invoke(app, ["pairs", str(path)])
    assert result.exit_code == 2
    assert f"{path}:2: " in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr
