"""Reward functions for RL trainers (verl, TRL, OpenRLHF), upstream extraction, prompt parsing and the batcher.

The functions are called the way each framework calls them, against a real `codescaler serve` (url=) and with
the tiny reward model in-process; both must give the same rewards. The only fake is a scorer that fails on
purpose, to show one bad request never fails the requests batched with it.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from pathlib import Path

import pytest

from codescaler_cli.extraction import extract_upstream
from codescaler_cli.rl import rewards as rewards_module
from codescaler_cli.rl.rewards import (
    CodeScalerReward,
    compute_score,
    compute_score_async,
    compute_score_batch,
    reward_func,
    trl_reward,
)
from codescaler_cli.scoring.base import ScoreRequest, ScoreResult, ScoringStats
from codescaler_cli.serving.batcher import Batcher, QueueFull, groups_job, pairs_job
from codescaler_cli.serving.inputs import openrlhf_pairs, question_from_prompt, response_from_query, trl_pairs
from codescaler_cli.serving.service import pair_candidates

Q = "Return the sum of a list of integers."
GOOD = "```python\ndef total(xs):\n    return sum(xs)\n```"
OTHER = "Sure.\n```py\ndef total(xs):\n    t = 0\n    for x in xs:\n        t += x\n    return t\n```\nDone."
TWO_BLOCKS = GOOD + "\n\n" + GOOD
BROKEN = "```python\ndef total(xs)\n    return sum(xs)\n```"
PROSE = "I would loop over the list."


@pytest.fixture(scope="module")
def local(reward_dir: Path):  # type: ignore[no-untyped-def]
    reward = rewards_module.get_reward_model(model=str(reward_dir))
    yield reward


# -- upstream extraction -------------------------------------------------------------------------------------------

def test_upstream_extraction_rule() -> None:
    assert extract_upstream(GOOD).code == "def total(xs):\n    return sum(xs)" and extract_upstream(GOOD).valid
    assert extract_upstream(OTHER).valid
    assert not extract_upstream(TWO_BLOCKS).valid  # exactly one block
    assert not extract_upstream(BROKEN).valid  # ast.parse must accept it
    assert not extract_upstream(PROSE).valid
    assert not extract_upstream("```python x = 1```").valid  # the info string must end the line
    assert extract_upstream("```\n  x = 1  \n```").code == "x = 1"


# -- what frameworks send ------------------------------------------------------------------------------------------

CHATML_PROMPT = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n" + Q + "<|im_end|>\n<|im_start|>assistant\n"
LLAMA_PROMPT = ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + Q
                + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")


def test_question_and_response_from_openrlhf_queries() -> None:
    assert question_from_prompt(CHATML_PROMPT) == Q
    assert question_from_prompt(LLAMA_PROMPT) == Q
    assert question_from_prompt(CHATML_PROMPT, "raw") == CHATML_PROMPT
    assert question_from_prompt("plain text prompt") == "plain text prompt"
    query = "<|endoftext|><|endoftext|>" + CHATML_PROMPT + GOOD + "<|im_end|><|endoftext|>"
    assert response_from_query(query, CHATML_PROMPT) == GOOD
    assert response_from_query(query, None) == GOOD
    assert response_from_query(LLAMA_PROMPT + GOOD + "<|eot_id|>", LLAMA_PROMPT) == GOOD
    assert openrlhf_pairs([query], None) == [(Q, GOOD)]
    assert openrlhf_pairs([query], [CHATML_PROMPT], "raw") == [(CHATML_PROMPT, GOOD)]


def test_trl_formats() -> None:
    standard = trl_pairs(["Solve: " + Q], [GOOD])
    assert standard == [("Solve: " + Q, GOOD)]
    conversational = trl_pairs([[{"role": "system", "content": "x"}, {"role": "user", "content": Q}]],
                               [[{"role": "assistant", "content": GOOD}]])
    assert conversational == [(Q, GOOD)]
    assert trl_pairs(["templated"], [GOOD], questions=[Q]) == [(Q, GOOD)]


# -- verl ----------------------------------------------------------------------------------------------------------

def test_verl_compute_score_in_process_and_remote_agree(reward_serve: str, reward_dir: Path, local: CodeScalerReward) -> None:
    info = {"question": Q}
    here = compute_score("codescaler", GOOD, None, info, model=str(reward_dir))
    there = compute_score("codescaler", GOOD, None, extra_info=info, url=reward_serve)
    assert set(here) == {"score", "raw_score", "valid", "truncated"}
    assert here["score"] == pytest.approx(math.log1p(math.exp(here["raw_score"])), rel=1e-9)
    assert there["score"] == pytest.approx(here["score"], abs=1e-4)
    assert compute_score("codescaler", PROSE, None, info, url=reward_serve) == {
        "score": 0.0, "raw_score": 0.0, "valid": 0.0, "truncated": 0.0}
    with pytest.raises(ValueError, match="extra_info\\['question'\\]"):
        compute_score("codescaler", GOOD, None, {}, url=reward_serve)


def test_verl_batch_and_async(reward_serve: str, reward_dir: Path) -> None:
    solutions = [GOOD, OTHER, PROSE, BROKEN]
    infos = [{"question": Q}] * 4
    # As verl's batch reward manager calls it: keyword lists.
    batch = compute_score_batch(data_sources=["codescaler"] * 4, solution_strs=solutions, ground_truths=[None] * 4,
                                extra_infos=infos, url=reward_serve)
    singles = [compute_score("codescaler", s, None, i, model=str(reward_dir)) for s, i in zip(solutions, infos)]
    assert [b["score"] for b in batch] == pytest.approx([s["score"] for s in singles], abs=1e-4)
    assert [b["valid"] for b in batch] == [1.0, 1.0, 0.0, 0.0]

    async def together(**settings: object) -> list[dict]:
        return await asyncio.gather(*(compute_score_async("codescaler", s, None, i, **settings)
                                      for s, i in zip(solutions, infos)))

    for settings in ({"url": reward_serve}, {"model": str(reward_dir)}):
        results = asyncio.run(together(**settings))
        assert [r["score"] for r in results] == pytest.approx([s["score"] for s in singles], abs=1e-4)


def test_upstream_extraction_gives_upstream_rewards(reward_serve: str, reward_dir: Path) -> None:
    solutions = [GOOD, TWO_BLOCKS, BROKEN]
    up = compute_score_batch(["x"] * 3, solutions, [None] * 3, [{"question": Q}] * 3, url=reward_serve,
                             extraction="upstream")
    syntax = compute_score_batch(["x"] * 3, solutions, [None] * 3, [{"question": Q}] * 3, url=reward_serve)
    assert [u["valid"] for u in up] == [1.0, 0.0, 0.0]
    assert [s["valid"] for s in syntax] == [1.0, 1.0, 0.0]
    assert up[0]["score"] == pytest.approx(syntax[0]["score"], abs=1e-6)
    raw = compute_score("x", GOOD, None, {"question": Q}, url=reward_serve, raw=True)
    assert raw["score"] == pytest.approx(raw["raw_score"]) and raw["score"] != pytest.approx(up[0]["score"])


# -- TRL and OpenRLHF ----------------------------------------------------------------------------------------------

def test_trl_reward_function(reward_serve: str, reward_dir: Path) -> None:
    remote = trl_reward(url=reward_serve)
    here = trl_reward(model=str(reward_dir))
    assert remote.__name__ == "codescaler"
    prompts = [[{"role": "user", "content": Q}]] * 3
    completions = [[{"role": "assistant", "content": c}] for c in (GOOD, OTHER, PROSE)]
    values = remote(prompts=prompts, completions=completions, completion_ids=[[1], [2], [3]], trainer_state=None)
    assert isinstance(values, list) and all(isinstance(v, float) for v in values)
    assert values[2] == 0.0 and values[0] > 0 and values[1] > 0
    assert here(prompts, completions) == pytest.approx(values, abs=1e-4)
    standard = remote(prompts=[Q] * 3, completions=[GOOD, OTHER, PROSE])
    assert standard == pytest.approx(values, abs=1e-6)


def test_openrlhf_reward_func(reward_serve: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setenv("CODESCALER_REWARD_URL", reward_serve)
    queries = [CHATML_PROMPT + r + "<|im_end|>" for r in (GOOD, PROSE)]
    out = reward_func(queries, [CHATML_PROMPT] * 2, ["", ""])
    assert set(out) == {"rewards", "scores", "extra_logs"}
    assert isinstance(out["rewards"], torch.Tensor) and out["rewards"].shape == (2,)
    assert out["rewards"][1].item() == 0.0 and out["rewards"][0].item() > 0
    assert out["extra_logs"]["valid"].tolist() == [1.0, 0.0]


# -- the batcher ---------------------------------------------------------------------------------------------------

class FlakyScorer:
    """Scores len(code); raises for any batch containing the code 'boom', and can be slowed down."""

    def __init__(self, delay: float = 0.0) -> None:
        self.stats = ScoringStats()
        self.delay = delay
        self.calls: list[int] = []

    def score(self, requests, progress=None):  # type: ignore[no-untyped-def]
        time.sleep(self.delay)
        self.calls.append(len(requests))
        if any(r.code == "boom" for r in requests):
            raise RuntimeError("injected failure")
        return [ScoreResult(score=float(len(r.code))) for r in requests]

    def close(self) -> None:
        pass


class GatedScorer(FlakyScorer):
    """A FlakyScorer that holds each batch until released: the test decides when scoring ends."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def score(self, requests, progress=None):  # type: ignore[no-untyped-def]
        self.started.set()
        self.release.wait(30)
        return super().score(requests, progress)


def test_one_failing_request_does_not_fail_its_batch() -> None:
    scorer = FlakyScorer(delay=0.05)
    batcher = Batcher(scorer, batch_wait_ms=1000)  # long enough for the three submits to share the first batch
    try:
        futures = [batcher.submit(pairs_job([ScoreRequest(Q, code)])) for code in ("a", "boom", "abc")]
        assert futures[0].result(5)[0].score == 1.0
        assert futures[2].result(5)[0].score == 3.0
        with pytest.raises(RuntimeError, match="injected"):
            futures[1].result(5)
        assert scorer.calls[0] == 3  # tried together first, then alone
    finally:
        batcher.close()


def test_queue_bound_and_drain_on_close() -> None:
    scorer = GatedScorer()
    batcher = Batcher(scorer, batch_wait_ms=0, max_queue=2, max_batch_requests=1)
    futures = [batcher.submit(pairs_job([ScoreRequest(Q, "x")]))]
    assert scorer.started.wait(10)  # the first is being scored (and held there); two more fill the queue
    futures += [batcher.submit(pairs_job([ScoreRequest(Q, "xy")])) for _ in range(2)]
    with pytest.raises(QueueFull):
        batcher.submit(pairs_job([ScoreRequest(Q, "xyz")]))
    scorer.release.set()
    batcher.close()  # drains what was accepted
    assert [f.result(0)[0].score for f in futures] == [1.0, 2.0, 2.0]


def test_batches_respect_the_token_budget() -> None:
    scorer = FlakyScorer(delay=0.1)
    batcher = Batcher(scorer, batch_wait_ms=50, max_batch_tokens=100)
    try:
        jobs = [groups_job(pair_candidates([(Q, "```python\nx = 1\n```")])) for _ in range(12)]
        for job in jobs:
            batcher.submit(job)
        for job in jobs:
            job.future.result(10)
        # Each job is ~30 estimated tokens, so a 100-token budget takes at most 3 jobs per batch.
        assert max(scorer.calls) <= 3 and max(scorer.calls) >= 2
    finally:
        batcher.close()
