"""Latency budget of best-of-N through `codescaler serve`: one best-of-8 chat request through serve, against sampling
the same 8 candidates straight from the generator server.

Three ways to get the same 8 samples (same prompt, seeds s..s+7, same sampling settings), one request at a time,
interleaved so machine noise hits them alike:

- direct n=8: one `/v1/chat/completions` request with `n=8, seed=s` to the vLLM server (what a client would pay
  without best-of-N ranking);
- direct 8 x n=1: eight concurrent `n=1` requests with seeds s+j, which is how serve samples (a failed request then
  costs one candidate);
- serve best_of=8: the OpenAI request to `codescaler serve --generator-url`, which samples, extracts, scores with
  the reward model and answers with the winner; once with the default `--samples-per-request 1` (eight generator
  requests, as "direct 8 x n=1") and once with `--samples-per-request 8` (one request, as "direct n=8").

Printed: median and p90 latency of each, serve's own split (generation vs scoring, from the `codescaler` object), and
the overhead ratios serve / direct. On a shared machine one request's latency can swing several-fold from one
moment to the next, so the ratio of medians is noisy; the overhead measured inside each serve request (its wall time
minus its own generation time: HTTP in and out, extraction, queueing and scoring) is not, and the last line adds
that to the direct median. By default both servers are started here on 127.0.0.1 with the tiny models:

    python bench/bench_serve_openai.py --repeats 20
    python bench/bench_serve_openai.py --generator-url http://127.0.0.1:8000/v1 -r LARK-Lab/CodeScaler-4B
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

QUESTION = ("Write a Python function `add(a, b)` that returns the sum of two integers a and b. "
            "Answer with one fenced Python code block.")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(process: subprocess.Popen, url: str, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit(f"{what} did not start in {timeout:.0f} s")


def start_generator(model: str, max_model_len: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
                                "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
                                "--max-model-len", str(max_model_len)],
                               stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    wait_healthy(process, f"http://127.0.0.1:{port}", "the vLLM generator server", 600)
    return process, f"http://127.0.0.1:{port}/v1"


def start_serve(reward_model: str, generator_url: str, threads: int, log: Path,
                extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    process = subprocess.Popen([sys.executable, "-m", "codescaler_cli", "serve", "-r", reward_model, "--host",
                                "127.0.0.1", "--port", str(port), "--generator-url", generator_url, *extra],
                               stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    wait_healthy(process, f"http://127.0.0.1:{port}", "codescaler serve", 300)
    return process, f"http://127.0.0.1:{port}/v1"


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    models = Path(os.environ.get("CODESCALER_TEST_MODELS", "models/tiny"))
    parser.add_argument("-r", "--reward-model", default=str(models / "reward"))
    parser.add_argument("-m", "--generator-model", default=str(models / "coder"),
                        help="model for the generator server started here (ignored with --generator-url)")
    parser.add_argument("--generator-url", help="use this running generator server instead of starting one")
    parser.add_argument("--best-of", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of serve (OMP_NUM_THREADS; 0: "
                        "torch's default)")
    args = parser.parse_args()

    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    generator_process = None
    serve_processes: list[subprocess.Popen] = []
    try:
        generator_url = args.generator_url
        if generator_url is None:
            print("starting the vLLM generator server ...", file=sys.stderr, flush=True)
            generator_process, generator_url = start_generator(args.generator_model, 512,
                                                               logs / "bench-openai-generator.log")
        print("starting codescaler serve ...", file=sys.stderr, flush=True)
        serve_urls = []
        for split in (1, args.best_of):
            process, url = start_serve(args.reward_model, generator_url, args.threads,
                                       logs / f"bench-openai-serve-{split}.log", ["--samples-per-request", str(split)])
            serve_processes.append(process)
            serve_urls.append(url)
        model = httpx.get(generator_url + "/models", timeout=10).json()["data"][0]["id"]
        messages = [{"role": "user", "content": QUESTION}]
        common = {"model": model, "messages": messages, "max_tokens": args.max_tokens, "temperature": 0.6,
                  "top_p": 0.95}
        client = httpx.Client(timeout=600)
        pool = ThreadPoolExecutor(args.best_of)

        def direct(seed: int) -> dict[str, Any]:
            answer = client.post(generator_url + "/chat/completions", json={**common, "n": args.best_of, "seed": seed})
            answer.raise_for_status()
            return answer.json()

        def direct_split(seed: int) -> list[dict[str, Any]]:
            def one(j: int) -> dict[str, Any]:
                answer = client.post(generator_url + "/chat/completions", json={**common, "n": 1, "seed": seed + j})
                answer.raise_for_status()
                return answer.json()

            return list(pool.map(one, range(args.best_of)))

        def served(url: str) -> Any:
            def run(seed: int) -> dict[str, Any]:
                answer = client.post(url + "/chat/completions", json={**common, "seed": seed, "best_of": args.best_of})
                answer.raise_for_status()
                return answer.json()

            return run

        runs: dict[str, Any] = {"direct n=8": direct, "direct 8 x n=1": direct_split,
                                "serve, 8 x n=1": served(serve_urls[0]), "serve, n=8": served(serve_urls[1])}
        for function in runs.values():  # warm-up: compile paths, fill caches, open connections
            function(10_000)
        times: dict[str, list[float]] = {name: [] for name in runs}
        generation: dict[str, list[float]] = {name: [] for name in runs if name.startswith("serve")}
        scoring: dict[str, list[float]] = {name: [] for name in generation}
        overhead: dict[str, list[float]] = {name: [] for name in generation}
        for repeat in range(args.repeats):
            seed = repeat * 1000
            for name, function in runs.items():
                started = time.perf_counter()
                result = function(seed)
                times[name].append(time.perf_counter() - started)
                if name in generation:
                    generation[name].append(result["codescaler"]["generation_seconds"])
                    scoring[name].append(result["codescaler"]["scoring_seconds"])
                    overhead[name].append(times[name][-1] - result["codescaler"]["generation_seconds"])
        pool.shutdown()
        client.close()
    finally:
        for process in serve_processes:
            stop(process)
        stop(generator_process)

    print(f"\nbest-of-{args.best_of}, max_tokens {args.max_tokens}, {args.repeats} requests each, generator {model}, "
          f"reward model {args.reward_model}, {os.cpu_count()} CPUs\n")
    header = f"{'path':20} {'median ms':>10} {'p90 ms':>8}"
    print(header)
    print("-" * len(header))
    for name, values in times.items():
        print(f"{name:20} {statistics.median(values) * 1000:10.0f} {percentile(values, 0.9) * 1000:8.0f}")
    print()
    for name in generation:
        print(f"{name}: generation {statistics.median(generation[name]) * 1000:.0f} ms, extraction + scoring "
              f"{statistics.median(scoring[name]) * 1000:.0f} ms (medians, as serve reports them); wall minus "
              f"generation {statistics.median(overhead[name]) * 1000:.0f} ms median, "
              f"{percentile(overhead[name], 0.9) * 1000:.0f} ms p90")
    base = statistics.median(times["direct n=8"])
    split = statistics.median(times["direct 8 x n=1"])
    for name, direct_name, direct_median in (("serve, n=8", "direct n=8", base),
                                             ("serve, 8 x n=1", "direct 8 x n=1", split)):
        print(f"overhead ratio {name} / {direct_name}: {statistics.median(times[name]) / direct_median:.2f}x")
    print(f"overhead ratio serve (default, 8 x n=1) / direct n=8: "
          f"{statistics.median(times['serve, 8 x n=1']) / base:.2f}x")
    added = statistics.median(overhead["serve, n=8"])
    print(f"in-request overhead of serve (n=8 split) over direct n=8: ({base * 1000:.0f} + {added * 1000:.0f} ms) / "
          f"{base * 1000:.0f} ms = {(base + added) / base:.3f}x")


if __name__ == "__main__":
    main()
