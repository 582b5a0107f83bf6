"""`codescaler generate --base-url`: a real vLLM OpenAI-compatible server on 127.0.0.1, with injected faults."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import parse_jsonl, write_jsonl
from helpers.servers import FaultProxy
from typer.testing import CliRunner

from codescaler_cli.cli import app

pytestmark = pytest.mark.vllm
runner = CliRunner()


def generate(*args: str, **kwargs):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["generate", *args], **kwargs)


def common(coder_dir: Path, reward_dir: Path) -> list[str]:
    return ["-m", str(coder_dir), "-r", str(reward_dir), "--max-tokens", "48", "--seed", "0"]


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_server_backend_is_reproducible(coder_server: str, coder_dir: Path, reward_dir: Path,
                                        endpoint: str) -> None:
    args = ["Write add(a, b)", "--n", "4", "--base-url", coder_server, "--endpoint", endpoint,
            "--format", "jsonl", *common(coder_dir, reward_dir)]
    first = generate(*args)
    assert first.exit_code == 0, first.stderr
    records = parse_jsonl(first.stdout)
    assert sorted(r["rank"] for r in records) == [1, 2, 3, 4]
    assert sorted(r["seed"] for r in records) == [0, 1, 2, 3]
    assert any(r["valid"] for r in records)
    second = generate(*args)
    assert parse_jsonl(second.stdout) == records


def test_problems_file_prints_one_top_record_per_problem(coder_server: str, coder_dir: Path,
                                                         reward_dir: Path, tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "problems.jsonl", [
        {"id": "add", "question": "Write add(a, b)", "source": "unit"},
        {"id": "sum", "question": "Write add(a, b) returning the sum.", "starter_code": "def add(a, b):"},
        {"id": "plus", "question": "Add two integers a and b."},
    ])
    out = tmp_path / "all.jsonl"
    # Two "replicas" (the same server twice) share the requests.
    result = generate("--problems", str(problems), "--n", "3", "--base-url", coder_server,
                      "--base-url", coder_server.removesuffix("/v1") + "/v1/", "-o", str(out),
                      *common(coder_dir, reward_dir))
    assert result.exit_code == 0, result.stderr
    top = parse_jsonl(result.stdout)
    assert [r["id"] for r in top] == ["add", "sum", "plus"] and all(r["rank"] == 1 for r in top)
    assert top[0]["source"] == "unit"
    everything = parse_jsonl(out.read_text(encoding="utf-8"))
    assert len(everything) == 9 and len({r["seed"] for r in everything}) == 9
    assert "3 problems: sampled 9" in result.stderr


def test_transient_server_errors_are_retried(coder_server: str, coder_dir: Path, reward_dir: Path) -> None:
    proxy = FaultProxy(coder_server.removesuffix("/v1"), lambda n, path, body: {1: 503, 2: "drop"}.get(n))
    try:
        result = generate("Write add(a, b)", "--n", "2", "--base-url", proxy.url + "/v1", "--format", "jsonl",
                          *common(coder_dir, reward_dir))
    finally:
        proxy.close()
    assert result.exit_code == 0, result.stderr
    assert [action for path, action in proxy.seen if path == "/v1/chat/completions"] == [503, "drop", None]
    assert len(parse_jsonl(result.stdout)) == 2


def test_a_request_that_keeps_failing_marks_its_records_and_exits_1(coder_server: str, coder_dir: Path,
                                                                    reward_dir: Path, tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "problems.jsonl", [{"id": "ok", "question": "Write add(a, b)"},
                                                         {"id": "doomed", "question": "FAIL ME"}])
    proxy = FaultProxy(coder_server.removesuffix("/v1"), lambda n, path, body: 500 if b"FAIL ME" in body else None)
    out = tmp_path / "all.jsonl"
    try:
        result = generate("--problems", str(problems), "--n", "2", "--base-url", proxy.url + "/v1",
                          "--max-retries", "1", "--concurrency", "1", "-o", str(out),
                          *common(coder_dir, reward_dir))
    finally:
        proxy.close()
    assert result.exit_code == 1
    everything = parse_jsonl(out.read_text(encoding="utf-8"))
    doomed = [r for r in everything if r["id"] == "doomed"]
    fine = [r for r in everything if r["id"] == "ok"]
    assert len(doomed) == 2 and all("HTTP 500" in r["error"] and r["valid"] is False for r in doomed)
    assert len(fine) == 2 and all("error" not in r for r in fine)
    assert [r["id"] for r in parse_jsonl(result.stdout)] == ["ok", "doomed"]
    assert "2 of 4 samples failed" in result.stderr


def test_prompt_too_long_for_the_server_is_a_per_item_error(coder_server: str, coder_dir: Path,
                                                            reward_dir: Path, tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "problems.jsonl", [{"id": "long", "question": "word " * 2000},
                                                         {"id": "ok", "question": "Write add(a, b)"}])
    result = generate("--problems", str(problems), "--n", "2", "--base-url", coder_server,
                      "--format", "jsonl", "--top-k", "2", *common(coder_dir, reward_dir))
    assert result.exit_code == 1
    records = parse_jsonl(result.stdout)
    assert [r["id"] for r in records] == ["long", "long", "ok", "ok"]
    assert all("HTTP 400" in r["error"] for r in records[:2]) and all("error" not in r for r in records[2:])


def test_a_root_url_without_v1_works(coder_server: str, reward_dir: Path) -> None:
    # No -m either: the served model is used, under the name the server gives it.
    result = generate("Write add(a, b)", "--n", "2", "--base-url", coder_server.removesuffix("/v1"),
                      "-r", str(reward_dir), "--max-tokens", "48", "--seed", "0", "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    assert len(parse_jsonl(result.stdout)) == 2


def test_completions_render_with_the_served_models_tokenizer(coder_server: str, reward_dir: Path,
                                                             tmp_path: Path) -> None:
    from tiny_models import build_tokenizer

    args = ["Write add(a, b)", "--n", "2", "--base-url", coder_server, "--endpoint", "completions",
            "-r", str(reward_dir), "--max-tokens", "48", "--seed", "0", "--format", "jsonl"]
    # Without -m or --tokenizer, the tokenizer is the served model's own (vLLM reports its path as `root`).
    served = generate(*args)
    assert served.exit_code == 0, served.stderr
    assert len(parse_jsonl(served.stdout)) == 2
    # A tokenizer that splits text differently would render a silently wrong prompt: refused.
    other = tmp_path / "other-tokenizer"
    build_tokenizer(other, vocab_size=300)
    mismatch = generate(*args, "--tokenizer", str(other))
    assert mismatch.exit_code == 2 and mismatch.stdout == ""
    assert "does not tokenize like the served model" in mismatch.stderr


def test_a_model_the_server_does_not_serve_is_bad_usage(coder_server: str, reward_dir: Path) -> None:
    result = generate("Write add(a, b)", "--base-url", coder_server, "-m", "Qwen/Qwen2.5-Coder-7B-Instruct",
                      "-r", str(reward_dir))
    assert result.exit_code == 2 and result.stdout == ""
    assert "not -m 'Qwen/Qwen2.5-Coder-7B-Instruct'" in result.stderr


def test_samples_are_saved_before_scoring(coder_server: str, coder_dir: Path, reward_dir: Path,
                                          tmp_path: Path) -> None:
    # A reward model whose config and tokenizer are fine (the start-up check passes) but whose weights are
    # corrupt: loading it fails only after sampling. The samples must survive beside -o.
    broken = tmp_path / "broken-reward"
    shutil.copytree(reward_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    out = tmp_path / "all.jsonl"
    result = generate("Write add(a, b)", "--n", "3", "--base-url", coder_server, "-m", str(coder_dir),
                      "-r", str(broken), "--max-tokens", "48", "--seed", "0", "-o", str(out), "--top-k", "1",
                      "--max-model-len", "64")
    assert result.exit_code == 1 and result.stdout == ""
    assert "warning: --max-model-len is ignored with --base-url" in result.stderr
    saved = tmp_path / ".all.jsonl.samples.jsonl"
    samples = parse_jsonl(saved.read_text(encoding="utf-8"))
    assert [r["sample"] for r in samples] == [0, 1, 2] and all("response" in r and "code" in r for r in samples)
    assert out.read_text(encoding="utf-8") == ""  # no problem was ranked
    assert "0 of 1 problems are complete" in result.stderr and f"codescaler rank {saved}" in result.stderr
    # ... and they rank as they are once the reward model is fixed.
    reranked = runner.invoke(app, ["rank", str(saved), "-r", str(reward_dir), "-f", "jsonl", "-q"])
    assert reranked.exit_code == 0 and len(parse_jsonl(reranked.stdout)) == 3


class TokenCounter:
    """A progress callback that also listens for sampled tokens, as codescaler's progress bar does."""

    def __init__(self) -> None:
        self.samples = self.tokens = 0

    def __call__(self, n: int) -> None:
        self.samples += n

    def add_tokens(self, tokens: int) -> None:
        self.tokens += tokens


def test_sampling_progress_counts_tokens_as_requests_finish(coder_server: str) -> None:
    from codescaler_cli.generation import Problem, SamplingSettings
    from codescaler_cli.generation.openai_server import OpenAIGenerator
    from codescaler_cli.generation.problems import sample_candidates

    generator = OpenAIGenerator([coder_server])
    progress = TokenCounter()
    try:
        candidates = sample_candidates([Problem(id=i, question="Write add(a, b)") for i in range(2)], generator,
                                       SamplingSettings(n=3, max_tokens=24), seed=0, progress=progress)
    finally:
        generator.close()
    assert len(candidates) == progress.samples == 6
    assert progress.tokens == generator.stats.completion_tokens > 0
