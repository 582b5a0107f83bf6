"""`codescaler generate` with a stopping rule, end to end with in-process vLLM (each invocation starts its own
engines): the adaptive run's records are the first samples of the full run with the same seed, say how many their
problem drew, and an interrupted adaptive run resumes to the same file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import parse_jsonl, write_jsonl
from typer.testing import CliRunner

from codescaler_cli.cli import app

pytestmark = pytest.mark.vllm
runner = CliRunner()

N, WAVE, SEED = 8, 2, 11
QUESTIONS = ["Write add(a, b)", "Add two integers a and b.", "Return the sum of a and b."]


def generate(coder_dir: Path, reward_dir: Path, problems: Path, output: Path, *extra: str) -> Any:
    result = runner.invoke(app, ["generate", "--problems", str(problems), "-m", str(coder_dir), "-r",
                                 str(reward_dir), "-n", str(N), "--max-tokens", "48", "--seed", str(SEED),
                                 "--max-model-len", "512", "-o", str(output), "-q", *extra])
    return result


def by_problem(path: Path) -> dict[Any, list[dict[str, Any]]]:
    groups: dict[Any, list[dict[str, Any]]] = {}
    for record in parse_jsonl(path.read_text(encoding="utf-8")):
        groups.setdefault(record["id"], []).append(record)
    return {key: sorted(records, key=lambda r: r["sample"]) for key, records in groups.items()}


def test_adaptive_generate_draws_the_first_samples_of_the_full_run_and_resumes(coder_dir: Path, reward_dir: Path,
                                                                               tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "problems.jsonl", [{"id": i, "question": q} for i, q in enumerate(QUESTIONS)])
    full_run = generate(coder_dir, reward_dir, problems, tmp_path / "full.jsonl")
    assert full_run.exit_code == 0, full_run.stderr
    result = generate(coder_dir, reward_dir, problems, tmp_path / "adaptive.jsonl", "--wave", str(WAVE),
                      "--stop-agreement", "2")
    assert result.exit_code == 0, result.stderr
    whole, drawn = by_problem(tmp_path / "full.jsonl"), by_problem(tmp_path / "adaptive.jsonl")
    assert list(drawn) == list(whole)
    for key, records in drawn.items():
        assert [(r["sample"], r["seed"], r["response"], r["completion_tokens"]) for r in records] == \
            [(r["sample"], r["seed"], r["response"], r["completion_tokens"]) for r in whole[key][:len(records)]]
        assert {r["samples_drawn"] for r in records} == {len(records)}
    saved = N * len(QUESTIONS) - sum(len(records) for records in drawn.values())
    assert saved > 0
    # -q leaves the summary out; without it, the summary says what was saved (checked in the resumed run below).
    lines = (tmp_path / "adaptive.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    first = len(drawn[0])
    (tmp_path / "adaptive.jsonl").write_text("".join(lines[:first + 1]), encoding="utf-8")  # problem 0, then a bit
    resumed = runner.invoke(app, ["generate", "--problems", str(problems), "-m", str(coder_dir), "-r",
                                  str(reward_dir), "-n", str(N), "--max-tokens", "48", "--seed", str(SEED),
                                  "--max-model-len", "512", "-o", str(tmp_path / "adaptive.jsonl"), "--wave",
                                  str(WAVE), "--stop-agreement", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert "resuming: 1 of 3 problems are complete" in resumed.stderr
    assert by_problem(tmp_path / "adaptive.jsonl") == drawn
    assert "adaptive: drew" in resumed.stderr and "stopped early: agreement" in resumed.stderr
    # Another rule is another run: refused, naming the setting.
    other = runner.invoke(app, ["generate", "--problems", str(problems), "-m", str(coder_dir), "-r",
                                str(reward_dir), "-n", str(N), "--max-tokens", "48", "--seed", str(SEED),
                                "--max-model-len", "512", "-o", str(tmp_path / "adaptive.jsonl"), "--wave",
                                str(WAVE), "--stop-agreement", "3", "--resume"])
    assert other.exit_code == 2 and "--stop-agreement 2 then, 3 now" in other.stderr, other.stderr
    settings = json.loads((tmp_path / ".adaptive.jsonl.codescaler.json").read_text(encoding="utf-8"))["settings"]
    assert settings["generator_wave"] == WAVE and settings["generator_stop_agreement"] == 2


def test_wave_without_a_rule_is_ignored_with_a_warning(coder_dir: Path, reward_dir: Path) -> None:
    result = runner.invoke(app, ["generate", "Write add(a, b)", "-m", str(coder_dir), "-r", str(reward_dir),
                                 "-n", "2", "--max-tokens", "48", "--seed", "0", "--wave", "1",
                                 "--max-model-len", "512"])
    assert result.exit_code == 0, result.stderr
    assert "--wave is ignored without a --stop-score, --stop-margin or --stop-agreement rule" in result.stderr


def test_eval_with_a_generator_samples_adaptively_and_its_records_say_so(coder_dir: Path, reward_dir: Path,
                                                                         tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "problems.jsonl", [
        {"id": "add", "text": QUESTIONS[0], "test_list": ["assert add(1, 2) == 3"]},
        {"id": "sum", "text": QUESTIONS[2], "test_list": ["assert add(-1, 1) == 0"]},
    ])
    out = tmp_path / "all.jsonl"
    result = runner.invoke(app, ["eval", "--problems", str(problems), "-m", str(coder_dir), "-r", str(reward_dir),
                                 "-n", str(N), "--max-tokens", "48", "--seed", str(SEED), "--max-model-len", "512",
                                 "--wave", str(WAVE), "--stop-agreement", "2", "-o", str(out), "--jobs", "2"])
    assert result.exit_code == 0, result.stderr
    records = by_problem(out)
    assert set(records) == {"add", "sum"}
    for group in records.values():
        assert {r["samples_drawn"] for r in group} == {len(group)} and len(group) % WAVE == 0
        assert all(r["stopped_by"] in ("agreement", None) for r in group)
        assert all("passed" in r and isinstance(r["completion_tokens"], int) for r in group)
    assert "adaptive: drew" in result.stderr
    assert "adaptive sampling, replayed on the recorded samples (waves of 2" in result.stdout
