"""The whole loop: `codescaler eval -m MODEL -r RM -n N` generates with a real (tiny) vLLM model, scores with a
real (tiny) reward model, and tests every sample in the sandbox, keeping every record in --output."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import parse_jsonl, write_jsonl
from typer.testing import CliRunner

from codescaler_cli.cli import app

pytestmark = pytest.mark.vllm
runner = CliRunner()


def test_eval_generates_scores_and_tests_in_one_command(coder_dir: Path, reward_dir: Path, tmp_path: Path) -> None:
    # The tiny coder answers "Write add(a, b)" with a right add, a wrong one (a - b), or no code.
    problems = write_jsonl(tmp_path / "problems.jsonl", [{
        "task_id": "add", "text": "Write add(a, b)",
        "test_list": ["assert add(1, 2) == 3", "assert add(3, 0) == 3", "assert add(5, 5) == 10"]}])
    out = tmp_path / "all.jsonl"
    result = runner.invoke(app, ["eval", "--problems", str(problems), "-m", str(coder_dir), "-r", str(reward_dir),
                                 "-n", "6", "--max-tokens", "48", "--seed", "0", "-o", str(out), "--jobs", "1",
                                 "--json", str(tmp_path / "report.json")])
    assert result.exit_code == 0, result.stderr
    records = parse_jsonl(out.read_text())
    assert len(records) == 6
    assert sorted(r["sample"] for r in records) == list(range(6))
    for record in records:
        assert {"id", "prompt", "response", "seed", "code", "valid", "score", "rank", "passed", "status",
                "tests_passed", "tests_total", "public_passed"} <= set(record)
        assert record["tests_total"] == 3
        # What the status says follows from the code the sample holds.
        if "return a + b" in record["code"] or "total += b" in record["code"]:
            assert record["status"] == "passed"
        elif "a - b" in record["code"]:
            assert (record["status"], record["tests_passed"]) == ("failed", 1)
        else:
            assert not record["valid"] and record["status"] == "error"
    assert any(r["passed"] for r in records), "the tiny coder should produce a right add in 6 samples"
    assert "reward-model" in result.stdout and "left out" not in result.stdout
    assert "sampled 6" in result.stderr


def test_candidates_and_a_generator_together_are_refused(tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "question": "q", "tests": [{"input": "", "output": ""}]}])
    candidates = write_jsonl(tmp_path / "c.jsonl", [{"id": 1, "code": "print()"}])
    result = runner.invoke(app, ["eval", str(candidates), "--problems", str(problems), "-m", "some/model"])
    assert result.exit_code == 2 and "not both" in result.stderr
