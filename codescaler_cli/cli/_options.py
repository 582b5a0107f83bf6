"""Options shared by several commands, defined once as Annotated aliases: import and use these, don't redefine.

Help is grouped in panels (Input, Generator, Reward model, Servers, Output). The reward model's options are one
group, `scorer_options`, which adds them to a command and hands it a single `ScorerConfig`; in `generate`, where the
generator has options of the same name, the reward side's are prefixed (`--reward-dtype`, `--reward-timeout`, ...).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from ..generation.base import DEFAULT_GENERATOR_MODEL
from ..scoring.base import DEFAULT_MAX_LENGTH, DEFAULT_REWARD_MODEL
from ..scoring.config import ScorerConfig

INPUT = "Input"
GENERATOR = "Generator"
REWARD = "Reward model"
SERVERS = "Servers"
OUTPUT = "Output"

F = TypeVar("F", bound=Callable[..., Any])


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
    typer.Option("--output", "-o", help="Also write every record the command produced to this file as JSONL (all "
                 "candidates, ranked), whatever --top-k and --format show on stdout.", dir_okay=False,
                 show_default=False, rich_help_panel=OUTPUT),
]
Format = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="Output format on stdout. auto: a table on a terminal, JSONL in a pipe.",
                 case_sensitive=False, rich_help_panel=OUTPUT),
]
IdField = Annotated[str, typer.Option("--id-field", help="Field grouping candidates of one problem.",
                                      rich_help_panel=INPUT)]
QuestionField = Annotated[str, typer.Option("--question-field", help="Field holding the problem statement.",
                                            rich_help_panel=INPUT)]
ResponseField = Annotated[str, typer.Option("--response-field", help="Field holding the raw model output.",
                                            rich_help_panel=INPUT)]
CodeField = Annotated[str, typer.Option("--code-field", help="Field holding already-extracted code.",
                                        rich_help_panel=INPUT)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary on stderr.",
                                     rich_help_panel=OUTPUT)]
TopK = Annotated[
    Optional[int],
    typer.Option("--top-k", "-k", min=1, help="Show only ranks <= K of each problem on stdout (--output keeps all).",
                 show_default=False, rich_help_panel=OUTPUT),
]
ApiKey = Annotated[
    Optional[str],
    typer.Option("--api-key", envvar="OPENAI_API_KEY", help="Bearer token for the servers.", show_default=False,
                 rich_help_panel=SERVERS),
]
Concurrency = Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight per server.",
                                          rich_help_panel=SERVERS)]
RequestTimeout = Annotated[
    float, typer.Option("--timeout", min=1.0, help="Seconds before one HTTP request is given up (then retried).",
                        rich_help_panel=SERVERS),
]
MaxRetries = Annotated[
    int, typer.Option("--max-retries", min=0, help="Retries of a request on connection errors, 429 and 5xx.",
                      rich_help_panel=SERVERS),
]
TensorParallel = Annotated[int, typer.Option("--tensor-parallel-size", min=1, help="GPUs per vLLM engine.",
                                             rich_help_panel=GENERATOR)]
GpuMemory = Annotated[
    Optional[float],
    typer.Option("--gpu-memory-utilization", min=0.05, max=1.0, show_default=False, rich_help_panel=GENERATOR,
                 help="Share of GPU memory the vLLM engine may use. Default: vLLM's 0.9 on GPUs; on CPU, what the "
                 "machine can give."),
]
DTypeOption = Annotated[
    DType,
    typer.Option("--dtype", help="Model dtype. auto: bfloat16 on GPU, float32 on CPU.", case_sensitive=False,
                 rich_help_panel=GENERATOR),
]

DEFAULTS = {"reward_model": DEFAULT_REWARD_MODEL, "max_length": DEFAULT_MAX_LENGTH, "max_batch_tokens": 16384}


# ---------------------------------------------------------------------------------------------------------------
# The reward model's option group.


@dataclass(frozen=True)
class _ScorerOption:
    """One reward-model option: the ScorerConfig field it fills, its flags, and its help."""

    field: str
    flags: tuple[str, ...]
    type: Any
    default: Any
    help: str
    panel: str = REWARD
    shared: bool = False  # the generator has an option of the same name: prefix it with --reward- in generate
    extra: tuple[tuple[str, Any], ...] = ()


_SCORER_OPTIONS = (
    _ScorerOption("model", ("--reward-model", "-r"), str, DEFAULT_REWARD_MODEL,
                  "Reward model: Hugging Face hub id or local directory.",
                  extra=(("envvar", "CODESCALER_REWARD_MODEL"),)),
    _ScorerOption("revision", ("--revision",), Optional[str], None,
                  "Reward model revision (branch, tag or commit) on the hub."),
    _ScorerOption("kind", ("--scorer",), ScorerKind, ScorerKind.transformers,
                  "Reward backend: transformers, or vLLM's pooling runner in-process.",
                  extra=(("case_sensitive", False),)),
    _ScorerOption("device", ("--device",), Device, Device.auto,
                  "Where the transformers reward model runs (auto: CUDA when available).",
                  extra=(("case_sensitive", False),)),
    _ScorerOption("dtype", ("--dtype",), DType, DType.auto,
                  "Reward model dtype. auto: bfloat16 on GPU, float32 on CPU.", shared=True,
                  extra=(("case_sensitive", False),)),
    _ScorerOption("max_length", ("--max-length",), int, DEFAULT_MAX_LENGTH,
                  "Longest rendered chat in tokens; longer ones are cut on the right and marked truncated.",
                  extra=(("min", 16),)),
    _ScorerOption("max_batch_tokens", ("--max-batch-tokens",), int, 16384,
                  "Token budget of one scoring batch (padded tokens); halved automatically on CUDA out-of-memory.",
                  extra=(("min", 1),)),
    _ScorerOption("tensor_parallel_size", ("--tensor-parallel-size",), int, 1,
                  "GPUs of the reward model's vLLM engine (--scorer vllm).", shared=True, extra=(("min", 1),)),
    _ScorerOption("gpu_memory_utilization", ("--gpu-memory-utilization",), Optional[float], None,
                  "Share of GPU memory the reward model's vLLM engine may use (--scorer vllm). Default: vLLM's 0.9 "
                  "on GPUs; on CPU, what the machine can give.", shared=True,
                  extra=(("min", 0.05), ("max", 1.0))),
    _ScorerOption("urls", ("--reward-url",), Optional[list[str]], None,
                  "Score on a server (a vLLM server started with --runner pooling, or codescaler serve); repeat to "
                  "spread the load over several.", panel=SERVERS),
    _ScorerOption("api_key", ("--api-key",), Optional[str], None, "Bearer token for the reward servers.",
                  panel=SERVERS, shared=True, extra=(("envvar", "OPENAI_API_KEY"),)),
    _ScorerOption("concurrency", ("--concurrency",), int, 4, "Requests in flight per reward server.",
                  panel=SERVERS, shared=True, extra=(("min", 1),)),
    _ScorerOption("timeout", ("--timeout",), float, 600.0,
                  "Seconds before one request to a reward server is given up (then retried).", panel=SERVERS,
                  shared=True, extra=(("min", 1.0),)),
    _ScorerOption("max_retries", ("--max-retries",), int, 4,
                  "Retries of a reward request on connection errors, 429 and 5xx.", panel=SERVERS, shared=True,
                  extra=(("min", 0),)),
)


def _parameter(option: _ScorerOption, prefixed: bool) -> inspect.Parameter:
    flags = option.flags
    name = option.field
    if prefixed and option.shared:
        flags = ("--reward-" + flags[0].removeprefix("--"),)
        name = "reward_" + option.field
    extra = dict(option.extra)
    if prefixed and option.field == "api_key":
        extra["envvar"] = ["CODESCALER_REWARD_API_KEY", "OPENAI_API_KEY"]
    show_default = option.default is not None
    info = typer.Option(*flags, help=option.help, rich_help_panel=option.panel, show_default=show_default, **extra)
    return inspect.Parameter(f"scorer_{name}", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=option.default,
                             annotation=Annotated[option.type, info])


def scorer_options(*, prefixed: bool = False, local_only: bool = False) -> Callable[[F], F]:
    """Add the reward model's options to a command, which receives them as one `scorer_config: ScorerConfig`.

    `prefixed`: options the generator also has (dtype, tensor parallel size, memory, api key, concurrency,
    timeout, retries) get a `--reward-` prefix, so each side can be set on its own. `local_only`: the model runs in
    this process (`serve`), so the reward-server options are left out.
    """
    options = [option for option in _SCORER_OPTIONS if not (local_only and option.panel == SERVERS)]
    added = [(option, _parameter(option, prefixed)) for option in options]

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        names = list(signature.parameters)
        # The group takes the place of `scorer_config`, so help panels keep the command's order.
        at = names.index("scorer_config")
        before = [signature.parameters[name] for name in names[:at]]
        after = [signature.parameters[name] for name in names[at + 1:]]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {option.field: kwargs.pop(parameter.name) for option, parameter in added}
            values = {key: value.value if isinstance(value, Enum) else value for key, value in values.items()}
            values["urls"] = list(values.get("urls") or [])
            kwargs["scorer_config"] = ScorerConfig(**values)
            return command(*args, **kwargs)

        parameters = before + [parameter for _, parameter in added] + after
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper  # type: ignore[return-value]

    return decorate


def scorer_flag(field: str, *, prefixed: bool = False) -> str:
    """The command-line flag of a ScorerConfig field, for messages."""
    option = next(o for o in _SCORER_OPTIONS if o.field == field)
    return ("--reward-" + option.flags[0].removeprefix("--")) if prefixed and option.shared else option.flags[0]


def on_command_line(ctx: typer.Context, parameter: str) -> bool:
    """Whether the user typed an option (an environment variable such as OPENAI_API_KEY does not count)."""
    source = ctx.get_parameter_source(parameter)
    return source is not None and source.name == "COMMANDLINE"


def warn_ignored(ctx: typer.Context, parameter: str, flag: str, why: str) -> None:
    """Warn on stderr when the user set an option that the chosen mode does not use."""
    from ._output import warn

    if on_command_line(ctx, parameter):
        warn(f"{flag} is ignored {why}")


def warn_ignored_scorer_options(ctx: typer.Context, config: ScorerConfig, *, prefixed: bool = False) -> None:
    """Warn about reward-model options that the chosen backend does not read."""

    def check(field: str, why: str) -> None:
        option = next(o for o in _SCORER_OPTIONS if o.field == field)
        warn_ignored(ctx, _parameter(option, prefixed).name, scorer_flag(field, prefixed=prefixed), why)

    if config.urls:
        for field in ("kind", "device", "dtype", "max_batch_tokens", "tensor_parallel_size",
                      "gpu_memory_utilization"):
            check(field, "with --reward-url (the reward servers run the model)")
        return
    for field in ("api_key", "concurrency", "timeout", "max_retries"):
        check(field, "without --reward-url (they apply to reward servers)")
    if config.kind == "vllm":
        for field in ("device", "max_batch_tokens"):
            check(field, "with --scorer vllm (vLLM places and batches the model itself)")
    else:
        for field in ("tensor_parallel_size", "gpu_memory_utilization"):
            check(field, "with the transformers scorer (they apply to --scorer vllm)")


# ---------------------------------------------------------------------------------------------------------------
# The generator's options (generate, and eval when it generates its candidates).

GeneratorModel = Annotated[
    Optional[str],
    typer.Option("--model", "-m", envvar="CODESCALER_MODEL", show_default=False, rich_help_panel=GENERATOR,
                 help=f"Generator: hub id or local directory for in-process vLLM (default {DEFAULT_GENERATOR_MODEL}); "
                 "with --base-url, the served model's name (default: the one the server serves)."),
]
Samples = Annotated[int, typer.Option("--n", "-n", min=1, help="Samples per problem.", rich_help_panel=GENERATOR)]
Temperature = Annotated[float, typer.Option("--temperature", min=0.0, help="Sampling temperature.",
                                            rich_help_panel=GENERATOR)]
TopP = Annotated[float, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling.", rich_help_panel=GENERATOR)]
MaxTokens = Annotated[int, typer.Option("--max-tokens", min=1, help="Longest response, in tokens.",
                                        rich_help_panel=GENERATOR)]
Seed = Annotated[
    Optional[int],
    typer.Option("--seed", min=0, help="Same seed, same candidates. Default: a random seed, recorded in the output.",
                 show_default=False, rich_help_panel=GENERATOR),
]
SystemMessage = Annotated[Optional[str], typer.Option("--system", help="A system message for the generator.",
                                                      show_default=False, rich_help_panel=GENERATOR)]
PromptTemplate = Annotated[
    Optional[Path],
    typer.Option("--prompt-template", help="Replace the default LiveCodeBench-style prompt: a text file with "
                 "{question} (and optionally {starter_code}).", show_default=False, dir_okay=False,
                 rich_help_panel=GENERATOR),
]
ModelRevision = Annotated[Optional[str], typer.Option("--model-revision", help="Generator revision on the hub.",
                                                      show_default=False, rich_help_panel=GENERATOR)]
MaxModelLen = Annotated[
    Optional[int],
    typer.Option("--max-model-len", min=16, help="Context length of the in-process generator engine.",
                 show_default=False, rich_help_panel=GENERATOR),
]
BaseUrl = Annotated[
    Optional[list[str]],
    typer.Option("--base-url", help="Sample from an OpenAI-compatible server (http://host:8000 or "
                 "http://host:8000/v1) instead of in-process vLLM; repeat to spread requests over replicas.",
                 show_default=False, rich_help_panel=SERVERS),
]
EndpointOption = Annotated[
    Endpoint,
    typer.Option("--endpoint", help="Generator server endpoint: chat (the server applies the chat template) or "
                 "completions (codescaler renders the prompt with the served model's tokenizer).",
                 case_sensitive=False, rich_help_panel=SERVERS),
]
TokenizerOption = Annotated[
    Optional[str],
    typer.Option("--tokenizer", help="Tokenizer that renders --endpoint completions prompts (default: the served "
                 "model's).", show_default=False, rich_help_panel=SERVERS),
]
GeneratorApiKey = Annotated[
    Optional[str],
    typer.Option("--api-key", envvar="OPENAI_API_KEY", help="Bearer token for the generator servers.",
                 show_default=False, rich_help_panel=SERVERS),
]
GeneratorConcurrency = Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight per generator "
                                                   "server.", rich_help_panel=SERVERS)]
GeneratorTimeout = Annotated[
    float, typer.Option("--timeout", min=1.0, help="Seconds before one generator request is given up (then "
                        "retried).", rich_help_panel=SERVERS),
]
GeneratorMaxRetries = Annotated[
    int, typer.Option("--max-retries", min=0, help="Retries of a generator request on connection errors, 429 and "
                      "5xx.", rich_help_panel=SERVERS),
]

# Generator options by parameter name and flag: only the servers (--base-url) read the first group, only the
# in-process engine the second; sampling options matter whenever anything is generated.
GENERATOR_SERVER_ONLY = (("endpoint", "--endpoint"), ("tokenizer", "--tokenizer"), ("api_key", "--api-key"),
                         ("concurrency", "--concurrency"), ("timeout", "--timeout"), ("max_retries", "--max-retries"))
GENERATOR_ENGINE_ONLY = (("max_model_len", "--max-model-len"), ("dtype", "--dtype"),
                         ("tensor_parallel_size", "--tensor-parallel-size"),
                         ("gpu_memory_utilization", "--gpu-memory-utilization"),
                         ("generator_revision", "--model-revision"))
GENERATOR_SAMPLING = (("n", "--n"), ("temperature", "--temperature"), ("top_p", "--top-p"),
                      ("max_tokens", "--max-tokens"), ("seed", "--seed"), ("system", "--system"),
                      ("prompt_template", "--prompt-template"))
