"""HTTP calls to OpenAI-compatible (vLLM) servers: several replicas, bounded concurrency, timeouts, retries.

Requests are spread across the given base URLs; a request that fails on a connection error, a timeout, a 429 or
a 5xx is retried with exponential backoff (on the next replica when there are several). Other 4xx answers are
the request's own fault and are not retried. Ctrl-C does not wait for requests in flight: the workers are daemon
threads, and an interrupted `map` stops handing out work and closes the connections.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..errors import BackendError, UsageError

T = TypeVar("T")
R = TypeVar("R")

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class RequestFailed(Exception):
    """One request failed for good (after retries, or with a non-retryable status)."""

    def __init__(self, url: str, cause: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {cause}")
        self.url = url
        self.cause = cause
        self.status = status


def normalise_base_url(url: str) -> str:
    """The OpenAI base URL of a server: `http://host:8000` and `http://host:8000/v1` both mean `.../v1`.

    A URL with another path (a server behind a proxy prefix) is kept as given.
    """
    from urllib.parse import urlsplit

    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"'{url}' is not an http(s) URL", "give a URL like http://127.0.0.1:8000/v1")
    return url + "/v1" if not parts.path else url


def server_root(url: str) -> str:
    """A vLLM server's root: pooling endpoints (/classify, /health) live there, not under /v1."""
    return url[: -len("/v1")] if url.endswith("/v1") else url


class EndpointPool:
    """POSTs JSON to a set of replicas with retries; `map` runs many requests with bounded concurrency."""

    def __init__(self, base_urls: Sequence[str], *, api_key: str | None = None, timeout: float = 600.0,
                 max_retries: int = 4, backoff: float = 0.5, concurrency: int = 16) -> None:
        import httpx

        if not base_urls:
            raise UsageError("no server URL given")
        self.base_urls = [normalise_base_url(url) for url in base_urls]
        self.max_retries = max_retries
        self.backoff = backoff
        self.concurrency = max(1, concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=self.concurrency * len(self.base_urls),
                              max_keepalive_connections=self.concurrency * len(self.base_urls))
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=10.0), limits=limits)
        self._next = itertools.count()
        self._lock = threading.Lock()

    def _pick(self) -> int:
        with self._lock:
            return next(self._next) % len(self.base_urls)

    def get(self, base_url: str, path: str) -> Any:
        """One GET without retries (for start-up checks); raises RequestFailed."""
        import httpx

        url = base_url + path
        try:
            response = self._client.get(url, timeout=10.0)
        except httpx.HTTPError as exc:
            raise RequestFailed(url, _describe(exc)) from None
        if response.status_code >= 400:
            raise RequestFailed(url, f"HTTP {response.status_code}: {_body(response)}", response.status_code)
        try:
            return response.json()
        except ValueError:
            return response.text

    def post(self, path: str, payload: dict[str, Any], *, root: bool = False) -> Any:
        """POST JSON to one replica (rotating), retrying transient failures; returns the decoded JSON."""
        import httpx

        start = self._pick()
        last: RequestFailed | None = None
        for attempt in range(self.max_retries + 1):
            base = self.base_urls[(start + attempt) % len(self.base_urls)]
            url = (server_root(base) if root else base) + path
            try:
                response = self._client.post(url, json=payload)
            except httpx.HTTPError as exc:
                last = RequestFailed(url, _describe(exc))
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError:
                        last = RequestFailed(url, "the server's answer is not JSON")
                else:
                    last = RequestFailed(url, f"HTTP {response.status_code}: {_body(response)}",
                                         response.status_code)
                    if response.status_code not in RETRY_STATUS:
                        raise last
                    retry_after = _retry_after(response)
                    if retry_after is not None and attempt < self.max_retries:
                        time.sleep(retry_after)
                        continue
            if attempt < self.max_retries:
                # Exponential backoff with jitter, so many workers do not hammer a recovering server in step.
                time.sleep(self.backoff * (2 ** attempt) * (0.5 + random.random() / 2))
        assert last is not None
        raise last

    def map(self, function: Callable[[T], R], items: Sequence[T],
            on_done: Callable[[int, R | None, BaseException | None], None] | None = None) -> list[R | BaseException]:
        """Apply `function` to items with bounded concurrency; results in order, exceptions returned in place.

        On KeyboardInterrupt (or any exception in the waiting thread) no further item starts, the connections are
        closed, and the exception propagates at once: daemon workers never hold the process at exit.
        """
        results: list[R | BaseException] = [RuntimeError("not run")] * len(items)
        if not items:
            return results
        lock = threading.Lock()
        next_index = itertools.count()
        remaining = [len(items)]
        finished = threading.Event()
        cancelled = threading.Event()

        def work() -> None:
            while not cancelled.is_set():
                with lock:
                    index = next(next_index)
                if index >= len(items):
                    return
                try:
                    try:
                        value = function(items[index])
                    except Exception as exc:  # one failed item must not sink the others
                        results[index] = exc
                        if on_done and not cancelled.is_set():
                            on_done(index, None, exc)
                    else:
                        results[index] = value
                        if on_done and not cancelled.is_set():
                            on_done(index, value, None)
                finally:
                    # Counted even if on_done raised: the waiting thread must never wait for an item forever.
                    with lock:
                        remaining[0] -= 1
                        if remaining[0] == 0:
                            finished.set()

        workers = min(len(items), self.concurrency * len(self.base_urls))
        for number in range(workers):
            threading.Thread(target=work, name=f"codescaler-http-{number}", daemon=True).start()
        try:
            while not finished.wait(0.1):  # a timed wait, so a signal is handled at once
                pass
        except BaseException:
            cancelled.set()
            self.close()
            raise
        return results

    def check_servers(self, what: str) -> dict[str, Any]:
        """Fail fast, naming the URL, when a server is down at start; returns each server's /v1/models answer."""
        answers: dict[str, Any] = {}
        for base in self.base_urls:
            try:
                answers[base] = self.get(base, "/models")
            except RequestFailed as exc:
                if exc.status in (401, 403):  # it answered: reachable, but it wants a key (or another one)
                    flags = ("--api-key of rank, --reward-api-key of generate and eval, or "
                             "CODESCALER_REWARD_API_KEY" if what == "reward" else
                             "--api-key of generate and eval, --generator-api-key of serve, or "
                             "CODESCALER_GENERATOR_API_KEY")
                    raise BackendError(f"{what} server {base} refused the request: {exc.cause}",
                                       f"the server wants an API key: pass the key it was started with ({flags}; "
                                       "OPENAI_API_KEY works for both)") from None
                raise BackendError(f"{what} server {base} is not reachable: {exc.cause}",
                                   "check that the vLLM server is running and the URL, port and --api-key are "
                                   "right (e.g. curl " + base + "/models)") from None
        return answers

    def close(self) -> None:
        self._client.close()


def served_models(models_answer: Any) -> dict[str, str]:
    """{model id: its root (the path or hub id it was loaded from, as vLLM reports it; else the id)}."""
    models: dict[str, str] = {}
    data = models_answer.get("data") if isinstance(models_answer, dict) else None
    for entry in data if isinstance(data, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            root = entry.get("root")
            models[entry["id"]] = root if isinstance(root, str) and root else entry["id"]
    return models


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _body(response: Any) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300] + ("…" if len(text) > 300 else "")


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(30.0, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None
