"""`codescaler serve`: the reward model as an HTTP service with dynamic batching (FastAPI + uvicorn, lazy)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from ..scoring import ScorerConfig
from ._errors import handle_errors
from ._options import REWARD, DType, scorer_options, warn_ignored, warn_ignored_scorer_options

SERVER = "Server"
GENERATOR = "Generator (OpenAI best-of-N endpoints)"
BATCHING = "Batching"
REWARDS = "Rewards"


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


@handle_errors
@scorer_options(local_only=True)
def serve(
    ctx: typer.Context,
    scorer_config: ScorerConfig = ScorerConfig(),
    host: Annotated[str, typer.Option("--host", rich_help_panel=SERVER, help="Address to listen on (0.0.0.0 for every interface).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", rich_help_panel=SERVER, min=0, max=65535, help="Port to listen on.")] = 8100,
    batch_wait_ms: Annotated[float, typer.Option("--batch-wait-ms", rich_help_panel=BATCHING, min=0.0, help="How long the oldest queued "
                                                  "request may wait for others to join its batch.")] = 5.0,
    max_batch_requests: Annotated[int, typer.Option("--max-batch-requests", rich_help_panel=BATCHING, min=1, help="Requests per batch at "
                                                     "most (1 turns batching off).")] = 256,
    max_queue: Annotated[int, typer.Option("--max-queue", rich_help_panel=BATCHING, min=1, help="Requests waiting at most; more are "
                                            "answered 503 with Retry-After.")] = 1024,
    api_key: Annotated[Optional[str], typer.Option("--api-key", rich_help_panel=SERVER, envvar="CODESCALER_API_KEY", help="Require "
                                                    "'Authorization: Bearer KEY' on every endpoint but /health.",
                                                    show_default=False)] = None,
    served_model_name: Annotated[Optional[str], typer.Option("--served-model-name", rich_help_panel=SERVER, help="Model name in "
                                                              "/v1/models and answers (default: -r as given).",
                                                              show_default=False)] = None,
    extraction: Annotated[Extraction, typer.Option("--extraction", rich_help_panel=REWARDS, case_sensitive=False, help="syntax: rank's "
                                                    "extraction; upstream: training's rule (exactly one fenced "
                                                    "block that ast.parse accepts).")] = Extraction.syntax,
    raw: Annotated[bool, typer.Option("--raw", rich_help_panel=REWARDS, help="Rewards are raw logits instead of softplus(score) "
                                      "(invalid code still gets 0).")] = False,
    prompt_format: Annotated[PromptFormat, typer.Option("--prompt-format", rich_help_panel=REWARDS, case_sensitive=False, help="/get_reward:"
                                                         " chat takes the question from the prompt's last user turn,"
                                                         " raw takes the whole prompt.")] = PromptFormat.chat,
    reuse_prefix: Annotated[bool, typer.Option("--prefix-reuse/--no-prefix-reuse", rich_help_panel=REWARD, help="transformers: encode each"
                                               " problem statement once for its candidates (exact, as rank does)."
                                               " Off (the default here), the texts of every problem in a batch "
                                               "share forward passes, which is what batching many small requests"
                                               " needs.")] = False,
    log_level: Annotated[LogLevel, typer.Option("--log-level", rich_help_panel=SERVER, case_sensitive=False,
                                                help="Server log level on stderr.")] = LogLevel.warning,
    generator_urls: Annotated[Optional[list[str]], typer.Option("--generator-url", rich_help_panel=GENERATOR,
                                                                help="OpenAI-compatible generator server (e.g. vLLM's "
                                                                "http://127.0.0.1:8000/v1); repeat for replicas. "
                                                                "Turns on /v1/chat/completions and /v1/completions.",
                                                                show_default=False)] = None,
    generator_model: Annotated[Optional[str], typer.Option("--model", "-m", rich_help_panel=GENERATOR,
                                                           help="Generator model: with --generator-url, the served "
                                                           "name to use (default: the server's); without, a model "
                                                           "run in-process with vLLM.", show_default=False)] = None,
    best_of: Annotated[int, typer.Option("--n", rich_help_panel=GENERATOR, min=1, help="Candidates per request when "
                                         "the request gives no best_of.")] = 8,
    max_best_of: Annotated[int, typer.Option("--max-best-of", rich_help_panel=GENERATOR, min=1, help="Largest "
                                             "best_of a request may ask for (more is a 400).")] = 64,
    max_best_of_requests: Annotated[int, typer.Option("--max-best-of-requests", rich_help_panel=GENERATOR, min=1,
                                                      help="Best-of-N requests in flight at most; more are answered"
                                                      " 503 with Retry-After.")] = 64,
    generator_api_key: Annotated[Optional[str], typer.Option("--generator-api-key", rich_help_panel=GENERATOR,
                                                             envvar="CODESCALER_GENERATOR_API_KEY", help="Bearer "
                                                             "token for the generator servers.",
                                                             show_default=False)] = None,
    generator_concurrency: Annotated[int, typer.Option("--generator-concurrency", rich_help_panel=GENERATOR, min=1,
                                                       help="Requests in flight per generator server.")] = 8,
    generator_timeout: Annotated[float, typer.Option("--generator-timeout", rich_help_panel=GENERATOR, min=1.0,
                                                     help="Seconds before one generator request is given up (then "
                                                     "retried).")] = 600.0,
    generator_max_retries: Annotated[int, typer.Option("--generator-max-retries", rich_help_panel=GENERATOR, min=0,
                                                       help="Retries of a generator request on connection errors, "
                                                       "429 and 5xx.")] = 4,
    samples_per_request: Annotated[int, typer.Option("--samples-per-request", rich_help_panel=GENERATOR, min=1,
                                                     help="Candidates per generator request (n). 1: a failed "
                                                     "request loses one candidate and replicas share the work; "
                                                     "--n: one request per best-of-N, less overhead on one "
                                                     "server. The samples are the same either way.")] = 1,
    generator_max_model_len: Annotated[Optional[int], typer.Option("--max-model-len", rich_help_panel=GENERATOR, min=16,
                                                                   help="-m without --generator-url: the engine's "
                                                                   "context length.", show_default=False)] = None,
    generator_revision: Annotated[Optional[str], typer.Option("--generator-revision", rich_help_panel=GENERATOR,
                                                              help="-m: the generator's revision on the hub.",
                                                              show_default=False)] = None,
    generator_dtype: Annotated[DType, typer.Option("--generator-dtype", rich_help_panel=GENERATOR,
                                                   case_sensitive=False, help="-m: the engine's dtype (auto: "
                                                   "bfloat16 on GPU, float32 on CPU).")] = DType.auto,
    generator_tensor_parallel_size: Annotated[int, typer.Option("--generator-tensor-parallel-size", min=1,
                                                                rich_help_panel=GENERATOR,
                                                                help="-m: GPUs for the engine.")] = 1,
    generator_gpu_memory_utilization: Annotated[Optional[float], typer.Option(
        "--generator-gpu-memory-utilization", min=0.05, max=1.0, rich_help_panel=GENERATOR, show_default=False,
        help="-m: share of GPU memory the engine may take (default: vLLM's 0.9 on a GPU, what the machine can give "
        "on CPU). The reward model loads after it on the same GPU: leave it room, e.g. 0.6.")] = None,
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
    _warn_ignored_generator_options(ctx, has_urls=bool(generator_urls), has_model=generator_model is not None)
    run_server(ServeConfig(
        scorer=scorer_config,
        host=host, port=port, api_key=api_key, served_model_name=served_model_name, batch_wait_ms=batch_wait_ms,
        max_batch_requests=max_batch_requests, max_queue=max_queue, extraction=extraction.value, raw=raw,
        prompt_format=prompt_format.value, log_level=log_level.value, reuse_prefix=reuse_prefix,
        generator_urls=list(generator_urls or []), generator_model=generator_model,
        generator_api_key=generator_api_key, generator_concurrency=generator_concurrency,
        generator_timeout=generator_timeout, generator_max_retries=generator_max_retries,
        samples_per_request=samples_per_request,
        generator_max_model_len=generator_max_model_len, generator_revision=generator_revision,
        generator_dtype=generator_dtype.value, generator_tensor_parallel_size=generator_tensor_parallel_size,
        generator_gpu_memory_utilization=generator_gpu_memory_utilization, best_of=best_of, max_best_of=max_best_of,
        max_best_of_requests=max_best_of_requests))


# Options only an in-process engine (-m without --generator-url) reads, only generator servers read, and only a
# generator of either kind reads.
_ENGINE_ONLY = (("generator_max_model_len", "--max-model-len"), ("generator_revision", "--generator-revision"),
                ("generator_dtype", "--generator-dtype"),
                ("generator_tensor_parallel_size", "--generator-tensor-parallel-size"),
                ("generator_gpu_memory_utilization", "--generator-gpu-memory-utilization"))
_SERVERS_ONLY = (("generator_api_key", "--generator-api-key"), ("generator_concurrency", "--generator-concurrency"),
                 ("generator_timeout", "--generator-timeout"), ("generator_max_retries", "--generator-max-retries"),
                 ("samples_per_request", "--samples-per-request"))
_ANY_GENERATOR = (("best_of", "--n"), ("max_best_of", "--max-best-of"),
                  ("max_best_of_requests", "--max-best-of-requests"))


def _warn_ignored_generator_options(ctx: typer.Context, *, has_urls: bool, has_model: bool) -> None:
    if not has_urls and not has_model:
        for parameter, flag in _ANY_GENERATOR + _ENGINE_ONLY + _SERVERS_ONLY:
            warn_ignored(ctx, parameter, flag, "without --generator-url or -m (no OpenAI endpoints are served)")
    elif has_urls:
        for parameter, flag in _ENGINE_ONLY:
            warn_ignored(ctx, parameter, flag, "with --generator-url (the generator servers run the model)")
    else:
        for parameter, flag in _SERVERS_ONLY:
            warn_ignored(ctx, parameter, flag, "without --generator-url (they apply to generator servers)")
