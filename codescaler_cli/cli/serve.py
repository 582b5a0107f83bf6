"""`codescaler serve`: the reward model as an HTTP service with dynamic batching (FastAPI + uvicorn, lazy)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from ..generation.config import GeneratorConfig
from ..scoring import ScorerConfig
from ._errors import handle_errors
from ._options import REWARD, generator_options, scorer_options, warn_ignored_generator_options, \
    warn_ignored_scorer_options

SERVER, BATCHING, REWARDS, GENERATOR = "Server", "Batching", "Rewards", "Generator"


class Extraction(str, Enum):
    syntax = "syntax"
    upstream = "upstream"


class PromptFormat(str, Enum):
    chat = "chat"
    raw = "raw"


class LogLevel(str, Enum):
    warning = "warning"
    info = "info"
    debug = "debug"


def _option(*flags: str, panel: str, help: str, **extra: object) -> object:
    return typer.Option(*flags, rich_help_panel=panel, help=help, **extra)  # type: ignore[arg-type]


@handle_errors
@scorer_options(local_only=True)
@generator_options(serve=True)
def serve(
    ctx: typer.Context,
    scorer_config: ScorerConfig = ScorerConfig(),
    host: Annotated[str, _option("--host", panel=SERVER, help="Address to listen on (0.0.0.0: every interface).")]
    = "127.0.0.1",
    port: Annotated[int, _option("--port", "-p", panel=SERVER, min=0, max=65535, help="Port to listen on.")] = 8100,
    batch_wait_ms: Annotated[float, _option("--batch-wait-ms", panel=BATCHING, min=0.0, help="How long the oldest "
                                            "queued request may wait for others to join its batch.")] = 5.0,
    max_batch_requests: Annotated[int, _option("--max-batch-requests", panel=BATCHING, min=1, help="Requests per "
                                               "batch at most (1 turns batching off).")] = 256,
    max_queue: Annotated[int, _option("--max-queue", panel=BATCHING, min=1, help="Requests waiting at most; more "
                                      "are answered 503 with Retry-After.")] = 1024,
    api_key: Annotated[Optional[str], _option("--api-key", panel=SERVER, envvar="CODESCALER_API_KEY", help="Require "
                                              "'Authorization: Bearer KEY' on every endpoint but /health.",
                                              show_default=False)] = None,
    served_model_name: Annotated[Optional[str], _option("--served-model-name", panel=SERVER, show_default=False,
                                                        help="Model name in /v1/models and answers (default: -r "
                                                        "as given).")] = None,
    extraction: Annotated[Extraction, _option("--extraction", panel=REWARDS, case_sensitive=False, help="syntax: "
                                              "rank's extraction; upstream: training's rule (exactly one fenced "
                                              "block that ast.parse accepts).")] = Extraction.syntax,
    raw: Annotated[bool, _option("--raw", panel=REWARDS, help="Rewards are raw logits instead of softplus(score) "
                                 "(invalid code still gets 0).")] = False,
    prompt_format: Annotated[PromptFormat, _option("--prompt-format", panel=REWARDS, case_sensitive=False,
                                                   help="/get_reward: chat takes the question from the prompt's "
                                                   "last user turn, raw takes the whole prompt.")] = PromptFormat.chat,
    reuse_prefix: Annotated[bool, _option("--prefix-reuse/--no-prefix-reuse", panel=REWARD, help="transformers: "
                                          "encode each problem statement once for its candidates (exact, as rank "
                                          "does). Off (the default here), the texts of every problem in a batch "
                                          "share forward passes, which is what batching many small requests "
                                          "needs.")] = False,
    log_level: Annotated[LogLevel, _option("--log-level", panel=SERVER, case_sensitive=False,
                                           help="Server log level on stderr.")] = LogLevel.warning,
    generator_config: GeneratorConfig = GeneratorConfig(),
    max_best_of: Annotated[int, _option("--max-best-of", panel=GENERATOR, min=1, help="Largest best_of a request "
                                        "may ask for (more is a 400).")] = 64,
    max_best_of_requests: Annotated[int, _option("--max-best-of-requests", panel=GENERATOR, min=1, help="Best-of-N "
                                                 "requests in flight at most; more are answered 503 with "
                                                 "Retry-After.")] = 64,
    samples_per_request: Annotated[int, _option("--samples-per-request", panel=GENERATOR, min=1, help="Candidates "
                                                "per generator request (n). 1: a failed request loses one candidate "
                                                "and replicas share the work; --n: one request per best-of-N, less "
                                                "overhead on one server. The samples are the same either way.")] = 1,
) -> None:
    """Serve a CodeScaler reward model over HTTP, batching concurrent requests together.

        codescaler serve -r LARK-Lab/CodeScaler-4B --port 8100

    With --generator-url (or -m), POST /v1/chat/completions and /v1/completions answer OpenAI requests with the
    best of `best_of` sampled candidates (request field, default --n), ranked by the reward model.

    Endpoints: POST /v1/rank (records as `rank` writes them), /v1/score (raw scores of question/code pairs),
    /v1/rewards (shaped rewards), /get_reward (OpenRLHF), /classify (vLLM's shape, so `rank --reward-url` works
    against it); GET /health, /v1/models, /metrics (Prometheus). The model loads before the port is bound;
    SIGTERM finishes the requests in flight, then exits.

    More examples:

        codescaler rank candidates.jsonl -r LARK-Lab/CodeScaler-4B --reward-url http://127.0.0.1:8100

        curl -s localhost:8100/v1/rank -d '{"question": "Add two numbers.", "candidates": [{"code": "def add(a, b): return a + b"}]}'

        codescaler serve -r LARK-Lab/CodeScaler-4B --generator-url http://127.0.0.1:8000/v1 --n 8
    """
    from ..serving.server import ServeConfig, run_server

    scorer_config.validate()
    warn_ignored_scorer_options(ctx, scorer_config)
    has_generator = bool(generator_config.urls or generator_config.model)
    warn_ignored_generator_options(ctx, generator_config if has_generator else None, unused="without --generator-url or -m (no OpenAI endpoints are "
                                   "served)", server_only=["samples_per_request"],
                                   any_generator=["max_best_of", "max_best_of_requests"])
    run_server(ServeConfig(
        scorer=scorer_config, host=host, port=port, api_key=api_key, served_model_name=served_model_name,
        batch_wait_ms=batch_wait_ms, max_batch_requests=max_batch_requests, max_queue=max_queue,
        extraction=extraction.value, raw=raw, prompt_format=prompt_format.value, log_level=log_level.value,
        reuse_prefix=reuse_prefix, generator=generator_config, samples_per_request=samples_per_request,
        max_best_of=max_best_of, max_best_of_requests=max_best_of_requests))
