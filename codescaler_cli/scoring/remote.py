"""Reward scoring against vLLM servers started with `--runner pooling`, through their `/classify` endpoint.

Texts are rendered and tokenized locally with the reward model's tokenizer (the same ids every scorer uses, cut
at `max_length`) and sent as token ids with `use_activation: false`, so the server returns the raw logit.
Several servers share the load; each request is retried on transient failures (see `backends.http`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..backends.http import RETRY_STATUS, EndpointPool, RequestFailed, served_models
from ..backends.loading import REWARD, check_model, load_error
from ..errors import BackendError, CodescalerError, UsageError
from .base import DEFAULT_MAX_LENGTH, SERVER_UNAVAILABLE, ProgressCallback, ScoreRequest, ScoreResult, ScoringStats
from .texts import RewardTexts

# Texts per /classify request: large enough to batch on the server, small enough to spread over replicas.
DEFAULT_REQUEST_SIZE = 16


class RemoteScorer:
    """Scores (question, code) pairs on one or more vLLM pooling servers."""

    def __init__(self, urls: Sequence[str], model: str | None, *, revision: str | None = None,
                 max_length: int = DEFAULT_MAX_LENGTH, api_key: str | None = None, concurrency: int = 4,
                 timeout: float = 600.0, max_retries: int = 4, request_size: int = DEFAULT_REQUEST_SIZE,
                 backoff: float = 0.5) -> None:
        from transformers import AutoTokenizer

        self.stats = ScoringStats()
        self.request_size = max(1, request_size)
        self.pool = EndpointPool(urls, api_key=api_key, timeout=timeout, max_retries=max_retries,
                                 concurrency=concurrency, backoff=backoff)
        # The name the servers serve the model under (often the path they were started with), and the model whose
        # tokenizer renders the texts: -r, or else the one the servers name.
        named = model is None
        self.served_name, model = served_reward(self.pool.check_servers("reward"), model)
        try:
            tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
        except Exception as exc:
            error = load_error("reward model tokenizer", model, exc)
            if named:
                error.add_hint(f"'{model}' is the model the servers name: pass the same model with -r (its hub "
                               "id, or a local copy) for its tokenizer")
            raise error from exc
        self.texts = RewardTexts(tokenizer, max_length)
        self._lock = threading.Lock()

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressCallback | None = None) -> list[ScoreResult]:
        started = time.perf_counter()
        results: list[ScoreResult] = []
        ids_list: list[list[int]] = []
        for request in requests:
            ids, truncated = self.texts.tokenize(request.question, request.code)
            results.append(ScoreResult(score=None, truncated=truncated, tokens=len(ids)))
            ids_list.append(ids)
        # Requests of up to request_size texts, but small enough that every replica gets some of the work.
        size = max(1, min(self.request_size, math.ceil(len(ids_list) / len(self.pool.base_urls))))
        chunks = [list(range(i, min(i + size, len(ids_list)))) for i in range(0, len(ids_list), size)]

        def classify(chunk: list[int]) -> list[float]:
            payload = {"model": self.served_name, "input": [ids_list[i] for i in chunk], "use_activation": False}
            answer = self.pool.post("/classify", payload, root=True)
            return parse_classify(answer, len(chunk))

        def done(index: int, value: Any, error: BaseException | None) -> None:
            if progress is not None:
                with self._lock:
                    progress(len(chunks[index]))

        outcomes = self.pool.map(classify, chunks, on_done=done)
        for chunk, outcome in zip(chunks, outcomes):
            if isinstance(outcome, BaseException):
                message = str(outcome) if isinstance(outcome, (RequestFailed, BackendError)) else repr(outcome)
                kind = None if _refused(outcome) else SERVER_UNAVAILABLE
                for i in chunk:
                    results[i].error = f"scoring request failed: {message}"
                    results[i].error_kind = kind
                continue
            for i, value in zip(chunk, outcome):
                results[i].score = value
                self.stats.tokens += results[i].tokens
                self.stats.padded_tokens += results[i].tokens
        self.stats.texts += len(requests)
        self.stats.batches += len(chunks)
        self.stats.seconds += time.perf_counter() - started
        return results

    def close(self) -> None:
        self.pool.close()


def served_reward(answers: dict[str, Any], model: str | None) -> tuple[str | None, str]:
    """(the name to send in requests, the model whose tokenizer renders the texts) from the reward servers'
    /v1/models answers (`answers`, by URL) and -r (`model`, None when not given).

    Without -r the servers say which model they serve: vLLM and `codescaler serve` both name it, with its `root`
    (the path or hub id it was loaded from). Never the default hub model in its place: a server that names none,
    several (`serve` with a generator lists both; the reward model is the one whose config says so), or a path
    that is not on this machine is a UsageError that says to pass -r.
    """
    url, answer = next(iter(answers.items()))
    served = served_models(answer)  # id -> root
    if model is not None:
        named = next((name for name, root in served.items() if model in (name, root)), None)
        return named or next(iter(served), None), model
    entries = list(served.items())
    if len(entries) > 1:
        entries = [(name, root) for name, root in entries if _is_reward_model(root)]
    pass_r = ("pass the reward model with -r (its hub id or a local directory): its tokenizer renders the texts "
              "sent to the server")
    if not entries:
        listed = ", ".join(served) or "none"
        raise UsageError(f"reward server {url} does not say which reward model it serves (its /v1/models lists: "
                         f"{listed})", pass_r)
    if len(entries) > 1:
        raise UsageError(f"reward server {url} serves several reward models ({', '.join(n for n, _ in entries)})",
                         pass_r)
    name, root = entries[0]
    local = Path(root).expanduser()
    if (root.startswith(("/", "./", "../", "~")) or root.count("/") > 1) and not local.is_dir():
        raise UsageError(f"reward server {url} serves '{root}', a directory on its machine that is not on this one",
                         pass_r)
    return name, root


def _is_reward_model(model: str) -> bool:
    try:
        check_model(model, None, REWARD)
    except CodescalerError:
        return False
    return True


def _refused(failure: BaseException) -> bool:
    """Whether the server refused this request itself (a 4xx other than the retried ones), rather than being
    unusable: then it is these texts, not the server, that failed."""
    status = failure.status if isinstance(failure, RequestFailed) else None
    return status is not None and 400 <= status < 500 and status not in RETRY_STATUS


def parse_classify(answer: Any, expected: int) -> list[float]:
    """Raw logits from a /classify answer: data[i].probs[0], ordered by data[i].index."""
    try:
        data = sorted(answer["data"], key=lambda item: item.get("index", 0))
        values = [float(item["probs"][0]) for item in data]
    except (KeyError, IndexError, TypeError, ValueError):
        raise BackendError(f"unexpected /classify answer: {str(answer)[:200]}",
                           "is the server a vLLM server started with --runner pooling?") from None
    if len(values) != expected:
        raise BackendError(f"/classify returned {len(values)} scores for {expected} texts")
    return values
