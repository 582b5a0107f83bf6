"""Options shared by several commands, defined once: import and use these, don't redefine.

Help is grouped in panels (Input, Generator, Reward model, Servers, Output, Long runs). The reward model's and the
generator's options are each one group (`scorer_options`, `generator_options`) that adds them to a command and
hands it a single config. Where a command has both, the options of the same name are prefixed on one side:
`generate` and `eval` prefix the reward model's (`--reward-dtype`, `--reward-timeout`), `serve` the generator's
(`--generator-dtype`, `--generator-url`). Parameters are named like the config fields they fill (`reward_dtype`,
`generator_n`), which is also how run settings are named, so a refused --resume names the flag to change.
"""

from __future__ import annotations

import functools
import inspect
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from ..generation.base import DEFAULT_GENERATOR_MODEL
from ..generation.config import GeneratorConfig
from ..generation.prompts import load_template
from ..scoring.base import DEFAULT_MAX_LENGTH, DEFAULT_REWARD_MODEL
from ..scoring.config import ScorerConfig
from ._errors import option_names
from ._output import OutputFormat, warn

INPUT, GENERATOR, REWARD, SERVERS, OUTPUT, LONG_RUNS = "Input", "Generator", "Reward model", "Servers", "Output", \
    "Long runs"

F = TypeVar("F", bound=Callable[..., Any])


class GenerateFormat(str, Enum):
    auto = "auto"
    code = "code"
    jsonl = "jsonl"
    json = "json"
    table = "table"


class DType(str, Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class ScorerKind(str, Enum):
    transformers = "transformers"
    vllm = "vllm"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Endpoint(str, Enum):
    chat = "chat"
    completions = "completions"


InputFile = Annotated[Optional[str], typer.Argument(
    help="JSONL file of candidates; '-' or omitted with piped input reads standard input.", show_default=False,
    metavar="[FILE|-]")]
OutputFile = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Also write every record the command produced to this file as JSONL (all candidates, "
    "ranked), whatever --top-k and --format show on stdout.", dir_okay=False, show_default=False,
    rich_help_panel=OUTPUT)]
Format = Annotated[OutputFormat, typer.Option(
    "--format", "-f", help="Output format on stdout. auto: a table on a terminal, JSONL in a pipe.",
    case_sensitive=False, rich_help_panel=OUTPUT)]
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
TopK = Annotated[Optional[int], typer.Option(
    "--top-k", "-k", min=1, help="Show only ranks <= K of each problem on stdout (--output keeps all).",
    show_default=False, rich_help_panel=OUTPUT)]
Resume = Annotated[bool, typer.Option(
    "--resume", help="Continue an interrupted run: problems already complete in --output are kept and skipped, the "
    "rest appended. Refused when the settings differ from the first run's.", rich_help_panel=LONG_RUNS)]
CacheDir = Annotated[Optional[Path], typer.Option(
    "--cache", envvar="CODESCALER_CACHE", file_okay=False, show_default=False, rich_help_panel=LONG_RUNS,
    help="Keep reward scores and generated samples in this directory (SQLite) and reuse them; a run whose scores "
    "are all cached loads no model.")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Ignore CODESCALER_CACHE for this run.",
                                       rich_help_panel=LONG_RUNS)]


def resume_command() -> str:
    """The command line that continues this run: the same arguments plus --resume."""
    arguments = sys.argv[1:]
    if (Path(sys.argv[0]).name if sys.argv else "") not in ("codescaler", "__main__.py"):
        return "the same command with --resume"  # e.g. called from Python: the command line is not ours to know
    return "codescaler " + shlex.join(arguments if "--resume" in arguments else [*arguments, "--resume"])


# ---------------------------------------------------------------------------------------------------------------
# Option groups: the reward model's and the generator's, each filling one config.


@dataclass(frozen=True)
class _Option:
    """One option of a group: the config field it fills, its flags, type, default and help. `shared`: the other
    group has an option of the same name, so a command with both prefixes one side (where `prefixed`, when given,
    replaces the flags); `prefixed_extra` changes typer.Option arguments on the prefixed side."""

    field: str
    flags: tuple[str, ...]
    type: Any
    default: Any
    help: str
    panel: str
    shared: bool = False
    extra: tuple[tuple[str, Any], ...] = ()
    prefixed: tuple[str, ...] = ()
    prefixed_extra: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class _Group:
    name: str  # parameters are named f"{name}_{field}"; prefixed flags start with f"--{name}-"
    config_parameter: str
    options: tuple[_Option, ...]
    build: Callable[[dict[str, Any]], Any]
    defaults: dict[str, Any] = field(default_factory=dict)

    def parameter(self, option: _Option, prefixed: bool) -> inspect.Parameter:
        flags, extra = option.flags, dict(option.extra)
        if prefixed:
            if option.shared:
                flags = option.prefixed or (f"--{self.name}-" + option.flags[0].removeprefix("--"),)
            extra.update(option.prefixed_extra)
        default = self.defaults.get(option.field, option.default)
        info = typer.Option(*flags, help=option.help, rich_help_panel=option.panel, show_default=default is not None,
                            **extra)
        return inspect.Parameter(f"{self.name}_{option.field}", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                 default=default, annotation=Annotated[option.type, info])

    def decorator(self, *, prefixed: bool, leave_out: Sequence[str] = ()) -> Callable[[F], F]:
        added = [(o, self.parameter(o, prefixed)) for o in self.options if o.field not in leave_out]

        def decorate(command: F) -> F:
            signature = inspect.signature(command, eval_str=True)
            names = list(signature.parameters)
            at = names.index(self.config_parameter)  # the group takes its place, so help panels keep the order
            parameters = [signature.parameters[n] for n in names[:at]] + [p for _, p in added] + \
                [signature.parameters[n] for n in names[at + 1:]]

            @functools.wraps(command)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                values = {o.field: kwargs.pop(p.name) for o, p in added}
                kwargs[self.config_parameter] = self.build(
                    {key: value.value if isinstance(value, Enum) else value for key, value in values.items()})
                return command(*args, **kwargs)

            wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
            wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
            return wrapper  # type: ignore[return-value]

        return decorate


_DTYPE = _Option("dtype", ("--dtype",), DType, DType.auto, "Model dtype. auto: bfloat16 on GPU, float32 on CPU.",
                 GENERATOR, shared=True, extra=(("case_sensitive", False),))


def _server_side(who: str, engine_panel: str) -> tuple[_Option, ...]:
    """The options both groups have for the vLLM engine and for servers; `who` names the model in the help."""
    return (
        _Option("tensor_parallel_size", ("--tensor-parallel-size",), int, 1, f"GPUs of the {who}'s vLLM engine.",
                engine_panel, shared=True, extra=(("min", 1),)),
        _Option("gpu_memory_utilization", ("--gpu-memory-utilization",), Optional[float], None, f"Share of GPU "
                f"memory the {who}'s vLLM engine may use. Default: vLLM's 0.9 on GPUs; on CPU, what the machine "
                "can give.", engine_panel, shared=True, extra=(("min", 0.05), ("max", 1.0))),
        _Option("api_key", ("--api-key",), Optional[str], None, f"Bearer token for the {who} servers.", SERVERS,
                shared=True, extra=(("envvar", "OPENAI_API_KEY"),), prefixed_extra=(
                    ("envvar", ["CODESCALER_REWARD_API_KEY", "OPENAI_API_KEY"] if who == "reward model"
                     else "CODESCALER_GENERATOR_API_KEY"),)),
        _Option("concurrency", ("--concurrency",), int, 4, f"Requests in flight per {who} server.", SERVERS,
                shared=True, extra=(("min", 1),)),
        _Option("timeout", ("--timeout",), float, 600.0, f"Seconds before one request to a {who} server is given "
                "up (then retried).", SERVERS, shared=True, extra=(("min", 1.0),)),
        _Option("max_retries", ("--max-retries",), int, 4, f"Retries of a {who} request on connection errors, 429 "
                "and 5xx.", SERVERS, shared=True, extra=(("min", 0),)),
    )


_REWARD_SERVER_SIDE = _server_side("reward model", REWARD)
SCORER_GROUP = _Group("reward", "scorer_config", (
    _Option("model", ("--reward-model", "-r"), str, DEFAULT_REWARD_MODEL, "Reward model: Hugging Face hub id or "
            "local directory.", REWARD, extra=(("envvar", "CODESCALER_REWARD_MODEL"),)),
    _Option("revision", ("--revision",), Optional[str], None, "Reward model revision (branch, tag or commit).", REWARD),
    _Option("kind", ("--scorer",), ScorerKind, ScorerKind.transformers, "Reward backend: transformers, or vLLM's "
            "pooling runner in-process.", REWARD, extra=(("case_sensitive", False),)),
    _Option("device", ("--device",), Device, Device.auto, "Where the transformers reward model runs (auto: CUDA "
            "when available).", REWARD, extra=(("case_sensitive", False),)),
    replace(_DTYPE, panel=REWARD, help="Reward model dtype. auto: bfloat16 on GPU, float32 on CPU."),
    _Option("max_length", ("--max-length",), int, DEFAULT_MAX_LENGTH, "Longest rendered chat in tokens; longer ones "
            "are cut on the right and marked truncated.", REWARD, extra=(("min", 16),)),
    _Option("max_batch_tokens", ("--max-batch-tokens",), int, 16384, "Token budget of one scoring batch (padded "
            "tokens); halved automatically on CUDA out-of-memory.", REWARD, extra=(("min", 1),)),
    *_REWARD_SERVER_SIDE[:2],
    _Option("urls", ("--reward-url",), Optional[list[str]], None, "Score on a server (a vLLM server started with "
            "--runner pooling, or codescaler serve); repeat to spread the load over several.", SERVERS),
    *_REWARD_SERVER_SIDE[2:],
), lambda values: ScorerConfig(**{**values, "urls": list(values.get("urls") or [])}))


_GENERATOR_SERVER_SIDE = _server_side("generator", GENERATOR)
GENERATOR_GROUP = _Group("generator", "generator_config", (
    _Option("model", ("--model", "-m"), Optional[str], None, f"Generator: hub id or local directory for in-process "
            f"vLLM (default {DEFAULT_GENERATOR_MODEL}); with a generator URL, the served model's name (default: the "
            "one the server serves).", GENERATOR, extra=(("envvar", "CODESCALER_MODEL"),),
            prefixed_extra=(("envvar", None),)),
    _Option("n", ("--n", "-n"), int, 16, "Samples per problem (serve: when a request gives no best_of).", GENERATOR,
            extra=(("min", 1),)),
    _Option("temperature", ("--temperature",), float, 0.6, "Sampling temperature.", GENERATOR, extra=(("min", 0.0),)),
    _Option("top_p", ("--top-p",), float, 0.95, "Nucleus sampling.", GENERATOR, extra=(("min", 0.0), ("max", 1.0))),
    _Option("max_tokens", ("--max-tokens",), int, 4096, "Longest response, in tokens.", GENERATOR, extra=(("min", 1),)),
    _Option("seed", ("--seed",), Optional[int], None, "Same seed, same candidates. Default: a random seed, recorded "
            "in the output.", GENERATOR, extra=(("min", 0),)),
    _Option("system", ("--system",), Optional[str], None, "A system message for the generator.", GENERATOR),
    _Option("template", ("--prompt-template",), Optional[Path], None, "Replace the default LiveCodeBench-style "
            "prompt: a text file with {question} (and optionally {starter_code}).", GENERATOR,
            extra=(("dir_okay", False),)),
    _Option("revision", ("--model-revision",), Optional[str], None, "Generator revision on the hub.", GENERATOR,
            shared=True, prefixed=("--generator-revision",)),
    _DTYPE,
    *_GENERATOR_SERVER_SIDE[:2],
    _Option("max_model_len", ("--max-model-len",), Optional[int], None, "Context length of the in-process generator "
            "engine.", GENERATOR, extra=(("min", 16),)),
    _Option("urls", ("--base-url",), Optional[list[str]], None, "Sample from an OpenAI-compatible server "
            "(http://host:8000 or http://host:8000/v1) instead of in-process vLLM; repeat to spread requests over "
            "replicas.", SERVERS, shared=True, prefixed=("--generator-url",)),
    _Option("endpoint", ("--endpoint",), Endpoint, Endpoint.chat, "Generator server endpoint: chat (the server "
            "applies the chat template) or completions (codescaler renders the prompt with the served model's "
            "tokenizer).", SERVERS, extra=(("case_sensitive", False),)),
    _Option("tokenizer", ("--tokenizer",), Optional[str], None, "Tokenizer that renders --endpoint completions "
            "prompts (default: the served model's).", SERVERS),
    *_GENERATOR_SERVER_SIDE[2:],
), lambda values: GeneratorConfig(**{
    **values, "urls": list(values.get("urls") or []),
    "template": load_template(values["template"]) if values.get("template") is not None else None}))

# What only generator servers read, what only an in-process engine reads, and what any generator reads.
GENERATOR_SERVER_ONLY = ("endpoint", "tokenizer", "api_key", "concurrency", "timeout", "max_retries")
GENERATOR_ENGINE_ONLY = ("max_model_len", "dtype", "tensor_parallel_size", "gpu_memory_utilization", "revision")
GENERATOR_SAMPLING = ("n", "temperature", "top_p", "max_tokens", "seed", "system", "template")
# What serve leaves out: requests bring their own sampling settings and prompts, and it speaks chat.
SERVE_LEAVES_OUT = ("temperature", "top_p", "max_tokens", "seed", "system", "template", "endpoint", "tokenizer")


def scorer_options(*, prefixed: bool = False, local_only: bool = False) -> Callable[[F], F]:
    """Add the reward model's options to a command, which receives them as one `scorer_config: ScorerConfig`.

    `prefixed`: options the generator also has get a `--reward-` prefix. `local_only`: the model runs in this
    process (`serve`), so the reward-server options are left out.
    """
    servers = [o.field for o in SCORER_GROUP.options if o.panel == SERVERS] if local_only else []
    return SCORER_GROUP.decorator(prefixed=prefixed, leave_out=servers)


def generator_options(*, serve: bool = False) -> Callable[[F], F]:
    """Add the generator's options to a command, which receives them as one `generator_config: GeneratorConfig`.

    `serve`: the options serve's OpenAI endpoints read, the shared ones prefixed with `--generator-`.
    """
    if not serve:
        return GENERATOR_GROUP.decorator(prefixed=False)
    group = _Group(GENERATOR_GROUP.name, GENERATOR_GROUP.config_parameter, GENERATOR_GROUP.options,
                   GENERATOR_GROUP.build, defaults={"n": 8, "concurrency": 8})
    return group.decorator(prefixed=True, leave_out=SERVE_LEAVES_OUT)


# ---------------------------------------------------------------------------------------------------------------
# Options the chosen mode does not read: warned about when the user typed them.


def on_command_line(ctx: typer.Context, parameter: str) -> bool:
    """Whether the user typed an option (an environment variable such as OPENAI_API_KEY does not count)."""
    source = ctx.get_parameter_source(parameter)
    return source is not None and source.name == "COMMANDLINE"


def warn_ignored(ctx: typer.Context, parameters: Sequence[str], why: str) -> None:
    """Warn on stderr about each of `parameters` the user set although the chosen mode does not use it."""
    names = option_names(ctx)
    for parameter in parameters:
        if parameter in names and on_command_line(ctx, parameter):
            warn(f"{names[parameter]} is ignored {why}")


def warn_ignored_scorer_options(ctx: typer.Context, config: ScorerConfig) -> None:
    """Warn about reward-model options that the chosen backend does not read."""
    def check(fields: Sequence[str], why: str) -> None:
        warn_ignored(ctx, [f"reward_{name}" for name in fields], why)

    if config.urls:
        check(("kind", "device", "dtype", "max_batch_tokens", "tensor_parallel_size", "gpu_memory_utilization"),
              "with --reward-url (the reward servers run the model)")
        return
    check(("api_key", "concurrency", "timeout", "max_retries"), "without --reward-url (they apply to reward servers)")
    if config.kind == "vllm":
        check(("device", "max_batch_tokens"), "with --scorer vllm (vLLM places and batches the model itself)")
    else:
        check(("tensor_parallel_size", "gpu_memory_utilization"),
              "with the transformers scorer (they apply to --scorer vllm)")


def warn_ignored_generator_options(ctx: typer.Context, config: GeneratorConfig | None, *, unused: str,
                                   server_only: Sequence[str] = (), any_generator: Sequence[str] = ()) -> None:
    """Warn about generator options that the chosen generator does not read (None: nothing is generated, `unused`
    says why); `server_only` and `any_generator` are a command's own parameters of those kinds."""
    def name(fields: Sequence[str]) -> list[str]:
        return [f"generator_{field}" for field in fields]

    urls = option_names(ctx).get("generator_urls", "--base-url")
    if config is None:
        warn_ignored(ctx, name(GENERATOR_SAMPLING + GENERATOR_ENGINE_ONLY + GENERATOR_SERVER_ONLY) +
                     [*server_only, *any_generator], unused)
    elif config.urls:
        warn_ignored(ctx, name(GENERATOR_ENGINE_ONLY), f"with {urls} (the servers run the generator)")
    else:
        warn_ignored(ctx, name(GENERATOR_SERVER_ONLY) + list(server_only),
                     f"without {urls} (it applies to generator servers)")
