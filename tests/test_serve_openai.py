"""`codescaler serve --generator-url`: best-of-N behind OpenAI's API, driven by the official `openai` client.

A real vLLM OpenAI-compatible server runs the tiny coder (it answers with a few memorised code responses), and a
real `codescaler serve` subprocess runs the tiny reward model in front of it. Every answer is checked against
`codescaler rank` on the same candidates. The only fake is `FaultProxy`, which fails chosen generator requests.
The vLLM server is the session's (conftest's `coder_server`); two serve processes per module.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from helpers import parse_jsonl, write_jsonl
from helpers.servers import FaultProxy, serving, start_serve, stop_serve
from typer.testing import CliRunner

from codescaler_cli.cli import app

pytestmark = pytest.mark.vllm
runner = CliRunner()

QUESTION = "Write add(a, b) returning the sum of a and b."
MESSAGES = [{"role": "system", "content": "You write Python."}, {"role": "user", "content": QUESTION}]
# The tiny coder's chat template is ChatML; /v1/completions gets the prompt already rendered.
CHATML_PROMPT = f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
MAX_TOKENS = 48
API_KEY = "s3cret"
# FaultProxy rules, by the seed of a generator request (each candidate is one request with seed + j).
FAILING_SEED = 1001  # always answered 500: candidate 1 of a request with seed 1000
ALL_FAIL_FROM = 2000  # every request with a seed >= this fails
SLOW_SEED = 3000  # held 10 s before it is forwarded, so a second request finds the server busy


@pytest.fixture(scope="module")
def server(coder_server: str, reward_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    # Two candidates per generator request (the faulty server below keeps the default, one): both splits are tested.
    with serving(reward_dir, "--generator-url", coder_server, "--n", "4", "--max-best-of", "16",
                 "--samples-per-request", "2", log=log) as served:
        yield served.url


@pytest.fixture(scope="module")
def model(coder_server: str) -> str:
    return httpx.get(coder_server + "/models", timeout=10).json()["data"][0]["id"]


def _fault(number: int, path: str, body: bytes) -> object:
    seed = json.loads(body or b"{}").get("seed") if body else None
    if seed == FAILING_SEED or (isinstance(seed, int) and ALL_FAIL_FROM <= seed < SLOW_SEED):
        return 500
    if seed == SLOW_SEED:
        time.sleep(10.0)
    return None


@pytest.fixture(scope="module")
def faulty(coder_server: str, reward_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Behind a fault-injecting proxy, with an API key, no retries and one best-of-N request at a time."""
    proxy = FaultProxy(coder_server.removesuffix("/v1"), _fault)
    log = tmp_path_factory.mktemp("serve") / "serve-faulty.log"
    try:
        with serving(reward_dir, "--generator-url", proxy.url + "/v1", "--api-key", API_KEY, "--n", "4",
                     "--generator-max-retries", "0", "--max-best-of-requests", "1", log=log) as served:
            yield served.url
    finally:
        proxy.close()


def client(url: str, api_key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=api_key, max_retries=0, timeout=120)


def rank_cli(reward_dir: Path, tmp_path: Path, question: str, texts: list[str], *extra: str) -> list[dict[str, Any]]:
    """`codescaler rank` on the same responses, in sample order; records come back in rank order."""
    path = write_jsonl(tmp_path / "candidates.jsonl",
                       [{"question": question, "response": text, "sample": j} for j, text in enumerate(texts)])
    result = runner.invoke(app, ["rank", str(path), "-r", str(reward_dir), "--format", "jsonl", "--quiet", *extra])
    assert result.exit_code == 0, result.stderr
    return parse_jsonl(result.stdout)


def assert_matches_rank(info: dict[str, Any], ranked: list[dict[str, Any]], samples: list[int]) -> None:
    """The `codescaler` candidates (for the given sample indices) rank and score as `rank` did."""
    by_sample = {record["sample"]: record for record in ranked}
    candidates = {c["index"]: c for c in info["candidates"]}
    for position, j in enumerate(samples):
        mine, theirs = candidates[j], by_sample[position]
        assert mine["rank"] == theirs["rank"], (j, info)
        assert mine["valid"] == theirs["valid"] and mine["code"] == theirs["code"]
        if theirs["score"] is None:
            assert mine["score"] is None
        else:
            assert mine["score"] == pytest.approx(theirs["score"], abs=1e-4)
            assert mine["reward"] == pytest.approx(theirs["reward"], abs=1e-4)


# -- the "done when" ----------------------------------------------------------------------------------------

def test_chat_returns_the_candidate_rank_puts_first(server: str, model: str, reward_dir: Path,
                                                    tmp_path: Path) -> None:
    answer = client(server).chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, seed=7,
        extra_body={"best_of": 4, "return_candidates": True})
    info = answer.codescaler  # type: ignore[attr-defined]
    assert answer.object == "chat.completion" and answer.model == model
    assert info["best_of"] == 4 and info["seed"] == 7 and info["sampled"] == 4 and info["failed"] == 0
    assert info["question"] == QUESTION  # the last user message, not the system prompt
    texts = [c["text"] for c in info["candidates"]]
    assert all(isinstance(t, str) and t for t in texts)
    ranked = rank_cli(reward_dir, tmp_path, QUESTION, texts)
    assert_matches_rank(info, ranked, list(range(4)))
    assert len(answer.choices) == 1
    assert answer.choices[0].message.content == ranked[0]["response"]
    assert answer.choices[0].message.role == "assistant" and answer.choices[0].finish_reason in ("stop", "length")
    assert info["chosen"] == [ranked[0]["sample"]]
    # usage counts every sampled token, not only the winner's.
    assert answer.usage.completion_tokens == sum(c["completion_tokens"] for c in info["candidates"])
    assert answer.usage.completion_tokens > info["candidates"][info["chosen"][0]]["completion_tokens"]
    assert answer.usage.prompt_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_streamed_chat_sends_the_same_winner_in_openai_chunks(server: str, model: str) -> None:
    api = client(server)
    plain = api.chat.completions.create(model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, seed=7,
                                        extra_body={"best_of": 4})
    chunks = list(api.chat.completions.create(model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, seed=7,
                                              extra_body={"best_of": 4}, stream=True,
                                              stream_options={"include_usage": True}))
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == plain.choices[0].finish_reason
    info = finish[0].codescaler  # type: ignore[attr-defined]
    assert info["chosen"] == plain.codescaler["chosen"]  # type: ignore[attr-defined]
    assert [c["score"] for c in info["candidates"]] == [c["score"] for c in plain.codescaler["candidates"]]  # type: ignore[attr-defined]
    # With include_usage, the last chunk has no choices and the usage of every sampled token.
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_stream_is_server_sent_events_ending_with_done(server: str, model: str) -> None:
    body = {"model": model, "messages": MESSAGES, "max_tokens": MAX_TOKENS, "seed": 3, "stream": True,
            "extra_body": {"best_of": 2}}  # a literal extra_body object, as some clients send it
    with httpx.stream("POST", server + "/v1/chat/completions", json=body, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[0]["choices"][0]["finish_reason"] is None  # OpenAI sends the null, not an absent key
    assert events[-1]["codescaler"]["best_of"] == 2 and "usage" not in events[-1]


def test_completions_n_returns_the_top_n_in_rank_order(server: str, model: str, reward_dir: Path,
                                                       tmp_path: Path) -> None:
    answer = client(server).completions.create(model=model, prompt=CHATML_PROMPT, max_tokens=MAX_TOKENS, seed=11,
                                               n=2, best_of=4, extra_body={"return_candidates": True})
    info = answer.codescaler  # type: ignore[attr-defined]
    assert answer.object == "text_completion"
    # A ChatML prompt is read like /get_reward reads one: the reward model sees its last user turn.
    assert info["question"] == QUESTION
    texts = [c["text"] for c in info["candidates"]]
    ranked = rank_cli(reward_dir, tmp_path, QUESTION, texts)
    assert_matches_rank(info, ranked, list(range(4)))
    assert [choice.index for choice in answer.choices] == [0, 1]
    assert [choice.text for choice in answer.choices] == [ranked[0]["response"], ranked[1]["response"]]
    assert info["chosen"] == [ranked[0]["sample"], ranked[1]["sample"]]

    streamed = list(client(server).completions.create(model=model, prompt=CHATML_PROMPT, max_tokens=MAX_TOKENS,
                                                      seed=11, n=2, best_of=4, stream=True))
    texts_by_choice = {0: "", 1: ""}
    for chunk in streamed:
        for choice in chunk.choices:
            texts_by_choice[choice.index] += choice.text
    assert [texts_by_choice[0], texts_by_choice[1]] == [choice.text for choice in answer.choices]


def test_candidate_j_is_the_generator_sample_with_seed_plus_j(server: str, model: str, coder_server: str) -> None:
    answer = client(server).chat.completions.create(model=model, messages=MESSAGES, max_tokens=MAX_TOKENS,
                                                    extra_body={"best_of": 3, "return_candidates": True})
    info = answer.codescaler  # type: ignore[attr-defined]
    seed = info["seed"]  # drawn by the server and reported, so the answer can be reproduced
    # Sent as n=2 (seed) and n=1 (seed + 2), they are the samples of one n=3 request.
    direct = openai.OpenAI(base_url=coder_server, api_key="unused").chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0.6, top_p=0.95, n=3, seed=seed)
    assert [c["text"] for c in info["candidates"]] == [choice.message.content for choice in direct.choices]
    again = client(server).chat.completions.create(model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, seed=seed,
                                                   extra_body={"best_of": 3})
    assert again.choices[0].message.content == answer.choices[0].message.content


def test_models_lists_the_generator_first_and_rank_reward_url_still_works(server: str, model: str,
                                                                         reward_dir: Path, tmp_path: Path) -> None:
    listed = [m.id for m in client(server).models.list().data]
    assert listed == [model, str(reward_dir)]
    texts = ["```python\ndef add(a, b):\n    return a + b\n```", "no code here"]
    local = rank_cli(reward_dir, tmp_path, QUESTION, texts)
    remote = rank_cli(reward_dir, tmp_path, QUESTION, texts, "--reward-url", server)
    assert [r["score"] for r in remote] == pytest.approx([r["score"] for r in local], abs=1e-4)


def test_first_byte_latency_is_in_the_metrics(server: str, model: str) -> None:
    list(client(server).chat.completions.create(model=model, messages=MESSAGES, max_tokens=8, seed=1, stream=True,
                                                extra_body={"best_of": 2}))
    text = httpx.get(server + "/metrics", timeout=10).text
    streamed = [line for line in text.splitlines()
                if line.startswith('codescaler_first_byte_seconds_count{endpoint="/v1/chat/completions",stream="true"}')]
    assert streamed and float(streamed[0].split()[-1]) >= 1
    assert 'codescaler_candidates_total{outcome="sampled"}' in text


# -- bad requests ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "param", "status"), [
    ({"best_of": 0}, "best_of", 400),
    ({"best_of": 17}, "best_of", 400),  # over --max-best-of 16
    ({"best_of": 2, "n": 3}, "n", 400),
    ({"temperature": 5}, "temperature", 400),
    ({"messages": []}, "messages", 400),
    ({"messages": [{"role": "system", "content": "no user turn"}]}, "messages", 400),
    ({"model": "gpt-4o"}, "model", 404),
])
def test_bad_requests_name_the_field(server: str, model: str, body: dict[str, Any], param: str,
                                     status: int) -> None:
    request = {"model": model, "messages": MESSAGES, "max_tokens": 8, **body}
    answer = httpx.post(server + "/v1/chat/completions", json=request, timeout=60)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["code"] == status and param in error["message"]


def test_completions_take_one_prompt_string(server: str, model: str) -> None:
    # Best-of-N ranks the candidates of one question: a batch of prompts is several requests.
    answer = httpx.post(server + "/v1/completions", json={"model": model, "prompt": ["a", "b"], "max_tokens": 8},
                        timeout=60)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "prompt"


def test_openai_client_raises_bad_request_with_the_field(server: str, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).completions.create(model=model, prompt=CHATML_PROMPT, n=5, best_of=4)
    assert caught.value.body["param"] == "n"  # type: ignore[index]


def test_a_request_the_generator_rejects_is_a_400_with_its_reason(server: str, model: str) -> None:
    # 10000 tokens do not fit the generator's 512-token context: vLLM says 400, so the client's request is at fault.
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(model=model, messages=MESSAGES, max_tokens=10000,
                                               extra_body={"best_of": 2})
    assert "generator rejected" in caught.value.message


# -- auth, generator failures, backpressure --------------------------------------------------------------------------

def test_api_key_is_required(faulty: str, model: str) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(faulty, "wrong").chat.completions.create(model=model, messages=MESSAGES, max_tokens=8)
    answer = client(faulty, API_KEY).chat.completions.create(model=model, messages=MESSAGES, max_tokens=8, seed=5,
                                                             extra_body={"best_of": 2})
    assert answer.codescaler["failed"] == 0  # type: ignore[attr-defined]


def test_failed_samples_leave_the_best_of_the_rest(faulty: str, model: str, reward_dir: Path,
                                                   tmp_path: Path) -> None:
    answer = client(faulty, API_KEY).chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, seed=FAILING_SEED - 1,
        extra_body={"best_of": 4, "return_candidates": True})
    info = answer.codescaler  # type: ignore[attr-defined]
    assert info["failed"] == 1 and info["sampled"] == 3
    lost = info["candidates"][1]
    assert lost["rank"] is None and lost["text"] is None and "500" in lost["error"]
    survivors = [0, 2, 3]
    ranked = rank_cli(reward_dir, tmp_path, QUESTION, [info["candidates"][j]["text"] for j in survivors])
    assert_matches_rank(info, ranked, survivors)
    assert answer.choices[0].message.content == ranked[0]["response"]
    assert info["chosen"] == [survivors[ranked[0]["sample"]]]
    assert answer.usage.completion_tokens == sum(info["candidates"][j]["completion_tokens"] for j in survivors)


def test_a_generator_that_fails_every_sample_is_a_502(faulty: str, model: str) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client(faulty, API_KEY).chat.completions.create(model=model, messages=MESSAGES, max_tokens=8,
                                                        seed=ALL_FAIL_FROM, extra_body={"best_of": 2})
    assert caught.value.status_code == 502
    assert "all 2 candidates failed" in caught.value.message


def test_a_full_server_answers_503_with_retry_after(faulty: str, model: str) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    slow = {"model": model, "messages": MESSAGES, "max_tokens": 8, "seed": SLOW_SEED, "best_of": 1}
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(httpx.post, faulty + "/v1/chat/completions", json=slow, headers=headers, timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "\ncodescaler_best_of_in_flight 1.0" not in \
                httpx.get(faulty + "/metrics", headers=headers, timeout=10).text:
            time.sleep(0.05)  # until the slow request holds the only best-of-N slot
        busy = httpx.post(faulty + "/v1/chat/completions", headers=headers, timeout=60,
                          json={**slow, "seed": 4000})
        assert first.result().status_code == 200
    assert busy.status_code == 503, busy.text
    assert busy.headers["retry-after"] == "1" and busy.json()["error"]["type"] == "server_busy"


def test_concurrent_requests_each_get_their_own_winner(server: str, model: str) -> None:
    seeds = [21, 22, 23, 24]
    alone = {seed: client(server).chat.completions.create(model=model, messages=MESSAGES, max_tokens=MAX_TOKENS,
                                                          seed=seed, extra_body={"best_of": 3})
             for seed in seeds}
    barrier = threading.Barrier(len(seeds))

    def one(seed: int) -> Any:
        barrier.wait()
        return client(server).chat.completions.create(model=model, messages=MESSAGES, max_tokens=MAX_TOKENS,
                                                      seed=seed, extra_body={"best_of": 3})

    with ThreadPoolExecutor(len(seeds)) as pool:
        together = dict(zip(seeds, pool.map(one, seeds)))
    for seed in seeds:
        assert together[seed].choices[0].message.content == alone[seed].choices[0].message.content
        assert [c["score"] for c in together[seed].codescaler["candidates"]] == pytest.approx(  # type: ignore[attr-defined]
            [c["score"] for c in alone[seed].codescaler["candidates"]], abs=1e-4)  # type: ignore[attr-defined]


# -- -m MODEL: the generator in serve's own process ------------------------------------------------------------------

@pytest.fixture(scope="module")
def in_process(coder_dir: Path, reward_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    log = tmp_path_factory.mktemp("serve") / "serve-in-process.log"
    # A small memory share: the engine's options reach vLLM (the start-up line reads them back from its config).
    served = start_serve(reward_dir, "-m", str(coder_dir), "--max-model-len", "512", "--n", "3",
                         "--generator-gpu-memory-utilization", "0.05", "--generator-dtype", "float32", log=log,
                         startup_timeout=300)  # a vLLM engine loads before the port is bound
    try:
        yield served
    finally:
        stop_serve(served)


def test_in_process_generator_answers_like_a_generator_server(in_process: Any, coder_dir: Path, reward_dir: Path,
                                                              tmp_path: Path) -> None:
    started = in_process.log.read_text()
    assert "(in-process vLLM: float32, max_model_len 512, memory share 0.05, tensor parallel 1)" in started, started
    api = client(in_process.url)
    assert [m.id for m in api.models.list().data][0] == str(coder_dir)
    answer = api.chat.completions.create(model=str(coder_dir), messages=MESSAGES, max_tokens=MAX_TOKENS, seed=5,
                                         extra_body={"return_candidates": True})
    info = answer.codescaler  # type: ignore[attr-defined]
    assert info["best_of"] == 3 and info["sampled"] == 3 and info["failed"] == 0  # --n 3 is the default
    ranked = rank_cli(reward_dir, tmp_path, QUESTION, [c["text"] for c in info["candidates"]])
    assert_matches_rank(info, ranked, [0, 1, 2])
    assert answer.choices[0].message.content == ranked[0]["response"]
    assert answer.usage.completion_tokens == sum(c["completion_tokens"] for c in info["candidates"]) > 0
    again = api.chat.completions.create(model=str(coder_dir), messages=MESSAGES, max_tokens=MAX_TOKENS, seed=5,
                                        extra_body={"return_candidates": True})
    assert [c["text"] for c in again.codescaler["candidates"]] == [c["text"] for c in info["candidates"]]  # type: ignore[attr-defined]
    completion = api.completions.create(model=str(coder_dir), prompt=CHATML_PROMPT, max_tokens=MAX_TOKENS, seed=5)
    assert completion.codescaler["question"] is None and completion.codescaler["sampled"] == 3  # type: ignore[attr-defined]
    streamed = list(api.completions.create(model=str(coder_dir), prompt=CHATML_PROMPT, max_tokens=MAX_TOKENS,
                                           seed=5, stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == completion.choices[0].text


# -- without a generator ---------------------------------------------------------------------------------------------

def test_without_a_generator_the_openai_endpoints_say_how_to_add_one(reward_serve: str, reward_dir: Path) -> None:
    for path in ("/v1/chat/completions", "/v1/completions"):
        answer = httpx.post(reward_serve + path, json={"model": "m", "messages": MESSAGES, "prompt": "p"}, timeout=60)
        assert answer.status_code == 404
        assert "--generator-url" in answer.json()["error"]["message"]
    assert [m["id"] for m in httpx.get(reward_serve + "/v1/models", timeout=10).json()["data"]] == [str(reward_dir)]
