"""Running `codescaler serve`: load the model, bind the socket, serve until SIGTERM, then drain and exit.

The model loads before the port is bound, so a bad model fails fast with the CLI's one-line error and nothing
ever listens half-ready. On SIGTERM (or Ctrl-C) uvicorn stops accepting connections and waits for requests in
flight; the batcher finishes every queued job before the scorer is released.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field

from ..errors import BackendError, CodescalerError, UsageError
from ..scoring.config import ScorerConfig
from .batcher import Batcher
from .inputs import PROMPT_FORMATS
from .service import RewardService, ServeSettings
from .upstream import EXTRACTION_MODES


@dataclass
class ServeConfig:
    """Everything `codescaler serve` needs: the scorer, the batching limits, what the endpoints answer."""

    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    host: str = "127.0.0.1"
    port: int = 8100
    api_key: str | None = None
    served_model_name: str | None = None
    batch_wait_ms: float = 5.0
    max_batch_requests: int = 256
    max_queue: int = 1024
    extraction: str = "syntax"
    raw: bool = False
    prompt_format: str = "chat"
    log_level: str = "warning"
    reuse_prefix: bool = False
    graceful_timeout: float = 60.0


def _check(config: ServeConfig) -> None:
    if config.extraction not in EXTRACTION_MODES:
        raise UsageError(f"unknown --extraction '{config.extraction}'", f"use one of: {', '.join(EXTRACTION_MODES)}")
    if config.prompt_format not in PROMPT_FORMATS:
        raise UsageError(f"unknown --prompt-format '{config.prompt_format}'", f"use one of: {', '.join(PROMPT_FORMATS)}")
    if config.scorer.urls:
        raise UsageError("serve scores with a local model", "drop --reward-url")


def bind(host: str, port: int) -> socket.socket:
    """Listen on host:port, or fail with a one-line cause (port taken, address not local, ...)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family = infos[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
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

    _Server = _server_class()
    from .metrics import Metrics
    from .scorer import open_serving_scorer, tokenizer_of

    _check(config)
    scorer = open_serving_scorer(config.scorer, reuse_prefix=config.reuse_prefix)
    try:
        sock = bind(config.host, config.port)
    except BaseException:
        scorer.close()
        raise
    tokenizer = tokenizer_of(scorer)
    end_tokens = tuple(t for t in (getattr(tokenizer, "eos_token", None), getattr(tokenizer, "pad_token", None))
                       if isinstance(t, str) and t)
    settings = ServeSettings(model=config.scorer.model, served_name=config.served_model_name or config.scorer.model,
                             max_length=config.scorer.max_length, extraction=config.extraction, raw=config.raw,
                             prompt_format=config.prompt_format, end_tokens=end_tokens,
                             vocab_size=len(tokenizer))
    metrics_holder: list[Metrics] = []
    batcher = Batcher(scorer, max_batch_tokens=config.scorer.max_batch_tokens, batch_wait_ms=config.batch_wait_ms,
                      max_queue=config.max_queue, max_batch_requests=config.max_batch_requests,
                      on_batch=lambda report: metrics_holder[0].observe_batch(report) if metrics_holder else None)
    metrics = Metrics(lambda: batcher.depth)
    metrics_holder.append(metrics)
    service = RewardService(batcher, settings)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in str(host) else host

    def started() -> None:
        print(f"codescaler serve: {settings.served_name} ({config.scorer.kind}) on http://{shown}:{port}"
              f"{' (API key required)' if config.api_key else ''}", file=sys.stderr, flush=True)

    def stopping() -> None:
        batcher.close()
        scorer.close()
        print("codescaler serve: stopped", file=sys.stderr, flush=True)

    app = create_app(service, metrics, api_key=config.api_key, on_startup=started, on_shutdown=stopping)
    server = _Server(uvicorn.Config(app, log_level=config.log_level, access_log=False,
                                           timeout_graceful_shutdown=config.graceful_timeout,
                                           timeout_keep_alive=30))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if batcher.alive:
            stopping()
