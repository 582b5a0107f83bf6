"""`codescaler generate` with vLLM's in-process CPU engine on a tiny local generator that answers with code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("vllm")

from conftest import parse_jsonl, write_jsonl  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from codescaler_cli.best_of_n import Problem, read_problems, sample_candidates  # noqa: E402
from codescaler_cli.cli import app  # noqa: E402
from codescaler_cli.errors import InputError  # noqa: E402
from codescaler_cli.generators import SamplingSettings, VllmGenerator  # noqa: E402
from codescaler_cli.prompts import build_prompt  # noqa: E402

pytestmark = pytest.mark.vllm
runner = CliRunner()
SETTINGS = SamplingSettings(n=4, temperature=0.6, top_p=0.95, max_tokens=48)


@pytest.fixture(scope="module")
def coder_dir(tiny_models: dict[str, Path]) -> Path:
    return tiny_models["coder"]


@pytest.fixture(scope="module")
def generator(coder_dir: Path):  # type: ignore[no-untyped-def]
    engine = VllmGenerator(str(coder_dir), max_model_len=512)
    yield engine
    engine.close()


def test_prompt_is_livecodebench_style() -> None:
    plain = build_prompt("Add two numbers.")
    assert plain.startswith("Add two numbers.\n\n### Format: ")
    assert "```python\n\n```" in plain and plain.rstrip().endswith("### Answer: (use the provided format with backticks)")
    starter = build_prompt("Add.", "class Solution:\n    def add(self, a, b):")
    assert "starter code" in starter and "```python\nclass Solution:\n    def add(self, a, b):\n```" in starter
    custom = build_prompt("Add {x}.", "s = 1", template="Q: {question}\nS: {starter_code}\n")
    assert custom == "Q: Add {x}.\nS: s = 1\n"


def test_same_seed_same_candidates_and_distinct_seeds_per_problem(generator: VllmGenerator) -> None:
    problems = [Problem(id="a", question="Write add(a, b)"), Problem(id="b", question="Write add(a, b)")]
    first = sample_candidates(problems, generator, SETTINGS, seed=7)
    again = sample_candidates(problems, generator, SETTINGS, seed=7)
    assert [c.response for c in first] == [c.response for c in again]
    assert [c.record["seed"] for c in first] == [7, 8, 9, 10, 11, 12, 13, 14]
    assert [c.record["sample"] for c in first] == [0, 1, 2, 3] * 2
    # Same question, different seeds: problem b is not a copy of problem a.
    assert [c.response for c in first[:4]] != [c.response for c in first[4:]]
    for candidate in first:
        assert candidate.record["prompt"] == build_prompt("Write add(a, b)")
        assert candidate.record["finish_reason"] in ("stop", "length")


def test_too_long_prompt_fails_alone(generator: VllmGenerator) -> None:
    problems = [Problem(id="long", question="word " * 2000), Problem(id="ok", question="Write add(a, b)")]
    candidates = sample_candidates(problems, generator, SETTINGS, seed=0)
    long, ok = candidates[:4], candidates[4:]
    assert all(c.error and "max_model_len is 512" in c.error and c.response == "" for c in long)
    assert all(c.error is None and c.response for c in ok)


def test_generate_cli_jsonl_is_reproducible_and_round_trips_through_rank(coder_dir: Path, reward_dir: Path,
                                                                         tmp_path: Path) -> None:
    args = ["generate", "Write add(a, b)", "--n", "4", "-m", str(coder_dir), "-r", str(reward_dir),
            "--max-tokens", "48", "--seed", "0", "--format", "jsonl"]
    first = runner.invoke(app, [*args, "-o", str(tmp_path / "all.jsonl")])
    assert first.exit_code == 0, first.stderr
    records = parse_jsonl(first.stdout)
    assert sorted(r["rank"] for r in records) == [1, 2, 3, 4]
    assert {"id", "question", "prompt", "response", "sample", "seed", "finish_reason", "code", "valid", "score",
            "reward", "rank"} <= set(records[0])
    assert any(r["valid"] for r in records), "the tiny coder model should answer with code"
    assert "sampled 4" in first.stderr and "tokens/s" in first.stderr
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.stderr
    assert parse_jsonl(second.stdout) == records
    # `rank` on generate's output reproduces its scores exactly (same question, same code).
    reranked = runner.invoke(app, ["rank", str(tmp_path / "all.jsonl"), "-r", str(reward_dir), "-f", "jsonl", "-q"])
    assert reranked.exit_code == 0, reranked.stderr
    assert [(r["sample"], r["score"], r["rank"]) for r in parse_jsonl(reranked.stdout)] == \
        [(r["sample"], r["score"], r["rank"]) for r in records]


def test_generate_prints_the_best_code_when_piped(coder_dir: Path, reward_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    result = runner.invoke(app, ["generate", "-m", str(coder_dir), "-r", str(reward_dir), "--n", "4",
                                 "--max-tokens", "48", "--seed", "0", "-o", str(out)], input="Write add(a, b)\n")
    assert result.exit_code == 0, result.stderr
    everything = parse_jsonl(out.read_text(encoding="utf-8"))
    best = next(r for r in everything if r["rank"] == 1)
    assert best["valid"] and result.stdout == best["code"] + "\n"
    assert len(everything) == 4


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


def test_question_and_problems_together_is_a_usage_error(tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "p.jsonl", [{"question": "q"}])
    result = runner.invoke(app, ["generate", "Write add", "--problems", str(problems)])
    assert result.exit_code == 2 and "not both" in result.stderr and result.stdout == ""


def test_missing_generator_exits_1(reward_dir: Path) -> None:
    result = runner.invoke(app, ["generate", "Write add(a, b)", "-m", "/nonexistent/generator",
                                 "-r", str(reward_dir)])
    assert result.exit_code == 1 and result.stdout == ""
    assert "cannot load generator model" in result.stderr and "Traceback" not in result.stderr
