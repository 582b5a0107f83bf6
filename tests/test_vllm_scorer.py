"""`--scorer vllm`: vLLM's pooling runner in-process (its CPU engine here) scores like the card recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import EXAMPLES, parse_jsonl
from helpers.scoring import REQUESTS, SUBARRAY_QUESTION, card_recipe
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.scoring import ScoreRequest
from codescaler_cli.scoring.vllm_backend import VllmScorer

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def vllm_scorer(reward_dir: Path):  # type: ignore[no-untyped-def]
    scorer = VllmScorer(str(reward_dir), max_length=512)
    yield scorer
    scorer.close()


def test_vllm_scores_equal_card_recipe(vllm_scorer: VllmScorer, reward_dir: Path) -> None:
    expected = [card_recipe(reward_dir, [(r.question, r.code)])[0] for r in REQUESTS]
    results = vllm_scorer.score(REQUESTS)
    assert [r.score for r in results] == pytest.approx(expected, abs=1e-4)
    # Prefix caching really shares the problem statement across candidates.
    assert vllm_scorer.stats.prefix_tokens > 0


def test_vllm_truncates_like_the_card_recipe(vllm_scorer: VllmScorer, reward_dir: Path) -> None:
    long_code = "def f(x):\n" + "".join(f"    x = x + {i}\n" for i in range(400)) + "    return x"
    result = vllm_scorer.score([ScoreRequest(SUBARRAY_QUESTION, long_code)])[0]
    assert result.truncated and result.tokens == 512
    expected = card_recipe(reward_dir, [(SUBARRAY_QUESTION, long_code)], max_length=512)[0]
    assert result.score == pytest.approx(expected, abs=1e-4)


def test_rank_cli_with_vllm_scorer_matches_transformers(reward_dir: Path) -> None:
    runner = CliRunner()
    args = ["rank", str(EXAMPLES / "candidates.jsonl"), "-r", str(reward_dir), "-f", "jsonl", "-q"]
    with_vllm = runner.invoke(app, [*args, "--scorer", "vllm"])
    assert with_vllm.exit_code == 0, with_vllm.stderr
    with_transformers = runner.invoke(app, args)
    assert with_transformers.exit_code == 0, with_transformers.stderr
    vllm_records, hf_records = parse_jsonl(with_vllm.stdout), parse_jsonl(with_transformers.stdout)
    candidates = len(parse_jsonl((EXAMPLES / "candidates.jsonl").read_text(encoding="utf-8")))
    assert len(vllm_records) == len(hf_records) == candidates  # every candidate, from both backends
    assert sum(r["score"] is not None for r in hf_records) >= 2  # scores to compare, not only invalid code
    assert [r["rank"] for r in vllm_records] == [r["rank"] for r in hf_records]
    for a, b in zip(vllm_records, hf_records):
        assert a["code"] == b["code"]
        assert (a["score"] is None) == (b["score"] is None)
        if a["score"] is not None:
            assert a["score"] == pytest.approx(b["score"], abs=1e-4)
