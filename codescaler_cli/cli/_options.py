"""Options shared by several commands, defined once: import and use these, don't redefine.

Help is grouped in panels (Options: output and general, then Input, Generator, Reward model, Servers, Long runs).
`--help` shows the options most runs need; the expert settings (`expert=True`: hidden) appear with `--help-all`
and in the reference. The reward model's and the
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
from dataclasses import MISSING, dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar, get_type_hints

import typer

from ..backends.loading import DEVICES, DTYPES
from ..evaluation.benchmarks import LCB_RELEASES
from ..evaluation.config import BenchmarkConfig, EvalConfig
from ..evaluation.sandbox import ISOLATIONS
from ..extraction import EXTRACTION_MODES
from ..generation.config import ENDPOINTS, GeneratorConfig
from ..generation.prompts import load_template
from ..scoring.config import SCORER_KINDS, ScorerConfig
from ..selection import SELECTIONS
from ..serving.config import LOG_LEVELS, ServeConfig
from ..serving.inputs import PROMPT_FORMATS
from ._errors import option_names
from ._output import OutputFormat, warn

# Output options share the default panel with -h/--help and --help-all: Typer shows it first.
INPUT, GENERATOR, REWARD, SERVERS, OUTPUT, LONG_RUNS = "Input", "Generator", "Reward model", "Servers", "Options", \
    "Long runs"
ADAPTIVE = "Adaptive sampling"
FLAG = ""  # the metavar of an option that takes a value but is best described by its help (none shown)

F = TypeVar("F", bound=Callable[..., Any])


def _choices(name: str, values: Sequence[str]) -> Any:
    """An Enum of the library's choices, which Typer shows and checks (case-insensitive where the option says)."""
    return Enum(name, {value: value for value in values}, type=str)  # type: ignore[call-overload]


GenerateFormat = _choices("GenerateFormat", ("auto", "code", "jsonl", "json", "table"))
DType = _choices("DType", DTYPES)
Device = _choices("Device", DEVICES)
ScorerKind = _choices("ScorerKind", SCORER_KINDS)
Endpoint = _choices("Endpoint", ENDPOINTS)


InputFile = Annotated[Optional[str], typer.Argument(
    help="JSONL file of candidates (or a JSON array); '-' or omitted with piped input reads standard input.",
    show_default=False, metavar="FILE|-")]
OutputFile = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Also write every record the command produced to this file as JSONL, whatever --format "
    "shows on stdout.", dir_okay=False, show_default=False, rich_help_panel=OUTPUT)]
RankedOutputFile = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Also write every candidate, ranked, to this file (JSONL), whatever stdout shows.",
    dir_okay=False, show_default=False, rich_help_panel=OUTPUT)]
Format = Annotated[OutputFormat, typer.Option(
    "--format", "-f", help="Output format on stdout. auto: a table on a terminal, JSONL in a pipe.",
    case_sensitive=False, rich_help_panel=OUTPUT)]
IdField = Annotated[str, typer.Option("--id-field", help="Field grouping candidates of one problem.",
                                      metavar="FIELD", rich_help_panel=INPUT)]
QuestionField = Annotated[str, typer.Option("--question-field", help="Field holding the problem statement.",
                                            metavar="FIELD", rich_help_panel=INPUT)]
ResponseField = Annotated[str, typer.Option("--response-field", help="Field holding the raw model output.",
                                            metavar="FIELD", rich_help_panel=INPUT)]
CodeField = Annotated[str, typer.Option("--code-field", help="Field holding already-extracted code.",
                                        metavar="FIELD", rich_help_panel=INPUT)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary on stderr.",
                                     rich_help_panel=OUTPUT)]
TopK = Annotated[Optional[int], typer.Option(
    "--top-k", "-k", min=1, help="Show only ranks <= K of each problem on stdout (--output keeps all).",
    show_default=False, rich_help_panel=OUTPUT)]
Selection = _choices("Selection", SELECTIONS)
Select = Annotated[Selection, typer.Option(
    "--select", help="How rank 1 is chosen: reward-model (the highest score), vote (the most candidates of one "
    "program, ties by reward) or reward-weighted-vote (the largest sum of one program's rewards).",
    case_sensitive=False, rich_help_panel=OUTPUT)]
Resume = Annotated[bool, typer.Option(
    "--resume", help="Continue an interrupted run: what --output holds is kept, the rest appended (refused when "
    "the settings differ).", rich_help_panel=LONG_RUNS)]
CacheDir = Annotated[Optional[Path], typer.Option(
    "--cache", envvar="CODESCALER_CACHE", file_okay=False, show_default=False, rich_help_panel=LONG_RUNS,
    help="Keep reward scores and samples in this directory and reuse them.")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Ignore CODESCALER_CACHE for this run.",
                                       rich_help_panel=LONG_RUNS, hidden=True)]


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
    """One option of a group: the config field it fills (its help is the field's), its flags and help panel, and
    its type when the field's own is not what the command line takes. `shared`: the other group has an option of
    the same name, so a command with both prefixes one side (where `prefixed`, when given, replaces the flags);
    `prefixed_extra` changes typer.Option arguments on the prefixed side. `metavar`: what --help shows for the
    value (default: its type); `expert`: shown by --help-all only."""

    field: str
    flags: tuple[str, ...]
    panel: str
    type: Any = None
    shared: bool = False
    extra: tuple[tuple[str, Any], ...] = ()
    prefixed: tuple[str, ...] = ()
    prefixed_extra: tuple[tuple[str, Any], ...] = ()
    metavar: str | None = None
    expert: bool = False


@dataclass(frozen=True)
class _Group:
    """Options that fill one config, handed to the command as its parameter `config_parameter`."""

    name: str  # parameters are named f"{name}_{field}" ("" : the field's own name); prefixed flags f"--{name}-..."
    config: type
    config_parameter: str
    options: tuple[_Option, ...]
    defaults: dict[str, Any] = field(default_factory=dict)

    def parameter(self, option: _Option, prefixed: bool) -> inspect.Parameter:
        spec = {f.name: f for f in fields(self.config)}[option.field]
        flags, extra = option.flags, dict(option.extra)
        if prefixed:
            if option.shared:
                flags = option.prefixed or (f"--{self.name}-" + option.flags[0].removeprefix("--"),)
            extra.update(option.prefixed_extra)
        default = self.defaults.get(option.field, None if spec.default is MISSING else spec.default)
        kind = option.type or get_type_hints(self.config)[option.field]
        if isinstance(kind, type) and issubclass(kind, Enum):
            default = kind(default)
        info = typer.Option(*flags, help=spec.metadata["help"], rich_help_panel=option.panel,
                            show_default=default is not None, metavar=option.metavar, hidden=option.expert, **extra)
        return inspect.Parameter(f"{self.name}_{option.field}" if self.name else option.field,
                                 inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                 default=default, annotation=Annotated[kind, info])

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
                values = {key: value.value if isinstance(value, Enum) else value for key, value in values.items()}
                if "urls" in values:
                    values["urls"] = list(values["urls"] or [])
                if values.get("template") is not None:
                    values["template"] = load_template(values["template"])
                kwargs[self.config_parameter] = self.config(**values)
                return command(*args, **kwargs)

            wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
            wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
            return wrapper  # type: ignore[return-value]

        return decorate


def _server_side(panel: str, api_key_variables: Any) -> tuple[_Option, ...]:
    """The options both groups have, for the vLLM engine (in `panel`) and for servers: all expert settings."""
    return (_Option("tensor_parallel_size", ("--tensor-parallel-size",), panel, shared=True, extra=(("min", 1),),
                    expert=True),
            _Option("gpu_memory_utilization", ("--gpu-memory-utilization",), panel, shared=True,
                    extra=(("min", 0.05), ("max", 1.0)), expert=True),
            _Option("api_key", ("--api-key",), SERVERS, shared=True, extra=(("envvar", "OPENAI_API_KEY"),),
                    prefixed_extra=(("envvar", api_key_variables),), metavar="KEY", expert=True),
            _Option("concurrency", ("--concurrency",), SERVERS, shared=True, extra=(("min", 1),), expert=True),
            _Option("timeout", ("--timeout",), SERVERS, shared=True, extra=(("min", 1.0),), metavar="SECONDS",
                    expert=True),
            _Option("max_retries", ("--max-retries",), SERVERS, shared=True, extra=(("min", 0),), expert=True))


_ANY_CASE = (("case_sensitive", False),)
_URLS = Optional[list[str]]
SCORER_GROUP = _Group("reward", ScorerConfig, "scorer_config", (
    _Option("model", ("--reward-model", "-r"), REWARD, extra=(("envvar", "CODESCALER_REWARD_MODEL"),),
            metavar="MODEL"),
    _Option("revision", ("--revision",), REWARD, metavar="REVISION", expert=True),
    _Option("kind", ("--scorer",), REWARD, type=ScorerKind, extra=_ANY_CASE),
    _Option("device", ("--device",), REWARD, type=Device, extra=_ANY_CASE, expert=True),
    _Option("dtype", ("--dtype",), REWARD, type=DType, shared=True, extra=_ANY_CASE, expert=True),
    _Option("max_length", ("--max-length",), REWARD, extra=(("min", 16),), metavar="TOKENS", expert=True),
    _Option("max_batch_tokens", ("--max-batch-tokens",), REWARD, extra=(("min", 1),), metavar="TOKENS",
            expert=True),
    _Option("urls", ("--reward-url",), SERVERS, type=_URLS, metavar="URL"),
    *_server_side(REWARD, ["CODESCALER_REWARD_API_KEY", "OPENAI_API_KEY"]),
))
GENERATOR_GROUP = _Group("generator", GeneratorConfig, "generator_config", (
    _Option("model", ("--model", "-m"), GENERATOR, extra=(("envvar", "CODESCALER_MODEL"),),
            prefixed_extra=(("envvar", None),), metavar="MODEL"),
    _Option("n", ("--n", "-n"), GENERATOR, extra=(("min", 1),), metavar="N"),
    _Option("temperature", ("--temperature",), GENERATOR, extra=(("min", 0.0),), expert=True),
    _Option("top_p", ("--top-p",), GENERATOR, extra=(("min", 0.0), ("max", 1.0)), expert=True),
    _Option("max_tokens", ("--max-tokens",), GENERATOR, extra=(("min", 1),), metavar="TOKENS"),
    _Option("seed", ("--seed",), GENERATOR, extra=(("min", 0),), metavar="SEED"),
    _Option("system", ("--system",), GENERATOR, metavar="TEXT", expert=True),
    _Option("template", ("--prompt-template",), GENERATOR, type=Optional[Path], extra=(("dir_okay", False),),
            expert=True),
    _Option("revision", ("--model-revision",), GENERATOR, shared=True, prefixed=("--generator-revision",),
            metavar="REVISION", expert=True),
    _Option("dtype", ("--dtype",), GENERATOR, type=DType, shared=True, extra=_ANY_CASE, expert=True),
    _Option("max_model_len", ("--max-model-len",), GENERATOR, extra=(("min", 16),), metavar="TOKENS", expert=True),
    _Option("urls", ("--base-url",), SERVERS, type=_URLS, shared=True, prefixed=("--generator-url",),
            metavar="URL"),
    _Option("endpoint", ("--endpoint",), SERVERS, type=Endpoint, extra=_ANY_CASE, expert=True),
    _Option("tokenizer", ("--tokenizer",), SERVERS, metavar="MODEL", expert=True),
    *_server_side(GENERATOR, "CODESCALER_GENERATOR_API_KEY"),
    _Option("wave", ("--wave",), ADAPTIVE, extra=(("min", 1),), metavar="N"),
    _Option("stop_score", ("--stop-score",), ADAPTIVE, metavar="SCORE", expert=True),
    _Option("stop_margin", ("--stop-margin",), ADAPTIVE, extra=(("min", 0.0),), metavar="MARGIN", expert=True),
    _Option("stop_agreement", ("--stop-agreement",), ADAPTIVE, extra=(("min", 1),), metavar="K", expert=True),
))

SANDBOX, SELECTION, COST = "Sandbox", "Benchmark selection", "Cost and selection"
Release = _choices("Release", LCB_RELEASES)
# The benchmark and its selection (BenchmarkConfig's fields), which eval and generate share.
BENCHMARK_OPTION = _Option("benchmark", ("--benchmark", "-b"), INPUT, metavar="NAME")
SELECTION_OPTIONS = (
    _Option("release", ("--release",), SELECTION, type=Optional[Release], extra=_ANY_CASE),
    _Option("since", ("--since",), SELECTION, metavar="YYYY-MM-DD"),
    _Option("until", ("--until",), SELECTION, metavar="YYYY-MM-DD", expert=True),
    _Option("limit", ("--limit",), SELECTION, extra=(("min", 1),), metavar="N"),
    _Option("sample", ("--sample",), SELECTION, extra=(("min", 1),), metavar="N", expert=True),
    _Option("sample_seed", ("--sample-seed",), SELECTION, metavar="SEED", expert=True),
)
# generate's --help has room for --limit only: its other selection options are shown by --help-all.
BENCHMARK_GROUP = _Group("", BenchmarkConfig, "benchmark_config", (BENCHMARK_OPTION, *(
    option if option.field == "limit" else replace(option, expert=True) for option in SELECTION_OPTIONS)))
EVAL_GROUP = _Group("", EvalConfig, "eval_config", (
    BENCHMARK_OPTION,
    _Option("problems_file", ("--problems", "-p"), INPUT, type=Optional[Path], extra=(("dir_okay", False),)),
    *SELECTION_OPTIONS,
    _Option("jobs", ("--jobs", "-j"), SANDBOX, extra=(("min", 1),), metavar="N"),
    _Option("test_timeout", ("--test-timeout",), SANDBOX, extra=(("min", 0.1),), metavar="SECONDS", expert=True),
    _Option("memory_mb", ("--memory",), SANDBOX, extra=(("min", 64),), metavar="MIB", expert=True),
    _Option("python", ("--python",), SANDBOX, metavar="PATH", expert=True),
    _Option("isolation", ("--isolation",), SANDBOX, type=_choices("Isolation", ISOLATIONS), extra=_ANY_CASE,
            expert=True),
    _Option("calibrate", ("--calibrate",), COST, extra=(("min", 0.0), ("max", 1.0)), metavar="EPS"),
    _Option("replay_orders", ("--replay-orders",), COST, extra=(("min", 1),), metavar="N", expert=True),
    _Option("replay_seed", ("--replay-seed",), COST, metavar="SEED", expert=True),
    _Option("generated_tests", ("--generated-tests",), COST, extra=(("min", 1),), metavar="K"),
))
SERVER, BATCHING, REWARDS = OUTPUT, "Batching", "Rewards"  # serve's own options are its general ones
SERVE_GROUP = _Group("", ServeConfig, "serve_config", (
    _Option("host", ("--host",), SERVER, metavar="HOST"),
    _Option("port", ("--port", "-p"), SERVER, extra=(("min", 0), ("max", 65535)), metavar="PORT"),
    _Option("api_key", ("--api-key",), SERVER, extra=(("envvar", "CODESCALER_API_KEY"),), metavar="KEY"),
    _Option("served_model_name", ("--served-model-name",), SERVER, metavar="NAME", expert=True),
    _Option("max_request_bytes", ("--max-request-bytes",), SERVER, extra=(("min", 1024),), metavar="BYTES",
            expert=True),
    _Option("max_text_chars", ("--max-text-chars",), SERVER, extra=(("min", 1),), metavar="CHARS", expert=True),
    _Option("log_level", ("--log-level",), SERVER, type=_choices("LogLevel", LOG_LEVELS), extra=_ANY_CASE,
            expert=True),
    _Option("batch_wait_ms", ("--batch-wait-ms",), BATCHING, extra=(("min", 0.0),), metavar="MS", expert=True),
    _Option("max_batch_requests", ("--max-batch-requests",), BATCHING, extra=(("min", 1),), metavar="N",
            expert=True),
    _Option("max_queue", ("--max-queue",), BATCHING, extra=(("min", 1),), metavar="N", expert=True),
    _Option("extraction", ("--extraction",), REWARDS, type=_choices("Extraction", EXTRACTION_MODES), extra=_ANY_CASE,
            expert=True),
    _Option("raw", ("--raw",), REWARDS, expert=True),
    _Option("prompt_format", ("--prompt-format",), REWARDS, type=_choices("PromptFormat", PROMPT_FORMATS),
            extra=_ANY_CASE, expert=True),
    _Option("reuse_prefix", ("--prefix-reuse/--no-prefix-reuse",), REWARD, expert=True),
    _Option("max_best_of", ("--max-best-of",), GENERATOR, extra=(("min", 1),), metavar="N", expert=True),
    _Option("max_best_of_requests", ("--max-best-of-requests",), GENERATOR, extra=(("min", 1),), metavar="N",
            expert=True),
    _Option("samples_per_request", ("--samples-per-request",), GENERATOR, extra=(("min", 1),), metavar="N",
            expert=True),
))
eval_options = functools.partial(EVAL_GROUP.decorator, prefixed=False)
benchmark_options = functools.partial(BENCHMARK_GROUP.decorator, prefixed=False)
serve_options = functools.partial(SERVE_GROUP.decorator, prefixed=False)

# What only generator servers read, what only an in-process engine reads, and what any generator reads.
GENERATOR_SERVER_ONLY = ("endpoint", "tokenizer", "api_key", "concurrency", "timeout", "max_retries")
GENERATOR_ENGINE_ONLY = ("max_model_len", "dtype", "tensor_parallel_size", "gpu_memory_utilization", "revision")
GENERATOR_SAMPLING = ("n", "temperature", "top_p", "max_tokens", "seed", "system", "template", "stop_score",
                      "stop_margin", "stop_agreement")
# The stopping rules, which --wave needs (eval's replay reads --wave on its own).
STOP_RULES = ("stop_score", "stop_margin", "stop_agreement")
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
    return replace(GENERATOR_GROUP, defaults={"n": 8, "concurrency": 8}).decorator(prefixed=True,
                                                                                  leave_out=SERVE_LEAVES_OUT)


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
