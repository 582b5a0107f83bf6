"""`codescaler serve` best-of-N with a stopping rule, in front of a real vLLM OpenAI server running the tiny coder:
the candidates an adaptive request draws are the first samples of one `n=best_of` request with the same seed
(vLLM's sample j uses seed + j, and a wave starting at sample j0 is sent with seed + j0), and its `codescaler`
object says how many were drawn, which rule stopped them and what was saved. Requests can set or switch off rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from helpers.servers import serving

from codescaler_cli.extraction import dedup_key

pytestmark = pytest.mark.vllm

N, WAVE = 8, 2
MESSAGES = [{"role": "user", "content": "Write add(a, b) returning the sum of a and b."}]
MAX_TOKENS = 48


@pytest.fixture(scope="module")
def server(coder_server: str, reward_dir: Path,  # type: ignore[no-untyped-def]
           tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("serve") / "serve-adaptive.log"
    with serving(reward_dir, "--generator-url", coder_server, "--n", str(N), "--wave", str(WAVE),
                 "--stop-agreement", "2", "--samples-per-request", "2", log=log) as served:
        yield served


@pytest.fixture(scope="module")
def model(coder_server: str) -> str:
    return httpx.get(coder_server + "/models", timeout=10).json()["data"][0]["id"]


def ask(url: str, model: str, seed: int, **extra: Any) -> dict[str, Any]:
    api = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
    answer = api.chat.completions.create(model=model, messages=MESSAGES,  # type: ignore[arg-type]
                                         max_tokens=MAX_TOKENS, seed=seed,
                                         extra_body={"return_candidates": True, **extra})
    return {"choices": [c.message.content for c in answer.choices], **answer.codescaler}  # type: ignore[attr-defined]


def direct(coder_server: str, model: str, seed: int) -> list[str]:
    """The generator's own n=N samples with this seed: what a request of all N draws."""
    answer = openai.OpenAI(base_url=coder_server, api_key="unused").chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=MAX_TOKENS,  # type: ignore[arg-type]
        temperature=0.6, top_p=0.95, n=N, seed=seed)
    return [choice.message.content or "" for choice in answer.choices]


def agreement_stop(info: dict[str, Any], k: int) -> int:
    """Samples drawn when k samples first share a program after a wave (N when never), from the candidates' code."""
    keys = [dedup_key(c["code"]) if c["valid"] else None for c in info["candidates"]]
    for drawn in range(WAVE, N + 1, WAVE):
        counts: dict[str, int] = {}
        for key in keys[:drawn]:
            if key is not None:
                counts[key] = counts.get(key, 0) + 1
        if max(counts.values(), default=0) >= k:
            return drawn
    return N


def test_adaptive_answer_is_a_prefix_of_the_full_request_and_says_what_it_saved(
        server: Any, model: str, coder_server: str) -> None:
    assert f"best-of-{N} (adaptive: --wave {WAVE} --stop-agreement 2)" in server.log.read_text()
    seeds = (100, 200, 300)
    infos = {seed: ask(server.url, model, seed) for seed in seeds}
    stopped_early = 0
    for seed, info in infos.items():
        texts = [c["text"] for c in info["candidates"]]
        drawn = info["samples_drawn"]
        assert texts == direct(coder_server, model, seed)[:drawn]
        assert drawn == len(texts) and drawn % WAVE == 0 and info["best_of"] == N
        assert info["samples_saved"] == N - drawn
        if drawn < N:
            stopped_early += 1
            assert info["stopped_by"] == "agreement" and info["tokens_saved"] > 0
            # Without the rule (a request's null switches the server's off), the same seed draws all N.
            everything = ask(server.url, model, seed, stop_agreement=None)
            assert everything["samples_drawn"] == N and everything["stopped_by"] is None
            assert [c["text"] for c in everything["candidates"]][:drawn] == texts
        assert drawn == agreement_stop(info, 2)
        best = next(c for c in info["candidates"] if c["rank"] == 1)
        assert info["choices"] == [best["text"]]
        assert best["score"] == max(c["score"] for c in info["candidates"] if c["score"] is not None)
    assert stopped_early, "the tiny coder repeats a program within 8 samples for at least one of the seeds"


def test_a_request_sets_its_own_rule_and_never_stops_before_n_choices(server: Any, model: str) -> None:
    # Any score reaches -1e9: the score rule holds after the first wave with a valid (so scored) candidate, and it
    # is checked before the server's agreement rule.
    info = ask(server.url, model, 7, stop_score=-1e9, wave=1)
    first_valid = next(c["index"] for c in info["candidates"] if c["valid"])
    assert info["samples_drawn"] == first_valid + 1 and info["stopped_by"] == "score"
    # Three choices are asked for: sampling goes on to the wave that brings the third candidate.
    api = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    answer = api.chat.completions.create(model=model, messages=MESSAGES,  # type: ignore[arg-type]
                                         max_tokens=MAX_TOKENS, seed=7, n=3, extra_body={"stop_score": -1e9})
    drawn = answer.codescaler["samples_drawn"]  # type: ignore[attr-defined]
    assert drawn == max(4, 2 * (first_valid // 2 + 1)) and len(answer.choices) == 3
    bad = httpx.post(server.url + "/v1/chat/completions", json={"model": model, "messages": MESSAGES,
                                                                "stop_agreement": 0}, timeout=60)
    assert bad.status_code == 400 and "stop_agreement" in bad.text
