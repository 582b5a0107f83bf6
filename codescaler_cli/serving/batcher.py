"""Dynamic batching: one worker thread owns the scorer; requests queue up and are scored together.

Callers (the server's event loop, or the in-process reward functions) submit jobs and get a future. The worker
takes the oldest job, then keeps adding queued jobs while the batch stays under the token budget, waiting at
most `batch_wait_ms` after the oldest job arrived for more to come. The whole batch then goes through the same
extraction, dedup and scorer code as `rank`, in one scorer call, so the model sees large batches and the
problem statement shared by a group's candidates is encoded once. The queue is bounded: a full queue refuses
new work at once (`QueueFull`) instead of letting latency grow without limit.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..extraction import extract_candidate
from ..pipeline import score_groups
from ..records import Candidate
from ..scoring.base import ScoreRequest, ScoreResult
from .scorer import score_token_ids

# Rough tokens per character for sizing batches before anything is tokenized (BPE on code and English).
CHARS_PER_TOKEN = 4
# Chat-template tokens around each text.
TEMPLATE_TOKENS = 16


class QueueFull(Exception):
    """The queue holds `max_queue` jobs already: the caller should retry later."""


class ShuttingDown(Exception):
    """The batcher no longer accepts work."""


@dataclass
class Job:
    """One request's work: candidate groups to extract and rank, (question, code) pairs, or token ids/texts."""

    kind: str  # "groups" | "pairs" | "ids"
    groups: list[list[Candidate]] = field(default_factory=list)
    extraction: str = "syntax"
    pairs: list[ScoreRequest] = field(default_factory=list)
    ids: list[list[int] | str] = field(default_factory=list)
    tokens: int = 0
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)

    @property
    def texts(self) -> int:
        if self.kind == "groups":
            return sum(len(group) for group in self.groups)
        return len(self.pairs) if self.kind == "pairs" else len(self.ids)


def groups_job(groups: list[list[Candidate]], extraction: str = "syntax") -> Job:
    tokens = sum(TEMPLATE_TOKENS + (len(c.question or "") + len(c.response or c.given_code or "")) // CHARS_PER_TOKEN
                 for group in groups for c in group)
    return Job(kind="groups", groups=groups, extraction=extraction, tokens=tokens)


def pairs_job(pairs: list[ScoreRequest]) -> Job:
    tokens = sum(TEMPLATE_TOKENS + (len(p.question) + len(p.code)) // CHARS_PER_TOKEN for p in pairs)
    return Job(kind="pairs", pairs=pairs, tokens=tokens)


def ids_job(inputs: list[list[int] | str]) -> Job:
    tokens = sum(len(x) // CHARS_PER_TOKEN if isinstance(x, str) else len(x) for x in inputs)
    return Job(kind="ids", ids=inputs, tokens=tokens)


@dataclass
class BatchReport:
    """What one batch did, for metrics."""

    jobs: int
    texts: int
    tokens: int
    seconds: float
    waits: list[float]


class Batcher:
    """Queue + worker thread around one scorer. `submit` is thread-safe; results arrive on the job's future."""

    def __init__(self, scorer: Any, *, max_batch_tokens: int = 16384, batch_wait_ms: float = 5.0,
                 max_queue: int = 1024, max_batch_requests: int = 256,
                 on_batch: Callable[[BatchReport], None] | None = None) -> None:
        self.scorer = scorer
        self.max_batch_tokens = max(1, max_batch_tokens)
        self.batch_wait = max(0.0, batch_wait_ms) / 1000.0
        self.max_queue = max(1, max_queue)
        self.max_batch_requests = max(1, max_batch_requests)
        self.on_batch = on_batch
        self._pending: collections.deque[Job] = collections.deque()
        self._condition = threading.Condition()
        self._closing = False
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name="codescaler-batcher", daemon=True)
        self._thread.start()

    # -- the caller's side ---------------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Jobs waiting (not yet in a batch)."""
        return len(self._pending)

    @property
    def in_flight(self) -> int:
        """Jobs waiting or being scored."""
        return len(self._pending) + self._busy

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closing

    def submit(self, job: Job) -> Future:
        with self._condition:
            if self._closing:
                raise ShuttingDown("the server is shutting down")
            if len(self._pending) >= self.max_queue:
                raise QueueFull(f"{len(self._pending)} requests are already queued")
            job.enqueued = time.monotonic()
            self._pending.append(job)
            self._condition.notify()
        return job.future

    def close(self, timeout: float | None = None) -> None:
        """Stop taking work, finish every queued job, and stop the worker."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        self._thread.join(timeout)

    # -- the worker's side ---------------------------------------------------------------------------------------

    def _next_batch(self) -> list[Job] | None:
        with self._condition:
            while not self._pending:
                if self._closing:
                    return None
                self._condition.wait()
            batch = [self._pending.popleft()]
            tokens = batch[0].tokens
            deadline = batch[0].enqueued + self.batch_wait
            while len(batch) < self.max_batch_requests:
                if self._pending:
                    if tokens + self._pending[0].tokens > self.max_batch_tokens:
                        break
                    job = self._pending.popleft()
                    batch.append(job)
                    tokens += job.tokens
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closing:
                    break
                self._condition.wait(remaining)
            self._busy = len(batch)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            started = time.monotonic()
            tokens_before = getattr(getattr(self.scorer, "stats", None), "tokens", 0)
            live = [job for job in batch if job.future.set_running_or_notify_cancel()]
            try:
                self._process(live)
            finally:
                self._busy = 0
            if self.on_batch is not None:
                tokens = getattr(getattr(self.scorer, "stats", None), "tokens", 0) - tokens_before
                report = BatchReport(jobs=len(live), texts=sum(job.texts for job in live), tokens=tokens,
                                     seconds=time.monotonic() - started,
                                     waits=[started - job.enqueued for job in live])
                try:
                    self.on_batch(report)
                except Exception:  # metrics must never stop scoring
                    pass

    def _process(self, jobs: list[Job]) -> None:
        for kind, run in (("groups", self._run_groups), ("pairs", self._run_pairs), ("ids", self._run_ids)):
            selected = [job for job in jobs if job.kind == kind]
            if not selected:
                continue
            try:
                outcomes = run(selected)
            except Exception as exc:
                if len(selected) == 1:
                    selected[0].future.set_exception(exc)
                    continue
                # One bad request must not fail the requests batched with it: run each alone.
                for job in selected:
                    self._process_alone(job, run)
                continue
            for job, outcome in zip(selected, outcomes):
                job.future.set_result(outcome)

    @staticmethod
    def _process_alone(job: Job, run: Callable[[list[Job]], list[Any]]) -> None:
        try:
            outcome = run([job])[0]
        except Exception as exc:
            job.future.set_exception(exc)
        else:
            job.future.set_result(outcome)

    def _run_groups(self, jobs: list[Job]) -> list[list[list[Candidate]]]:
        groups: list[list[Candidate]] = []
        for job in jobs:
            for group in job.groups:
                for candidate in group:
                    extract_candidate(candidate, job.extraction)
                groups.append(group)
        scored = score_groups(groups, self.scorer, chunk_requests=1 << 30)
        ranked = list(scored)
        outcomes, start = [], 0
        for job in jobs:
            outcomes.append(ranked[start:start + len(job.groups)])
            start += len(job.groups)
        return outcomes

    def _run_pairs(self, jobs: list[Job]) -> list[list[ScoreResult]]:
        requests = [pair for job in jobs for pair in job.pairs]
        results = self.scorer.score(requests) if requests else []
        return _split(results, [len(job.pairs) for job in jobs])

    def _run_ids(self, jobs: list[Job]) -> list[list[ScoreResult]]:
        inputs: list[list[int]] = []
        texts = self.scorer.texts
        for job in jobs:
            for item in job.ids:
                # A text is cut to what its first max_length tokens can cover before tokenizing (then flagged
                # truncated as any over-long ids are).
                inputs.append(texts.tokenizer(texts.bounded(item))["input_ids"] if isinstance(item, str) else item)
        results = score_token_ids(self.scorer, inputs) if inputs else []
        return _split(results, [len(job.ids) for job in jobs])


def _split(results: Sequence[Any], sizes: list[int]) -> list[list[Any]]:
    out, start = [], 0
    for size in sizes:
        out.append(list(results[start:start + size]))
        start += size
    return out
