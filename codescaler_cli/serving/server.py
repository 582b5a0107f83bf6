"""Running `codescaler serve`: check the models and the port, load the models, serve until SIGTERM, then drain and
exit.

What fails in a second fails before anything loads: a model of the wrong kind (read from its config) and a port
that is taken (the socket is bound first). It listens only once the models are loaded, so nothing ever answers
half-ready. On SIGTERM (or Ctrl-C) uvicorn stops accepting connections and waits for requests in flight; the
batcher finishes every queued job before the scorer is released.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from typing import Any

from ..backends.loading import GENERATOR, MEMORY, REWARD, ClassifiedLoadError, check_model
from ..errors import BackendError, CodescalerError
from ..scoring.base import DEFAULT_REWARD_MODEL
from .batcher import Batcher
from .config import ServeConfig
from .service import RewardService, ServeSettings


def bind(host: str, port: int) -> socket.socket:
    """Take host:port, or fail with a one-line cause (port taken, address not local, ...).

    Bound, not listening: the port is ours while the models load, but a client connecting meanwhile is refused
    rather than left waiting; uvicorn listens once the server starts.
    """
    sock = None
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, protocol)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as create_server does on POSIX
        sock.bind(address)
        return sock
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise BackendError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                           "pick another --port, or stop the process using it (e.g. ss -ltnp)") from None


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a drained shutdown on SIGTERM/SIGINT exits 0 instead of re-raising the signal."""

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


def open_sampler(config: ServeConfig) -> Any:
    """The generator behind the OpenAI endpoints: `--generator-url` servers, else an in-process `-m` engine."""
    from .sampler import EngineSampler, RemoteSampler

    generator = config.generator
    if generator.urls:
        return RemoteSampler(generator.urls, generator.model, api_key=generator.api_key,
                             concurrency=generator.concurrency, timeout=generator.timeout,
                             max_retries=generator.max_retries, samples_per_request=config.samples_per_request)
    assert generator.model is not None
    return EngineSampler(generator.model, revision=generator.revision, dtype=generator.dtype,
                         max_model_len=generator.max_model_len,
                         gpu_memory_utilization=generator.gpu_memory_utilization,
                         tensor_parallel_size=generator.tensor_parallel_size)


def point_at_the_engine(exc: BaseException, config: ServeConfig) -> None:
    """A reward model out of memory after an in-process generator engine loaded: the engine's share is the cause."""
    if isinstance(exc, ClassifiedLoadError) and exc.cause_class == MEMORY and config.has_generator \
            and not config.generator.urls:
        exc.hint = ("the generator engine loaded first and holds its share of the memory: lower "
                    "--generator-gpu-memory-utilization (e.g. 0.6) to leave the reward model room"
                    + (f"; otherwise {exc.hint}" if exc.hint else ""))


def run_server(config: ServeConfig) -> None:
    """Load the reward model, bind, and serve until SIGTERM/Ctrl-C; raises CodescalerError on start-up failures."""
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise CodescalerError(f"codescaler serve needs {exc.name}, which is not installed",
                              "pip install 'codescaler[serve]'") from None

    from .app import create_app
    from .bodies import BodyLimits

    _Server = _server_class()
    from .metrics import Metrics
    from .scorer import open_serving_scorer, tokenizer_of

    config.validate()
    # What fails in seconds, before minutes of loading: the models' kinds, then the port.
    check_model(config.scorer.model or DEFAULT_REWARD_MODEL, config.scorer.revision, REWARD)
    if config.has_generator and not config.generator.urls:
        assert config.generator.model is not None
        check_model(config.generator.model, config.generator.revision, GENERATOR)
    sock = bind(config.host, config.port)
    sampler = scorer = None
    try:
        # The generator first: a server that is down or a wrong model name fails in seconds, before the reward
        # model loads.
        sampler = open_sampler(config) if config.has_generator else None
        try:
            scorer = open_serving_scorer(config.scorer, reuse_prefix=config.reuse_prefix)
        except BaseException as exc:
            point_at_the_engine(exc, config)
            raise
    except BaseException:
        sock.close()
        if sampler is not None:
            sampler.close()
        raise
    tokenizer = tokenizer_of(scorer)
    end_tokens = tuple(t for t in (getattr(tokenizer, "eos_token", None), getattr(tokenizer, "pad_token", None))
                       if isinstance(t, str) and t)
    settings = ServeSettings(model=config.scorer.model, served_name=config.served_model_name or config.scorer.model,
                             max_length=config.scorer.max_length, extraction=config.extraction, raw=config.raw,
                             prompt_format=config.prompt_format, end_tokens=end_tokens,
                             vocab_size=len(tokenizer), generator=sampler.card if sampler is not None else None)
    metrics_holder: list[Metrics] = []
    batcher = Batcher(scorer, max_batch_tokens=config.scorer.max_batch_tokens, batch_wait_ms=config.batch_wait_ms,
                      max_queue=config.max_queue, max_batch_requests=config.max_batch_requests,
                      on_batch=lambda report: metrics_holder[0].observe_batch(report) if metrics_holder else None)
    metrics = Metrics(lambda: batcher.depth)
    metrics_holder.append(metrics)
    service = RewardService(batcher, settings)
    best_of_n = None
    if sampler is not None:
        from .best_of_n_service import BestOfNService, BestOfNSettings

        best_of_n = BestOfNService(service, sampler, BestOfNSettings(
            default_best_of=config.generator.n, max_best_of=config.max_best_of,
            max_requests=config.max_best_of_requests, retry_after=settings.retry_after,
            stopping=config.generator.stopping), metrics)
        metrics.best_of_in_flight.set_function(lambda: best_of_n.in_flight if best_of_n is not None else 0)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in str(host) else host

    def started() -> None:
        print(f"codescaler serve: {settings.served_name} ({config.scorer.kind}) on http://{shown}:{port}"
              f"{' (API key required)' if config.api_key else ''}", file=sys.stderr, flush=True)
        if sampler is not None:
            rule = config.generator.stopping
            adaptive = f" (adaptive: {rule.flags()})" if rule.adaptive else ""
            print(f"codescaler serve: best-of-{config.generator.n}{adaptive} over generator '{sampler.card.name}' "
                  f"({sampler.card.where}) at http://{shown}:{port}/v1 (chat/completions, completions)",
                  file=sys.stderr, flush=True)

    def stopping() -> None:
        batcher.close()
        scorer.close()
        if sampler is not None:
            sampler.close()
        print("codescaler serve: stopped", file=sys.stderr, flush=True)

    app = create_app(service, metrics, api_key=config.api_key, on_startup=started, on_shutdown=stopping,
                     best_of_n=best_of_n, limits=BodyLimits(config.max_request_bytes, config.max_text_chars))
    server = _Server(uvicorn.Config(app, log_level=config.log_level, access_log=False,
                                           timeout_graceful_shutdown=config.graceful_timeout,
                                           timeout_keep_alive=30))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if batcher.alive:
            stopping()
