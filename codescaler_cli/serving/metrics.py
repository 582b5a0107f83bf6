"""Prometheus metrics for `/metrics`: requests, texts, tokens, batch sizes, queue depth and latencies, and for the
OpenAI best-of-N endpoints the time to the first byte, the generation time and the candidates sampled or failed.

Each server gets its own registry, so several apps in one process (tests) never collide.
"""

from __future__ import annotations

from collections.abc import Callable

from .batcher import BatchReport

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class Metrics:
    def __init__(self, queue_depth: Callable[[], float]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("codescaler_requests", "HTTP requests by endpoint and status.",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("codescaler_request_seconds", "Request latency by endpoint.", ["endpoint"],
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.items = Counter("codescaler_items", "Candidates, pairs or texts received, by endpoint.", ["endpoint"],
                             registry=self.registry)
        self.texts = Counter("codescaler_texts", "Items put through a batch (candidates, pairs, token inputs).",
                             registry=self.registry)
        self.tokens = Counter("codescaler_tokens", "Tokens run through the reward model.", registry=self.registry)
        self.batches = Counter("codescaler_batches", "Batches run.", registry=self.registry)
        self.batch_requests = Histogram("codescaler_batch_requests", "Requests per batch.", buckets=_SIZE_BUCKETS,
                                        registry=self.registry)
        self.batch_texts = Histogram("codescaler_batch_texts", "Items per batch.", buckets=_SIZE_BUCKETS,
                                     registry=self.registry)
        self.batch_seconds = Histogram("codescaler_batch_seconds", "Time to extract, dedup and score one batch.",
                                       buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.queue_wait = Histogram("codescaler_queue_wait_seconds", "Time a request waited before its batch ran.",
                                    buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("codescaler_queue_depth", "Requests waiting for a batch.", registry=self.registry)
        self.queue_depth.set_function(queue_depth)
        # Best-of-N: a streamed answer starts only after every candidate is sampled and scored, so the time to its
        # first byte is what an editor's user waits for; it is the whole latency of a non-streamed answer.
        self.first_byte = Histogram("codescaler_first_byte_seconds", "Time from a best-of-N request's arrival to "
                                    "the first byte of its answer.", ["endpoint", "stream"],
                                    buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.generation_seconds = Histogram("codescaler_generation_seconds", "Time to sample one request's "
                                            "best_of candidates from the generator.", ["endpoint"],
                                            buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.candidates = Counter("codescaler_candidates", "Best-of-N candidates by outcome (sampled, failed).",
                                  ["outcome"], registry=self.registry)
        self.best_of_in_flight = Gauge("codescaler_best_of_in_flight", "Best-of-N requests being sampled or scored.",
                                       registry=self.registry)

    def observe_batch(self, report: BatchReport) -> None:
        self.batches.inc()
        self.texts.inc(report.texts)
        self.tokens.inc(max(0, report.tokens))
        self.batch_requests.observe(report.jobs)
        self.batch_texts.observe(report.texts)
        self.batch_seconds.observe(report.seconds)
        for wait in report.waits:
            self.queue_wait.observe(wait)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
