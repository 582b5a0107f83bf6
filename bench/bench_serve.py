"""Load benchmark for `codescaler serve`: many concurrent clients with small requests, batched versus not.

Each client sends GRPO-shaped requests one after another: one question and 8 sampled responses to it, on
`/v1/rank`. The same requests go to two servers on 127.0.0.1 with the same model: one with dynamic batching
(the defaults), one scoring one request at a time (`--max-batch-requests 1 --batch-wait-ms 0`). Printed: throughput
(candidates/s), p50/p99 request latency and the batch sizes the server reports in /metrics.

    python bench/bench_serve.py -r models/tiny/reward --clients 64 --requests 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

_NAMES = ["total", "biggest", "smallest", "count_even", "reverse_words", "is_palindrome", "fib", "gcd"]


def make_request(rng: random.Random, index: int, candidates: int) -> dict:
    """One question and `candidates` short responses to it (a few invalid, some duplicates), as GRPO samples."""
    name = rng.choice(_NAMES)
    question = (f"Problem {index}: write a Python function `{name}(xs)` that takes a list of {rng.randint(3, 60)} "
                f"integers and returns the answer described in the statement. Read carefully; constraints: "
                f"1 <= len(xs) <= {rng.randint(10, 10_000)}.")
    responses = []
    for j in range(candidates):
        roll = rng.random()
        if roll < 0.1:
            responses.append("I am not sure how to solve this one.")
            continue
        if roll < 0.25 and responses:
            responses.append(rng.choice(responses))
            continue
        body = "\n".join(f"    v{k} = xs[{k} % len(xs)] * {rng.randint(1, 99)}" for k in range(rng.randint(2, 8)))
        code = f"def {name}(xs):\n{body}\n    return sum(xs) + {rng.randint(0, 1000)}"
        responses.append(f"Here is my solution:\n\n```python\n{code}\n```\n\nIt runs in linear time.")
    return {"question": question, "candidates": [{"response": r} for r in responses]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(model: str, extra: list[str], threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    process = subprocess.Popen([sys.executable, "-m", "codescaler_cli", "serve", "-r", model, "--host", "127.0.0.1",
                                "--port", str(port), *extra], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"serve exited: {process.stderr.read().decode(errors='replace')[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit("serve did not start")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def load(url: str, requests: list[list[dict]]) -> tuple[float, list[float], int]:
    """Run every client's requests (each client sequentially, clients concurrently); wall time and latencies."""
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=len(requests) + 8, max_keepalive_connections=len(requests) + 8)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def run_client(mine: list[dict]) -> None:
            nonlocal failures
            for body in mine:
                started = time.perf_counter()
                answer = await client.post(url + "/v1/rank", json=body)
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(run_client(mine) for mine in requests))
        return time.perf_counter() - started, latencies, failures


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run_mode(model: str, extra: list[str], workload: list[list[dict]], warmup: list[dict], threads: int) -> dict:
    process, url = start(model, extra, threads)
    try:
        for body in warmup:
            httpx.post(url + "/v1/rank", json=body, timeout=600)
        base = {name: metric(url, name) for name in ("codescaler_batch_requests_sum", "codescaler_batch_requests_count",
                                                      "codescaler_batch_texts_sum")}
        seconds, latencies, failures = asyncio.run(load(url, workload))
        after = {name: metric(url, name) for name in base}
    finally:
        stop(process)
    batches = max(1.0, after["codescaler_batch_requests_count"] - base["codescaler_batch_requests_count"])
    candidates = sum(len(body["candidates"]) for mine in workload for body in mine)
    return {"seconds": seconds, "throughput": candidates / seconds, "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99), "failures": failures,
            "requests_per_batch": (after["codescaler_batch_requests_sum"] - base["codescaler_batch_requests_sum"])
            / batches,
            "texts_per_batch": (after["codescaler_batch_texts_sum"] - base["codescaler_batch_texts_sum"]) / batches,
            "batches": int(batches)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_model = str(Path(os.environ.get("CODESCALER_TEST_MODELS", "models/tiny")) / "reward")
    parser.add_argument("-r", "--reward-model", default=default_model)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=4, help="requests per client")
    parser.add_argument("--candidates", type=int, default=8, help="candidates per request")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server (OMP_NUM_THREADS; 0: "
                        "torch's default). One avoids thread thrashing on a small shared machine.")
    parser.add_argument("--server-args", default="", help="extra `codescaler serve` options for both servers, "
                        "e.g. '--no-prefix-reuse'")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    workload = [[make_request(rng, c * args.requests + i, args.candidates) for i in range(args.requests)]
                for c in range(args.clients)]
    warmup = [make_request(random.Random(-1), -1, args.candidates)]
    common = args.server_args.split()
    modes = [("unbatched (one request at a time)", ["--max-batch-requests", "1", "--batch-wait-ms", "0", *common]),
             ("dynamic batching", common)]
    results = []
    for name, extra in modes:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.append((name, run_mode(args.reward_model, extra, workload, warmup, args.threads)))

    total = args.clients * args.requests * args.candidates
    print(f"\n{args.clients} clients x {args.requests} requests x {args.candidates} candidates = {total} candidates, "
          f"model {args.reward_model}, {os.cpu_count()} CPUs, server options: {args.server_args or '(defaults)'}\n")
    header = f"{'mode':36} {'cand/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/batch':>10} {'cand/batch':>11} {'fail':>5}"
    print(header)
    print("-" * len(header))
    for name, r in results:
        print(f"{name:36} {r['throughput']:8.0f} {r['p50'] * 1000:8.0f} {r['p99'] * 1000:8.0f} "
              f"{r['requests_per_batch']:10.1f} {r['texts_per_batch']:11.1f} {r['failures']:5d}")
    speedup = results[1][1]["throughput"] / results[0][1]["throughput"]
    print(f"\nbatching speed-up: {speedup:.1f}x throughput")


if __name__ == "__main__":
    main()
