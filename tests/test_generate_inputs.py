"""`generate` without an engine: prompts, problem files, usage errors and the checks that run before sampling.

Nothing here needs vLLM: these must run (and fail when broken) on any machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import write_jsonl
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.errors import InputError
from codescaler_cli.generation import build_prompt, read_problems

runner = CliRunner()


def test_prompt_is_livecodebench_style() -> None:
    plain = build_prompt("Add two numbers.")
    assert plain.startswith("Add two numbers.\n\n### Format: ")
    assert "```python\n\n```" in plain and plain.rstrip().endswith("### Answer: (use the provided format with backticks)")
    starter = build_prompt("Add.", "class Solution:\n    def add(self, a, b):")
    assert "starter code" in starter and "```python\nclass Solution:\n    def add(self, a, b):\n```" in starter
    custom = build_prompt("Add {x}.", "s = 1", template="Q: {question}\nS: {starter_code}\n")
    assert custom == "Q: Add {x}.\nS: s = 1\n"


def test_problems_file_errors_are_input_errors(tmp_path: Path) -> None:
    bad = write_jsonl(tmp_path / "problems.jsonl", [{"id": 1, "question": "q"}, {"id": 1, "question": "r"}])
    with pytest.raises(InputError, match="problems.jsonl:2: duplicate id 1"):
        read_problems(bad)
    result = runner.invoke(app, ["generate", "--problems", str(bad), "-m", "/nonexistent"])
    assert result.exit_code == 2 and result.stdout == "" and "problems.jsonl:2" in result.stderr
    empty_question = tmp_path / "empty.jsonl"
    empty_question.write_text(json.dumps({"id": 1, "question": "  "}) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["generate", "--problems", str(empty_question)])
    assert result.exit_code == 2 and "empty.jsonl:1" in result.stderr


def test_automatic_ids_never_collide_with_explicit_ones(tmp_path: Path) -> None:
    # Line 1 has no id: its position (0) is taken by line 2's explicit id, and 1 by line 3's.
    path = write_jsonl(tmp_path / "problems.jsonl", [{"question": "a"}, {"id": 0, "question": "b"},
                                                     {"id": 1, "question": "c"}, {"question": "d"}])
    ids = [problem.id for problem in read_problems(path)]
    assert ids == [2, 0, 1, 3]
    assert len(set(ids)) == len(ids)


def test_question_and_problems_together_is_a_usage_error(tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "p.jsonl", [{"question": "q"}])
    result = runner.invoke(app, ["generate", "Write add", "--problems", str(problems)])
    assert result.exit_code == 2 and "not several" in result.stderr and result.stdout == ""


def test_a_wrong_reward_model_fails_before_any_generator_starts(reward_dir: Path, tmp_path: Path) -> None:
    # The generator does not exist either: the reward side is checked first, so that is what is reported.
    result = runner.invoke(app, ["generate", "Write add(a, b)", "-m", "/nonexistent/generator",
                                 "-r", str(tmp_path / "no-reward-model"), "-o", str(tmp_path / "all.jsonl")])
    assert result.exit_code == 1 and result.stdout == ""
    assert "cannot load reward model" in result.stderr and "cannot load generator" not in result.stderr
    assert not (tmp_path / "all.jsonl").exists() or (tmp_path / "all.jsonl").read_text() == ""


def test_a_generator_as_reward_model_is_refused_before_sampling(tiny_models: dict[str, Path]) -> None:
    result = runner.invoke(app, ["generate", "Write add(a, b)", "-m", "/nonexistent/generator",
                                 "-r", str(tiny_models["generator"])])
    assert result.exit_code == 1 and "not a sequence-classification reward model" in result.stderr


def test_device_cuda_without_a_gpu_is_bad_usage(reward_dir: Path, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"question": "q", "code": "x = 1"}])
    for command in (["rank", str(path)], ["generate", "Write add(a, b)", "-m", "/nonexistent/generator"]):
        result = runner.invoke(app, [*command, "-r", str(reward_dir), "--device", "cuda"])
        assert result.exit_code == 2, result.stderr
        assert "no CUDA GPU" in result.stderr and result.stdout == ""
