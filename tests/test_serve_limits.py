"""What no request can make `codescaler serve` do: read a body without bound, tokenize a text whole, fail after
the work on what it could have refused up front, or keep other clients waiting.

A real server subprocess (the tiny reward model) with texts allowed up to 12 million characters, so a 10 MB
question is cut rather than refused, and bodies up to 24 MB. Its memory is read from /proc (VmHWM: the peak).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.sample_candidates import Q1, SUM_A
from helpers.servers import Served, serving

MAX_LENGTH = 512
SMALL = {"pairs": [{"question": Q1, "code": SUM_A}]}
# A generous bound for a loaded 2-core machine; before the limits a 10 MB question took 45 s and 2 GB here.
PROMPT = 1.0
# "A few hundred MB": before the limits one 10 MB question raised the peak by 2 GB, a 50 MB body by 10 GB.
MEMORY = 300 << 20


@pytest.fixture(scope="module")
def limited(reward_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("serve") / "serve-limits.log"
    with serving(reward_dir, "--max-text-chars", "12000000", "--max-request-bytes", "24000000",
                 "--max-length", str(MAX_LENGTH), log=log) as served:
        yield served


def memory_peak(pid: int) -> int:
    """The process's peak resident memory in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def post(url: str, body: Any) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    answer = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=120)
    return answer, time.perf_counter() - started


def while_answering(send: Any, url: str) -> tuple[Any, list[float]]:
    """Run `send()` on a thread and small requests back to back on this one until it returns; its result and the
    small requests' seconds (at least one was sent while it ran)."""
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=send()))
    thread.start()
    seconds = []
    while thread.is_alive() or not seconds:
        answer, elapsed = post(url + "/v1/score", json.dumps(SMALL))
        assert answer.status_code == 200, answer.text
        seconds.append(elapsed)
    thread.join()
    return outcome["result"], seconds


def headers_only(url: str, path: str, length: int) -> tuple[httpx.Response, float]:
    """Announce a body of `length` bytes, send none of it, and wait for the answer: a server that reads before it
    refuses never answers."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    started = time.perf_counter()
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        answer = connection.getresponse()
        response = httpx.Response(answer.status, content=answer.read())
    finally:
        connection.close()
    return response, time.perf_counter() - started


def chunks(size: int, block: int = 1 << 20) -> Iterator[bytes]:
    """A body of `size` bytes sent without a Content-Length (chunked), so only counting can stop it."""
    yield b'{"pairs": [{"question": "' + b"q" * (block - 25)
    sent = block
    while sent < size:
        yield b"q" * block
        sent += block


def test_hostile_requests_are_refused_or_cut_at_once_in_bounded_memory_and_hold_no_one_up(limited: Served) -> None:
    url = limited.url
    assert post(url + "/v1/score", json.dumps(SMALL))[0].status_code == 200  # warm
    peak = memory_peak(limited.process.pid)
    question = "word " * 2_000_000  # 10 MB
    hostile: list[tuple[str, str, Any]] = [
        ("a 50 MB body", "/v1/score", None),  # announced, never sent
        ("a 50 MB body without a length", "/v1/score", chunks(50_000_000)),
        ("a 13-million-character text", "/v1/rank",
         json.dumps({"question": "Q", "candidates": [{"code": "x = 1", "note": "n" * 13_000_000}]})),
        ("a 10 MB question to score", "/v1/score", json.dumps({"pairs": [{"question": question, "code": SUM_A}]})),
        ("a 10 MB question to rank", "/v1/rank", json.dumps({"question": question, "candidates": [{"code": SUM_A}]})),
        ("a 10 MB text to classify", "/classify", json.dumps({"input": [question], "use_activation": False})),
    ]
    answers = {}
    for name, path, body in hostile:
        send = (lambda: headers_only(url, path, 50_000_000)) if body is None else (lambda: post(url + path, body))
        (answer, elapsed), small = while_answering(send, url)
        assert elapsed < PROMPT, f"{name}: {elapsed:.2f}s"
        assert max(small) < PROMPT, f"a small request sent during {name} took {max(small):.2f}s"
        answers[name] = answer
        print(name, round(elapsed, 2), len(small), round(max(small), 2), answer.status_code)
    growth = memory_peak(limited.process.pid) - peak
    assert growth < MEMORY, f"the server's peak memory grew by {growth / 2**20:.0f} MB"

    for name in ("a 50 MB body", "a 50 MB body without a length"):
        error = answers[name].json()["error"]
        assert answers[name].status_code == 413 and "--max-request-bytes" in error["message"], error
    error = answers["a 13-million-character text"].json()["error"]
    assert answers["a 13-million-character text"].status_code == 413
    assert error["param"] == "candidates[0].note" and "13,000,000 characters" in error["message"]
    # The 10 MB question was cut, not refused, and scored as the whole text cut at max-length would be.
    scored = answers["a 10 MB question to score"].json()["data"][0]
    assert scored["truncated"] is True and scored["score"] is not None
    ranked = answers["a 10 MB question to rank"].json()["data"][0]
    assert ranked["truncated"] is True and ranked["score"] == pytest.approx(scored["score"], abs=1e-5)
    classified = answers["a 10 MB text to classify"].json()["data"][0]
    assert classified["truncated"] is True
    # A question cut far beyond what max-length reads gives the same score: the cut changed no token scored.
    shorter = httpx.post(url + "/v1/score", json={"pairs": [{"question": question[:200_000], "code": SUM_A}]},
                         timeout=60).json()["data"][0]
    assert shorter["truncated"] is True and shorter["score"] == pytest.approx(scored["score"], abs=1e-5)
