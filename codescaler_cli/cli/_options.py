"""Options shared by several commands, defined once as Annotated aliases: import and use these, don't redefine."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..scoring.base import DEFAULT_MAX_LENGTH, DEFAULT_REWARD_MODEL


class OutputFormat(str, Enum):
    auto = "auto"
    jsonl = "jsonl"
    json = "json"
    table = "table"


class GenerateFormat(str, Enum):
    auto = "auto"
    code = "code"
    jsonl = "jsonl"
    json = "json"
    table = "table"


class Endpoint(str, Enum):
    chat = "chat"
    completions = "completions"


class ScorerKind(str, Enum):
    transformers = "transformers"
    vllm = "vllm"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class DType(str, Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


InputFile = Annotated[
    Optional[str],
    typer.Argument(help="JSONL file of candidates; '-' or omitted with piped input reads standard input.",
                   show_default=False, metavar="[FILE|-]"),
]
OutputFile = Annotated[
    Optional[Path],
    typer.Option("--output", "-o", help="Also write every output record to this file as JSONL.",
                 dir_okay=False, show_default=False),
]
Format = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="Output format on stdout. auto: a table on a terminal, JSONL in a pipe.",
                 case_sensitive=False),
]
IdField = Annotated[str, typer.Option("--id-field", help="Field grouping candidates of one problem.")]
QuestionField = Annotated[str, typer.Option("--question-field", help="Field holding the problem statement.")]
ResponseField = Annotated[str, typer.Option("--response-field", help="Field holding the raw model output.")]
CodeField = Annotated[str, typer.Option("--code-field", help="Field holding already-extracted code.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary on stderr.")]

RewardModel = Annotated[
    str,
    typer.Option("--reward-model", "-r", envvar="CODESCALER_REWARD_MODEL",
                 help="Reward model: Hugging Face hub id or local directory."),
]
Revision = Annotated[
    Optional[str],
    typer.Option("--revision", help="Model revision (branch, tag or commit) on the hub.", show_default=False),
]
DeviceOption = Annotated[Device, typer.Option("--device", help="Where the reward model runs.", case_sensitive=False)]
DTypeOption = Annotated[
    DType,
    typer.Option("--dtype", help="Reward model dtype. auto: bfloat16 on GPU, float32 on CPU.", case_sensitive=False),
]
MaxLength = Annotated[
    int,
    typer.Option("--max-length", min=16, help="Longest rendered chat in tokens; longer ones are cut on the right "
                 "and marked truncated."),
]
MaxBatchTokens = Annotated[
    int,
    typer.Option("--max-batch-tokens", min=1, help="Token budget of one scoring batch (padded tokens); halved "
                 "automatically on CUDA out-of-memory."),
]
TopK = Annotated[
    Optional[int],
    typer.Option("--top-k", "-k", min=1, help="Keep only ranks <= K in each problem.", show_default=False),
]

ScorerOption = Annotated[
    ScorerKind,
    typer.Option("--scorer", help="Reward backend: transformers, or vLLM's pooling runner in-process.",
                 case_sensitive=False),
]
RewardUrl = Annotated[
    Optional[list[str]],
    typer.Option("--reward-url", help="Score on a vLLM server started with --runner pooling (repeat the option "
                 "to spread the load over several servers).", show_default=False),
]
ApiKey = Annotated[
    Optional[str],
    typer.Option("--api-key", envvar="OPENAI_API_KEY", help="Bearer token for the servers.", show_default=False),
]
Concurrency = Annotated[
    int, typer.Option("--concurrency", min=1, help="Requests in flight per server."),
]
RequestTimeout = Annotated[
    float, typer.Option("--timeout", min=1.0, help="Seconds before one HTTP request is given up (then retried)."),
]
MaxRetries = Annotated[
    int, typer.Option("--max-retries", min=0, help="Retries of a request on connection errors, 429 and 5xx."),
]
TensorParallel = Annotated[
    int, typer.Option("--tensor-parallel-size", min=1, help="GPUs per vLLM engine (tensor parallelism)."),
]
GpuMemory = Annotated[
    float,
    typer.Option("--gpu-memory-utilization", min=0.05, max=1.0, help="Fraction of GPU memory a vLLM engine may use."),
]

DEFAULTS = {"reward_model": DEFAULT_REWARD_MODEL, "max_length": DEFAULT_MAX_LENGTH, "max_batch_tokens": 16384}
