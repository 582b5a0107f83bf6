"""`--reward-url`: scoring on a real vLLM server (`--runner pooling`) on 127.0.0.1, with retries and failover."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import EXAMPLES, parse_jsonl
from helpers.servers import FaultProxy
from helpers.scoring import REQUESTS, card_recipe
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.scoring.remote import RemoteScorer

pytestmark = pytest.mark.vllm
runner = CliRunner()


@pytest.fixture(scope="module")
def expected(reward_dir: Path) -> list[float]:
    return [card_recipe(reward_dir, [(r.question, r.code)])[0] for r in REQUESTS]


def test_remote_scores_equal_card_recipe(pooling_server: str, reward_dir: Path, expected: list[float]) -> None:
    scorer = RemoteScorer([pooling_server], str(reward_dir), request_size=3)
    try:
        results = scorer.score(REQUESTS)
    finally:
        scorer.close()
    assert [r.score for r in results] == pytest.approx(expected, abs=1e-4)
    assert all(r.error is None for r in results)


def test_without_a_model_the_one_the_server_names_is_used(pooling_server: str, reward_dir: Path,
                                                         expected: list[float]) -> None:
    """No -r: vLLM names its model in /v1/models (`root`: the path it loaded), whose tokenizer renders the texts."""
    from codescaler_cli.scoring import ScorerConfig, open_scorer
    from codescaler_cli.scoring.config import check_scorer

    config = ScorerConfig(urls=[pooling_server])
    assert config.model is None  # not the default hub model
    check_scorer(config)
    scorer = open_scorer(config)
    try:
        results = scorer.score(REQUESTS)
    finally:
        scorer.close()
    assert [r.score for r in results] == pytest.approx(expected, abs=1e-4)


def test_server_errors_and_drops_are_retried_on_the_next_replica(pooling_server: str, reward_dir: Path,
                                                                  expected: list[float]) -> None:
    # Every request to the flaky replica fails (500, 429 or a dropped connection); the healthy one answers.
    faults = [500, "drop", 429]
    flaky = FaultProxy(pooling_server.removesuffix("/v1"), lambda n, path, body: faults[n % len(faults)])
    healthy = FaultProxy(pooling_server.removesuffix("/v1"), lambda n, path, body: None)
    scorer = RemoteScorer([flaky.url, healthy.url], str(reward_dir), request_size=1, backoff=0.01)
    try:
        results = scorer.score(REQUESTS)
    finally:
        scorer.close()
        flaky.close()
        healthy.close()
    assert [r.score for r in results] == pytest.approx(expected, abs=1e-4)
    assert {action for _, action in flaky.seen if _ == "/classify"} >= {500, "drop", 429}
    assert len([p for p, _ in healthy.seen if p == "/classify"]) >= len(REQUESTS)


def test_a_request_that_keeps_failing_is_a_per_item_error(pooling_server: str, reward_dir: Path) -> None:
    # The first request fails for good (400 is not retried); the others are scored.
    proxy = FaultProxy(pooling_server.removesuffix("/v1"), lambda n, path, body: 400 if n == 1 else None)
    scorer = RemoteScorer([proxy.url], str(reward_dir), request_size=1, concurrency=1, backoff=0.01)
    try:
        results = scorer.score(REQUESTS[:3])
    finally:
        scorer.close()
        proxy.close()
    assert results[0].score is None and "HTTP 400" in (results[0].error or "")
    assert all(r.score is not None for r in results[1:])


def test_rank_cli_spreads_requests_over_two_urls(pooling_server: str, reward_dir: Path) -> None:
    # Two pass-through proxies stand for two servers; one is given with /v1, the other without.
    first = FaultProxy(pooling_server.removesuffix("/v1"), lambda n, path, body: None)
    second = FaultProxy(pooling_server.removesuffix("/v1"), lambda n, path, body: None)
    args = ["rank", str(EXAMPLES / "candidates.jsonl"), "-r", str(reward_dir), "-f", "jsonl", "-q"]
    try:
        remote = runner.invoke(app, [*args, "--reward-url", first.url + "/v1", "--reward-url", second.url,
                                     "--max-batch-tokens", "100000"])
    finally:
        first.close()
        second.close()
    assert remote.exit_code == 0, remote.stderr
    local = runner.invoke(app, args)
    assert local.exit_code == 0, local.stderr
    remote_records, local_records = parse_jsonl(remote.stdout), parse_jsonl(local.stdout)
    assert len(remote_records) == len(local_records) == 9
    for a, b in zip(remote_records, local_records):
        assert a["rank"] == b["rank"] and a["code"] == b["code"]
        assert (a["score"] is None) == (b["score"] is None)
        if a["score"] is not None:
            assert a["score"] == pytest.approx(b["score"], abs=1e-4)
    assert any(path == "/classify" for path, _ in first.seen), first.seen
    assert any(path == "/classify" for path, _ in second.seen), second.seen
    assert "ignored with --reward-url" in remote.stderr  # --max-batch-tokens is the server's business


def test_rank_cli_writes_everything_and_exits_1_when_scoring_fails(pooling_server: str, reward_dir: Path) -> None:
    proxy = FaultProxy(pooling_server.removesuffix("/v1"), lambda n, path, body: 400)
    try:
        result = runner.invoke(app, ["rank", str(EXAMPLES / "candidates.jsonl"), "-r", str(reward_dir),
                                     "--reward-url", proxy.url, "-f", "jsonl", "--max-retries", "0"])
    finally:
        proxy.close()
    assert result.exit_code == 1
    records = parse_jsonl(result.stdout)
    assert len(records) == 9  # nothing is lost: every record is written, the failed ones say why
    for record in records:
        assert record["score"] is None and record["reward"] == 0.0
        assert ("HTTP 400" in record["error"]) if record["valid"] else ("error" not in record)
    assert "could not be scored" in result.stderr and "Traceback" not in result.stderr
