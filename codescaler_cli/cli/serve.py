"""`codescaler serve`: the reward model as an HTTP service with dynamic batching (FastAPI + uvicorn, lazy)."""

from __future__ import annotations

from dataclasses import replace

import typer

from ..generation.config import GeneratorConfig
from ..scoring import ScorerConfig
from ..serving.config import ServeConfig
from ._errors import handle_errors
from ._help import HelpAll
from ._options import (
    generator_options,
    scorer_options,
    serve_options,
    warn_ignored_generator_options,
    warn_ignored_scorer_options,
)


@handle_errors
@scorer_options(local_only=True)
@generator_options(serve=True)
@serve_options()
def serve(ctx: typer.Context, scorer_config: ScorerConfig = ScorerConfig(),
          generator_config: GeneratorConfig = GeneratorConfig(), serve_config: ServeConfig = ServeConfig(),
          help_all: HelpAll = False) -> None:
    """Serve a CodeScaler reward model over HTTP, batching concurrent requests together.

        codescaler serve -r LARK-Lab/CodeScaler-4B --port 8100

    Endpoints: POST /v1/rank (records as `rank` writes them), /v1/score (raw scores of question/code pairs),
    /v1/rewards (shaped rewards), /get_reward (OpenRLHF), /classify (vLLM's shape: `rank --reward-url` works
    against it); GET /health, /v1/models, /metrics (Prometheus). With --generator-url (or -m), POST
    /v1/chat/completions and /v1/completions answer OpenAI requests with the best of `best_of` samples
    (default --n). The port is checked before the models load; SIGTERM finishes the requests in flight.

    More examples:

        codescaler rank examples/candidates.jsonl --reward-url http://127.0.0.1:8100

        codescaler serve -r LARK-Lab/CodeScaler-4B --generator-url http://127.0.0.1:8000/v1 --n 8
    """
    from ..serving.server import run_server

    scorer_config.validate()
    warn_ignored_scorer_options(ctx, scorer_config)
    has_generator = bool(generator_config.urls or generator_config.model)
    warn_ignored_generator_options(ctx, generator_config if has_generator else None, unused="without "
                                   "--generator-url or -m (no OpenAI endpoints are served)",
                                   server_only=["samples_per_request"],
                                   any_generator=["max_best_of", "max_best_of_requests"])
    run_server(replace(serve_config, scorer=scorer_config, generator=generator_config))
