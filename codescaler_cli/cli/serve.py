"""`codescaler serve`: the reward model as an HTTP service with dynamic batching (FastAPI + uvicorn, lazy)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from ..scoring import ScorerConfig
from ._errors import handle_errors
from ._options import (
    DEFAULTS,
    Device,
    DeviceOption,
    DType,
    DTypeOption,
    GpuMemory,
    MaxBatchTokens,
    MaxLength,
    Revision,
    RewardModel,
    ScorerKind,
    ScorerOption,
    TensorParallel,
)


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
def serve(
    reward_model: RewardModel = DEFAULTS["reward_model"],
    revision: Revision = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 for every interface).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port to listen on.")] = 8100,
    scorer_kind: ScorerOption = ScorerKind.transformers,
    device: DeviceOption = Device.auto,
    dtype: DTypeOption = DType.auto,
    max_length: MaxLength = DEFAULTS["max_length"],
    max_batch_tokens: MaxBatchTokens = DEFAULTS["max_batch_tokens"],
    batch_wait_ms: Annotated[float, typer.Option("--batch-wait-ms", min=0.0, help="How long the oldest queued "
                                                  "request may wait for others to join its batch.")] = 5.0,
    max_batch_requests: Annotated[int, typer.Option("--max-batch-requests", min=1, help="Requests per batch at "
                                                     "most (1 turns batching off).")] = 256,
    max_queue: Annotated[int, typer.Option("--max-queue", min=1, help="Requests waiting at most; more are "
                                            "answered 503 with Retry-After.")] = 1024,
    api_key: Annotated[Optional[str], typer.Option("--api-key", envvar="CODESCALER_API_KEY", help="Require "
                                                    "'Authorization: Bearer KEY' on every endpoint but /health.",
                                                    show_default=False)] = None,
    served_model_name: Annotated[Optional[str], typer.Option("--served-model-name", help="Model name in "
                                                              "/v1/models and answers (default: -r as given).",
                                                              show_default=False)] = None,
    extraction: Annotated[Extraction, typer.Option("--extraction", case_sensitive=False, help="syntax: rank's "
                                                    "extraction; upstream: training's rule (exactly one fenced "
                                                    "block that ast.parse accepts).")] = Extraction.syntax,
    raw: Annotated[bool, typer.Option("--raw", help="Rewards are raw logits instead of softplus(score) "
                                      "(invalid code still gets 0).")] = False,
    prompt_format: Annotated[PromptFormat, typer.Option("--prompt-format", case_sensitive=False, help="/get_reward:"
                                                         " chat takes the question from the prompt's last user turn,"
                                                         " raw takes the whole prompt.")] = PromptFormat.chat,
    reuse_prefix: Annotated[bool, typer.Option("--prefix-reuse/--no-prefix-reuse", help="transformers: encode each"
                                               " problem statement once for its candidates (exact, as rank does)."
                                               " Off (the default here), the texts of every problem in a batch "
                                               "share forward passes, which is what batching many small requests"
                                               " needs.")] = False,
    tensor_parallel_size: TensorParallel = 1,
    gpu_memory_utilization: GpuMemory = 0.9,
    log_level: Annotated[LogLevel, typer.Option("--log-level", case_sensitive=False,
                                                help="Server log level on stderr.")] = LogLevel.warning,
) -> None:
    """Serve a CodeScaler reward model over HTTP, batching concurrent requests together.

    Endpoints: POST /v1/rank (records as `rank` writes them), /v1/score (raw scores of question/code pairs),
    /v1/rewards (shaped rewards), /get_reward (OpenRLHF), /classify (vLLM's shape, so `rank --reward-url` works
    against it); GET /health, /v1/models, /metrics (Prometheus). The model loads before the port is bound;
    SIGTERM finishes the requests in flight, then exits.

    Examples:

        codescaler serve -r LARK-Lab/CodeScaler-4B --port 8100

        codescaler rank candidates.jsonl -r LARK-Lab/CodeScaler-4B --reward-url http://127.0.0.1:8100

        curl -s localhost:8100/v1/rank -d '{"question": "Add two numbers.", "candidates": [{"code": "def add(a, b): return a + b"}]}'
    """
    from ..serving.server import ServeConfig, run_server

    run_server(ServeConfig(
        scorer=ScorerConfig(model=reward_model, kind=scorer_kind.value, revision=revision, device=device.value,
                            dtype=dtype.value, max_length=max_length, max_batch_tokens=max_batch_tokens,
                            tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization),
        host=host, port=port, api_key=api_key, served_model_name=served_model_name, batch_wait_ms=batch_wait_ms,
        max_batch_requests=max_batch_requests, max_queue=max_queue, extraction=extraction.value, raw=raw,
        prompt_format=prompt_format.value, log_level=log_level.value, reuse_prefix=reuse_prefix))
