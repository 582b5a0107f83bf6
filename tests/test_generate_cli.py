"""`codescaler generate` end to end with in-process vLLM: each invocation starts and shuts down its own engines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import parse_jsonl, write_jsonl
from typer.testing import CliRunner

from codescaler_cli.cli import app

pytestmark = pytest.mark.vllm
runner = CliRunner()


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
    # On a terminal stderr (rich honours TTY_COMPATIBLE=1): codescaler's bars with the sampling rate, stdout unchanged.
    # (That vLLM's own bars stay off is checked in test_quiet_engines, in fresh processes.)
    second = runner.invoke(app, args, env={"TTY_COMPATIBLE": "1"})
    assert second.exit_code == 0, second.stderr
    assert parse_jsonl(second.stdout) == records
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", second.stderr)  # without the terminal's escape sequences
    assert re.search(r"Sampling [━ ]+ 4/4 [0-9:]+ [0-9,]+ tokens/s", drawn), drawn[-3000:]
    # `rank` on generate's output reproduces its scores exactly (same question, same code).
    reranked = runner.invoke(app, ["rank", str(tmp_path / "all.jsonl"), "-r", str(reward_dir), "-f", "jsonl", "-q"])
    assert reranked.exit_code == 0, reranked.stderr
    assert [(r["sample"], r["score"], r["rank"]) for r in parse_jsonl(reranked.stdout)] == \
        [(r["sample"], r["score"], r["rank"]) for r in records]


def test_generate_prints_the_best_code_when_piped(coder_dir: Path, reward_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    # --max-length 24 cuts every rendered chat: flagged on the records and warned about on stderr, as in rank.
    result = runner.invoke(app, ["generate", "-m", str(coder_dir), "-r", str(reward_dir), "--n", "4",
                                 "--max-tokens", "48", "--seed", "0", "--max-length", "24", "-o", str(out)],
                           input="Write add(a, b)\n")
    assert result.exit_code == 0, result.stderr
    everything = parse_jsonl(out.read_text(encoding="utf-8"))
    best = next(r for r in everything if r["rank"] == 1)
    assert best["valid"] and result.stdout == best["code"] + "\n"
    assert len(everything) == 4
    assert all(r["truncated"] for r in everything if r["valid"])
    assert "longer than --max-length 24 tokens" in result.stderr


def test_missing_generator_exits_1(reward_dir: Path) -> None:
    result = runner.invoke(app, ["generate", "Write add(a, b)", "-m", "/nonexistent/generator",
                                 "-r", str(reward_dir)])
    assert result.exit_code == 1 and result.stdout == ""
    assert "cannot load generator model" in result.stderr and "Traceback" not in result.stderr


def test_readme_python_api_example_runs(coder_dir: Path, reward_dir: Path) -> None:
    """The README's best-of-N snippet, with the tiny local models in place of the hub ids."""
    import re
    import subprocess
    import sys

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(from codescaler_cli import GeneratorConfig.*?)```", readme, re.S)
    assert snippet, "README lost its best_of_n example"
    code = (snippet.group(1).replace('"Qwen/Qwen2.5-Coder-7B-Instruct"', repr(str(coder_dir)))
            .replace('"LARK-Lab/CodeScaler-4B"', repr(str(reward_dir)))
            .replace("SamplingSettings(n=16)", "SamplingSettings(n=4, max_tokens=48)"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), "the example printed nothing"


def test_top_k_with_code_format_warns(coder_dir: Path, reward_dir: Path) -> None:
    result = runner.invoke(app, ["generate", "Write add(a, b)", "--n", "2", "-m", str(coder_dir), "-r",
                                 str(reward_dir), "--max-tokens", "48", "--seed", "0", "--top-k", "1",
                                 "--concurrency", "3"])
    assert result.exit_code == 0, result.stderr
    assert "warning: --top-k is ignored with --format code" in result.stderr
    assert "warning: --concurrency is ignored without --base-url" in result.stderr


def test_no_valid_code_exits_1_in_every_format(tiny_models: dict[str, Path], reward_dir: Path,
                                                tmp_path: Path) -> None:
    """One rule: a problem left without valid code is a failure (exit 1) whatever --format or --problems, once
    everything is written. The random tiny generator writes no Python; its samples come from the cache after the
    first run, so only that run starts an engine."""
    question = "Write add(a, b)"
    problems = write_jsonl(tmp_path / "problems.jsonl", [{"id": "a", "question": question},
                                                         {"id": "b", "question": "Write sub(a, b)"}])
    common = ["-m", str(tiny_models["generator"]), "-r", str(reward_dir), "-n", "2", "--max-tokens", "16",
              "--seed", "0", "--cache", str(tmp_path / "cache"), "-q"]
    several = runner.invoke(app, ["generate", "--problems", str(problems), *common, "-o", str(tmp_path / "all.jsonl")])
    assert several.exit_code == 1, several.stderr
    assert len(parse_jsonl(several.stdout)) == 2 and len(parse_jsonl((tmp_path / "all.jsonl").read_text())) == 4
    assert "2 of 2 problems got no valid Python code (problem 'a', 'b')" in several.stderr
    for fmt in ("code", "table", "jsonl", "json"):
        result = runner.invoke(app, ["generate", question, *common, "-f", fmt])
        assert result.exit_code == 1, (fmt, result.stderr)
        assert "none of the 2 samples contained valid Python code" in result.stderr, (fmt, result.stderr)
        assert (result.stdout == "") if fmt == "code" else result.stdout.strip(), (fmt, result.stdout)
        assert "Traceback" not in result.stderr
