"""`codescaler serve` end to end: a real server subprocess on 127.0.0.1 with the tiny reward model, real clients.

One server per module (plus one with an API key and a tiny queue); only the start-up failure and SIGTERM tests
start their own.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from helpers import parse_jsonl, write_jsonl
from helpers.sample_candidates import MAX_A, Q1, Q2, RECORDS, SUM_A, SUM_B, fenced
from helpers.servers import serving, start_serve, stop_serve
from helpers.servers import free_port
from typer.testing import CliRunner

from codescaler_cli.cli import app

runner = CliRunner()

@pytest.fixture(scope="module")
def server(reward_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serving(reward_dir, "--batch-wait-ms", "20", log=log) as served:
        yield served.url


@pytest.fixture(scope="module")
def locked_server(reward_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """An API key, one request per batch and a queue of one: backpressure shows at once."""
    log = tmp_path_factory.mktemp("serve") / "serve-locked.log"
    with serving(reward_dir, "--api-key", "s3cret", "--max-queue", "1", "--max-batch-requests", "1",
                 "--batch-wait-ms", "0", log=log) as served:
        yield served.url


def rank_cli(*args: str) -> list[dict]:
    result = runner.invoke(app, ["rank", *args, "--format", "jsonl", "--quiet"])
    assert result.exit_code == 0, result.stderr
    return parse_jsonl(result.stdout)


# -- the contract: rank --reward-url against serve = rank in-process -------------------------------------------------

def test_rank_reward_url_against_serve_equals_in_process_rank(server: str, reward_dir: Path, tmp_path: Path) -> None:
    candidates = write_jsonl(tmp_path / "candidates.jsonl", RECORDS)
    local = rank_cli(str(candidates), "-r", str(reward_dir))
    remote = rank_cli(str(candidates), "-r", str(reward_dir), "--reward-url", server)
    assert [r["code"] for r in remote] == [r["code"] for r in local]
    assert [r["rank"] for r in remote] == [r["rank"] for r in local]
    for here, there in zip(local, remote):
        assert (here["score"] is None) == (there["score"] is None)
        if here["score"] is not None:
            assert there["score"] == pytest.approx(here["score"], abs=1e-4)
            assert there["reward"] == pytest.approx(here["reward"], abs=1e-4)
    # The /v1 suffix vLLM users write works too.
    again = rank_cli(str(candidates), "-r", str(reward_dir), "--reward-url", server + "/v1")
    assert [r["score"] for r in again] == pytest.approx([r["score"] for r in remote], abs=1e-6)
    # Without -r, the model the server names in /v1/models renders the texts: never the default hub model.
    unnamed = rank_cli(str(candidates), "--reward-url", server)
    assert [r["score"] for r in unnamed] == pytest.approx([r["score"] for r in remote], abs=1e-6)


def test_reward_url_without_r_names_a_model_that_is_not_here_says_to_pass_r(tmp_path: Path) -> None:
    """A server whose /v1/models names a directory on its own machine (a stand-in answering only that)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"object": "list", "data": [{"id": "/data/models/CodeScaler-4B", "object": "model",
                                                            "root": "/data/models/CodeScaler-4B"}]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    stand_in = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    candidates = write_jsonl(tmp_path / "candidates.jsonl", RECORDS)
    try:
        result = runner.invoke(app, ["rank", str(candidates), "--reward-url",
                                     f"http://127.0.0.1:{stand_in.server_address[1]}"])
    finally:
        stand_in.shutdown()
        stand_in.server_close()
    assert result.exit_code == 2 and result.stdout == ""
    assert "serves '/data/models/CodeScaler-4B', a directory on its machine that is not on this one" in result.stderr
    assert "pass the reward model with -r" in result.stderr and "LARK-Lab" not in result.stderr


def test_a_401_is_a_refused_key_not_an_unreachable_server(locked_server: str, reward_dir: Path,
                                                          tmp_path: Path) -> None:
    candidates = write_jsonl(tmp_path / "candidates.jsonl", RECORDS)
    result = runner.invoke(app, ["rank", str(candidates), "-r", str(reward_dir), "--reward-url", locked_server],
                           env={"OPENAI_API_KEY": None, "CODESCALER_REWARD_API_KEY": None})
    assert result.exit_code == 1
    assert f"reward server {locked_server}/v1 refused the request: HTTP 401" in result.stderr, result.stderr
    assert "not reachable" not in result.stderr and "--api-key" in result.stderr
    keyed = runner.invoke(app, ["rank", str(candidates), "-r", str(reward_dir), "--reward-url", locked_server,
                                "--api-key", "s3cret", "-f", "jsonl", "-q"])
    assert keyed.exit_code == 0, keyed.stderr


def test_v1_rank_returns_the_records_rank_writes(server: str, reward_dir: Path, tmp_path: Path) -> None:
    q1 = [{k: v for k, v in r.items() if k != "question"} for r in RECORDS if r["question"] == Q1]
    answer = httpx.post(server + "/v1/rank", json={"question": Q1, "candidates": q1}, timeout=60).json()
    local = rank_cli(str(write_jsonl(tmp_path / "q1.jsonl", [r for r in RECORDS if r["question"] == Q1])),
                     "-r", str(reward_dir))
    data = answer["data"]
    assert [r["rank"] for r in data] == [1, 2, 3, 4]
    assert [r["code"] for r in data] == [r["code"] for r in local]
    assert [r["score"] for r in data] == pytest.approx([r["score"] for r in local], abs=1e-4)
    assert data[0]["meta"] == {"sample": 0} if "meta" in data[0] else True
    assert {r["index"] for r in data} == {0, 1, 2, 3}
    invalid = data[-1]
    assert invalid["valid"] is False and invalid["score"] is None and invalid["reward"] == 0.0
    for record in data:
        assert set(record) >= {"code", "valid", "score", "reward", "rank", "truncated", "index"}
    top = httpx.post(server + "/v1/rank", json={"question": Q1, "candidates": q1, "top_k": 1}, timeout=60).json()
    assert len(top["data"]) == 1 and top["data"][0]["rank"] == 1
    # usage: the tokens of each distinct valid program, scored once (SUM_A_COMMENTED is SUM_A's duplicate; top_k only
    # cuts what is returned).
    tokens = [httpx.post(server + "/v1/score", json={"pairs": [{"question": Q1, "code": code}]}).json()["usage"]
              for code in (SUM_B, SUM_A)]
    assert answer["usage"]["prompt_tokens"] == sum(t["prompt_tokens"] for t in tokens) > 0
    assert top["usage"] == answer["usage"]


# -- concurrency and batching --------------------------------------------------------------------------------------

def test_concurrent_clients_get_their_own_scores(server: str) -> None:
    codes = [f"def f(x):\n    return x + {i}" for i in range(24)]
    alone = [httpx.post(server + "/v1/score", json={"pairs": [{"question": Q1, "code": c}]}, timeout=60)
             .json()["data"][0]["score"] for c in codes]

    def one(i: int) -> float:
        with httpx.Client(timeout=60) as client:
            return client.post(server + "/v1/score", json={"pairs": [{"question": Q1, "code": codes[i]}]}).json()[
                "data"][0]["score"]

    before = _metric(server, "codescaler_batch_requests_sum")
    batches_before = _metric(server, "codescaler_batch_requests_count")
    with ThreadPoolExecutor(max_workers=24) as pool:
        together = list(pool.map(one, range(24)))
    assert together == pytest.approx(alone, abs=1e-4)
    requests = _metric(server, "codescaler_batch_requests_sum") - before
    batches = _metric(server, "codescaler_batch_requests_count") - batches_before
    assert requests == 24
    assert batches < 24, "concurrent requests were never batched together"


def test_mixed_endpoints_concurrently(server: str) -> None:
    def rank_call(_: int) -> int:
        body = {"question": Q2, "candidates": [{"response": fenced(MAX_A)}, {"response": "no"}]}
        return httpx.post(server + "/v1/rank", json=body, timeout=60).status_code

    def rewards_call(_: int) -> int:
        body = {"items": [{"question": Q1, "response": fenced(SUM_A)}]}
        return httpx.post(server + "/v1/rewards", json=body, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda i: (rank_call if i % 2 else rewards_call)(i), range(16)))
    assert statuses == [200] * 16


def _metric(server: str, name: str) -> float:
    text = httpx.get(server + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics:\n{text[:2000]}")


# -- the other endpoints -------------------------------------------------------------------------------------------

def test_health_models_and_metrics(server: str, reward_dir: Path) -> None:
    assert httpx.get(server + "/health").json()["status"] == "ok"
    models = httpx.get(server + "/v1/models").json()
    assert models["data"][0]["id"] == str(reward_dir) and models["data"][0]["max_model_len"] == 4096
    text = httpx.get(server + "/metrics").text
    for name in ("codescaler_requests_total", "codescaler_request_seconds_bucket", "codescaler_texts_total",
                 "codescaler_tokens_total", "codescaler_batch_texts_bucket", "codescaler_queue_depth",
                 "codescaler_queue_wait_seconds_bucket"):
        assert name in text, name


def test_score_and_rewards_shapes(server: str) -> None:
    score = httpx.post(server + "/v1/score", json={"pairs": [{"question": Q1, "code": SUM_A}]}).json()
    raw = score["data"][0]["score"]
    answered = httpx.post(server + "/v1/rewards", json={"items": [
        {"question": Q1, "response": fenced(SUM_A)}, {"question": Q1, "response": "no code"}]}).json()
    rewards = answered["data"]
    assert answered["usage"] == score["usage"] and score["usage"]["prompt_tokens"] > 0  # the invalid one ran nothing
    assert rewards[0]["score"] == pytest.approx(raw, abs=1e-4)
    assert rewards[0]["reward"] == pytest.approx(math.log1p(math.exp(raw)), abs=1e-4)
    assert rewards[1] == {**rewards[1], "reward": 0.0, "score": None, "valid": False, "code": ""}
    as_raw = httpx.post(server + "/v1/rewards", json={"raw": True, "items": [
        {"question": Q1, "response": fenced(SUM_A)}]}).json()["data"]
    assert as_raw[0]["reward"] == pytest.approx(raw, abs=1e-4)


def test_classify_takes_token_ids_and_texts(server: str, reward_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(reward_dir))
    text = tokenizer.apply_chat_template([{"role": "user", "content": Q1}, {"role": "assistant", "content": SUM_A}],
                                         tokenize=False)
    ids = tokenizer(text)["input_ids"]
    expected = httpx.post(server + "/v1/score", json={"pairs": [{"question": Q1, "code": SUM_A}]}).json()[
        "data"][0]["score"]
    by_ids = httpx.post(server + "/classify", json={"model": str(reward_dir), "input": [ids, ids[:5]],
                                                    "use_activation": False}).json()
    assert [d["index"] for d in by_ids["data"]] == [0, 1]
    assert by_ids["data"][0]["probs"][0] == pytest.approx(expected, abs=1e-4)
    by_text = httpx.post(server + "/classify", json={"input": [text], "use_activation": False}).json()
    assert by_text["data"][0]["probs"][0] == pytest.approx(expected, abs=1e-4)
    activated = httpx.post(server + "/classify", json={"input": [text]}).json()
    assert activated["data"][0]["probs"][0] == pytest.approx(1 / (1 + math.exp(-expected)), abs=1e-5)


def test_over_length_input_is_truncated_and_flagged(server: str) -> None:
    long_code = "x = [" + ", ".join(str(i) for i in range(3000)) + "]"
    answer = httpx.post(server + "/v1/rank", json={"question": Q1, "candidates": [
        {"code": long_code}, {"code": SUM_A}]}, timeout=120).json()["data"]
    by_code = {r["code"]: r for r in answer}
    assert by_code[long_code]["truncated"] is True and by_code[long_code]["score"] is not None
    assert by_code[SUM_A]["truncated"] is False


# -- OpenRLHF ------------------------------------------------------------------------------------------------------

def test_get_reward_answers_openrlhf_requests(server: str, reward_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(reward_dir))
    prompt = tokenizer.apply_chat_template([{"role": "system", "content": "You are a coder."},
                                            {"role": "user", "content": Q1}], tokenize=False,
                                           add_generation_prompt=True)
    responses = [fenced(SUM_A) + "<|im_end|>", "I don't know.<|im_end|>", fenced(SUM_B) + "<|im_end|><|endoftext|>"]
    # As OpenRLHF's remote_rm_fn sends it (requests.post(json=...)): full decoded sequences, prompts, labels;
    # left padding may stay in front of the query.
    payload = {"query": ["<|endoftext|>" + prompt + r for r in responses], "prompts": [prompt] * 3,
               "labels": ["", "", ""]}
    answer = httpx.post(server + "/get_reward", json=payload, headers={"Content-Type": "application/json"}).json()
    assert set(answer) == {"rewards", "scores", "extra_logs"}
    assert len(answer["rewards"]) == len(answer["scores"]) == 3
    assert answer["extra_logs"]["valid"] == [1.0, 0.0, 1.0]
    assert answer["rewards"][1] == 0.0
    expected = httpx.post(server + "/v1/rewards", json={"items": [
        {"question": Q1, "response": fenced(SUM_A)}, {"question": Q1, "response": fenced(SUM_B)}]}).json()["data"]
    assert answer["rewards"][0] == pytest.approx(expected[0]["reward"], abs=1e-6)
    assert answer["rewards"][2] == pytest.approx(expected[1]["reward"], abs=1e-6)
    assert answer["scores"][0] == pytest.approx(expected[0]["score"], abs=1e-6)
    # Older OpenRLHF sends only `query`: the question and response come from the chat markup.
    legacy = httpx.post(server + "/get_reward", json={"query": payload["query"]}).json()
    assert legacy["rewards"] == pytest.approx(answer["rewards"], abs=1e-6)
    # Newer OpenRLHF may add `metas`; unknown fields are ignored.
    with_metas = httpx.post(server + "/get_reward", json={**payload, "metas": [{}, {}, {}]})
    assert with_metas.status_code == 200


# -- errors, auth and backpressure ---------------------------------------------------------------------------------

def test_bad_requests_get_openai_shaped_errors_naming_the_field(server: str) -> None:
    answer = httpx.post(server + "/v1/score", json={"pairs": [{"question": Q1}]})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == "pairs[0].code"
    bad = httpx.post(server + "/v1/rank", json={"question": Q1, "candidates": [{"response": 3}]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "candidates[0]"
    assert "must be a string" in bad.json()["error"]["message"]
    neither = httpx.post(server + "/v1/rank", json={"question": Q1, "candidates": [{"text": "x"}]})
    assert neither.status_code == 400 and "neither" in neither.json()["error"]["message"]
    not_json = httpx.post(server + "/v1/rank", content=b"{oops", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]["message"]
    wrong_model = httpx.post(server + "/classify", json={"model": "other", "input": [[1, 2]]})
    assert wrong_model.status_code == 404 and wrong_model.json()["error"]["param"] == "model"
    bad_ids = httpx.post(server + "/classify", json={"input": [[1, 10 ** 9]]})
    assert bad_ids.status_code == 400 and bad_ids.json()["error"]["param"] == "input[0]"
    assert httpx.get(server + "/nowhere").json()["error"]["code"] == 404
    # A bad item never fails the good ones batched with it: the server still answers.
    assert httpx.post(server + "/v1/score", json={"pairs": [{"question": Q1, "code": SUM_A}]}).status_code == 200


def test_api_key_protects_everything_but_health(locked_server: str, reward_dir: Path, tmp_path: Path) -> None:
    assert httpx.get(locked_server + "/health").status_code == 200
    for path in ("/v1/models", "/metrics"):
        answer = httpx.get(locked_server + path)
        assert answer.status_code == 401 and answer.json()["error"]["type"] == "authentication_error"
    assert httpx.post(locked_server + "/v1/score", json={"pairs": []},
                      headers={"Authorization": "Bearer wrong"}).status_code == 401
    auth = {"Authorization": "Bearer s3cret"}
    assert httpx.get(locked_server + "/v1/models", headers=auth).status_code == 200
    candidates = write_jsonl(tmp_path / "c.jsonl", RECORDS[:2])
    records = rank_cli(str(candidates), "-r", str(reward_dir), "--reward-url", locked_server, "--api-key", "s3cret")
    assert all(r["score"] is not None for r in records)


def test_full_queue_answers_503_with_retry_after(locked_server: str) -> None:
    auth = {"Authorization": "Bearer s3cret"}
    body = {"pairs": [{"question": Q1, "code": f"def f():\n    return {i}"} for i in range(64)]}

    def call(_: int) -> httpx.Response:
        with httpx.Client(timeout=120) as client:
            return client.post(locked_server + "/v1/score", json=body, headers=auth)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(call, range(16)))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 503} and 200 in statuses
    busy = [a for a in answers if a.status_code == 503]
    assert busy, "a queue of one never filled up under 16 concurrent requests"
    assert busy[0].headers["retry-after"] == "1" and busy[0].json()["error"]["type"] == "server_busy"


# -- process lifecycle ---------------------------------------------------------------------------------------------

def test_sigterm_drains_requests_in_flight(reward_dir: Path, tmp_path: Path) -> None:
    served = start_serve(reward_dir, log=tmp_path / "serve.log")
    body = {"pairs": [{"question": Q1, "code": f"def f(x):\n    return x * {i}"} for i in range(400)]}
    outcome: dict = {}

    def call() -> None:
        try:
            outcome["answer"] = httpx.post(served.url + "/v1/score", json=body, timeout=120)
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    def received() -> float:
        for line in httpx.get(served.url + "/metrics", timeout=10).text.splitlines():
            if line.startswith('codescaler_items_total{endpoint="/v1/score"}'):
                return float(line.split()[-1])
        return 0.0

    thread = threading.Thread(target=call)
    thread.start()
    # SIGTERM once the handler has the request (uvicorn drops connections whose request it has not read yet);
    # scoring 400 texts takes far longer than this check.
    deadline = time.monotonic() + 60
    while received() < 400 and time.monotonic() < deadline:
        time.sleep(0.02)
    status = stop_serve(served)
    thread.join(120)
    assert "answer" in outcome, outcome.get("error")
    assert outcome["answer"].status_code == 200
    assert len(outcome["answer"].json()["data"]) == 400
    assert status == 0
    assert "stopped" in served.log.read_text()


def test_model_load_failure_exits_1_before_binding(tmp_path: Path) -> None:
    port = free_port()
    result = subprocess.run([sys.executable, "-m", "codescaler_cli", "serve", "-r", str(tmp_path / "missing"),
                             "--port", str(port)], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: cannot load reward model") and lines[1].startswith("hint:")
    assert "Traceback" not in result.stderr


def test_generator_options_the_chosen_generator_does_not_read_are_warned_about(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    # The warnings come first; start-up then fails fast (here --n over --max-best-of, before anything loads).
    alone = runner.invoke(app, ["serve", "-r", missing, "--n", "4", "--max-best-of", "2", "--generator-dtype",
                                "float32"])
    assert alone.exit_code == 2, alone.stderr
    assert "warning: --n is ignored without --generator-url or -m" in alone.stderr
    assert "warning: --generator-dtype is ignored without --generator-url or -m" in alone.stderr
    port = free_port()  # nothing listens there: the generator check fails at once, before the reward model loads
    remote = runner.invoke(app, ["serve", "-r", missing, "--generator-url", f"http://127.0.0.1:{port}/v1",
                                 "--generator-max-retries", "0", "--generator-gpu-memory-utilization", "0.5",
                                 "--max-model-len", "512", "--generator-concurrency", "2"])
    assert remote.exit_code == 1, remote.stderr
    assert "warning: --generator-gpu-memory-utilization is ignored with --generator-url" in remote.stderr
    assert "warning: --max-model-len is ignored with --generator-url" in remote.stderr
    assert "--generator-concurrency is ignored" not in remote.stderr  # servers read it
    assert "Traceback" not in remote.stderr


def test_a_reward_model_out_of_memory_after_the_generator_engine_names_the_engines_share(reward_dir: Path) -> None:
    from codescaler_cli.backends.loading import load_error
    from codescaler_cli.generation.config import GeneratorConfig
    from codescaler_cli.scoring import ScorerConfig
    from codescaler_cli.serving.server import ServeConfig, point_at_the_engine

    def failure(message: str) -> Exception:
        return load_error("reward model", str(reward_dir), RuntimeError(message))

    scorer = ScorerConfig(model=str(reward_dir))
    engine = ServeConfig(scorer=scorer, generator=GeneratorConfig(model="Qwen/Qwen2.5-Coder-7B-Instruct"))
    oom = failure("CUDA out of memory. Tried to allocate 2.00 GiB")
    own_hint = oom.hint
    point_at_the_engine(oom, engine)
    assert oom.hint.startswith("the generator engine loaded first") and "--generator-gpu-memory-utilization" in oom.hint
    assert oom.hint.endswith(f"otherwise {own_hint}")
    # Not memory, or no engine in this process (a generator server, or none): the hint is left as it was.
    for error, config in ((failure("weights are corrupt: invalid header"), engine),
                          (failure("CUDA out of memory"), ServeConfig(scorer=scorer, generator=GeneratorConfig(
                              model="m", urls=["http://gen:8000/v1"]))),
                          (failure("CUDA out of memory"), ServeConfig(scorer=scorer))):
        before = error.hint
        point_at_the_engine(error, config)
        assert error.hint == before and "--generator-gpu-memory-utilization" not in (error.hint or "")


def test_port_in_use_exits_1_before_the_model_loads(server: str, reward_dir: Path, tmp_path: Path) -> None:
    port = server.rsplit(":", 1)[1]
    # The weights are damaged: loading them would fail too, so the error says which check came first.
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(reward_dir, damaged)
    (damaged / "model.safetensors").write_bytes(b"not weights")
    result = subprocess.run([sys.executable, "-m", "codescaler_cli", "serve", "-r", str(damaged), "--port", port],
                            capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr
    assert "cannot load reward model" not in result.stderr


def test_help_does_not_import_the_server_stack() -> None:
    code = ("import sys; from codescaler_cli.cli import app; "
            "print(json.dumps(sorted(m for m in ('fastapi', 'uvicorn', 'torch', 'transformers', 'vllm') "
            "if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout) == []


@pytest.mark.vllm
def test_vllm_scorer_serves_the_same_scores(server: str, reward_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    import os

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    pairs = {"pairs": [{"question": Q1, "code": SUM_A}, {"question": Q2, "code": MAX_A}]}
    expected = [d["score"] for d in httpx.post(server + "/v1/score", json=pairs).json()["data"]]
    with serving(reward_dir, "--scorer", "vllm", "--dtype", "float32", "--max-length", "1024",
                 log=tmp_path / "serve-vllm.log") as served:
        answer = httpx.post(served.url + "/v1/score", json=pairs, timeout=120).json()
        ids = httpx.post(served.url + "/classify", json={"input": [[1, 2, 3]], "use_activation": False}).json()
    assert [d["score"] for d in answer["data"]] == pytest.approx(expected, abs=1e-4)
    assert len(ids["data"]) == 1


def test_a_lone_surrogate_in_a_request_gets_an_answer_not_a_500(server: str) -> None:
    # Legal JSON (an escaped lone surrogate), not encodable as UTF-8: the answer escapes it instead of failing.
    body = '{"question": "q \\ud800", "candidates": [{"response": "\\ud800"}, {"code": "def f():\\n    return 1"}]}'
    answer = httpx.post(server + "/v1/rank", content=body, headers={"content-type": "application/json"}, timeout=60)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert len(data) == 2 and data[0]["valid"] and data[0]["rank"] == 1 and data[1]["valid"] is False
    assert data[1]["response"] == "\ud800"
