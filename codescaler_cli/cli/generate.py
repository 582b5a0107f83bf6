"""`codescaler generate`: sample N solutions with vLLM, score them with the reward model, keep the best.

The work is the library's `iter_best_of_n`; this module reads options and problems, and writes what comes out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import CodescalerError, UsageError
from ..generation import DEFAULT_GENERATOR_MODEL, Problem, SamplingSettings, load_template, read_problems
from ..generation.config import GeneratorConfig
from ..pipeline import BestOfNRun, count_unique, iter_best_of_n
from ..records import Candidate, group_candidates
from ..scoring import ScorerConfig
from ..selection import top_k as keep_top_k
from ._errors import handle_errors
from ._input import stdin_is_terminal
from ._options import (
    GENERATOR,
    INPUT,
    OUTPUT,
    SERVERS,
    DType,
    DTypeOption,
    Endpoint,
    GenerateFormat,
    GpuMemory,
    OutputFile,
    OutputFormat,
    Quiet,
    TensorParallel,
    scorer_options,
    warn_ignored,
    warn_ignored_scorer_options,
)
from ._output import (
    RecordWriter,
    exit_on_item_errors,
    finish_truncation_warnings,
    info,
    progress_phases,
    stdout_is_terminal,
    warn_truncated,
    write_records,
)

# Options that only the generator servers (--base-url) read, and only the in-process engine reads.
_SERVER_ONLY = (("endpoint", "--endpoint"), ("tokenizer", "--tokenizer"), ("api_key", "--api-key"),
                ("concurrency", "--concurrency"), ("timeout", "--timeout"), ("max_retries", "--max-retries"))
_ENGINE_ONLY = (("max_model_len", "--max-model-len"), ("dtype", "--dtype"),
                ("tensor_parallel_size", "--tensor-parallel-size"),
                ("gpu_memory_utilization", "--gpu-memory-utilization"), ("generator_revision", "--model-revision"))


@handle_errors
@scorer_options(prefixed=True)
def generate(
    ctx: typer.Context,
    question: Annotated[Optional[str], typer.Argument(help="The problem. Omitted: read from piped stdin.",
                                                      show_default=False)] = None,
    problems_file: Annotated[Optional[str], typer.Option(
        "--problems", "-p", help="JSONL of problems ({\"id\", \"question\", \"starter_code\"?}); '-' for stdin.",
        show_default=False, rich_help_panel=INPUT)] = None,
    system: Annotated[Optional[str], typer.Option("--system", help="A system message for the generator.",
                                                  show_default=False, rich_help_panel=INPUT)] = None,
    prompt_template: Annotated[Optional[Path], typer.Option(
        "--prompt-template", help="Replace the default LiveCodeBench-style prompt: a text file with {question} "
        "(and optionally {starter_code}).", show_default=False, dir_okay=False, rich_help_panel=INPUT)] = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", envvar="CODESCALER_MODEL", show_default=False, rich_help_panel=GENERATOR,
        help=f"Generator: hub id or local directory for in-process vLLM (default {DEFAULT_GENERATOR_MODEL}); with "
        "--base-url, the served model's name (default: the one the server serves).")] = None,
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Samples per problem.", rich_help_panel=GENERATOR)] = 16,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="Sampling temperature.",
                                               rich_help_panel=GENERATOR)] = 0.6,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling.",
                                         rich_help_panel=GENERATOR)] = 0.95,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Longest response, in tokens.",
                                            rich_help_panel=GENERATOR)] = 4096,
    seed: Annotated[Optional[int], typer.Option(
        "--seed", min=0, help="Same seed, same candidates. Default: a random seed, recorded in the output.",
        show_default=False, rich_help_panel=GENERATOR)] = None,
    generator_revision: Annotated[Optional[str], typer.Option(
        "--model-revision", help="Generator revision on the hub.", show_default=False,
        rich_help_panel=GENERATOR)] = None,
    dtype: DTypeOption = DType.auto,
    tensor_parallel_size: TensorParallel = 1,
    gpu_memory_utilization: GpuMemory = None,
    max_model_len: Annotated[Optional[int], typer.Option(
        "--max-model-len", min=16, help="Context length of the in-process generator engine.",
        show_default=False, rich_help_panel=GENERATOR)] = None,
    base_url: Annotated[Optional[list[str]], typer.Option(
        "--base-url", help="Sample from an OpenAI-compatible server (http://host:8000 or http://host:8000/v1) "
        "instead of in-process vLLM; repeat to spread requests over replicas.", show_default=False,
        rich_help_panel=SERVERS)] = None,
    endpoint: Annotated[Endpoint, typer.Option(
        "--endpoint", help="Generator server endpoint: chat (the server applies the chat template) or completions "
        "(codescaler renders the prompt with the served model's tokenizer).", case_sensitive=False,
        rich_help_panel=SERVERS)] = Endpoint.chat,
    tokenizer: Annotated[Optional[str], typer.Option(
        "--tokenizer", help="Tokenizer that renders --endpoint completions prompts (default: the served model's).",
        show_default=False, rich_help_panel=SERVERS)] = None,
    api_key: Annotated[Optional[str], typer.Option(
        "--api-key", envvar="OPENAI_API_KEY", help="Bearer token for the generator servers.", show_default=False,
        rich_help_panel=SERVERS)] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight per generator server.",
                                             rich_help_panel=SERVERS)] = 4,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=1.0, help="Seconds before one generator request is given up (then retried).",
        rich_help_panel=SERVERS)] = 600.0,
    max_retries: Annotated[int, typer.Option(
        "--max-retries", min=0, help="Retries of a generator request on connection errors, 429 and 5xx.",
        rich_help_panel=SERVERS)] = 4,
    scorer_config: ScorerConfig = ScorerConfig(),
    top_k: Annotated[Optional[int], typer.Option(
        "--top-k", "-k", min=1, help="Records per problem on stdout (jsonl/json/table). Default: all for one "
        "question, 1 with --problems. --output keeps all.", show_default=False, rich_help_panel=OUTPUT)] = None,
    output: OutputFile = None,
    output_format: Annotated[GenerateFormat, typer.Option(
        "--format", "-f", help="stdout: code (the best program), jsonl, json or table. auto: code for one question, "
        "jsonl with --problems.", case_sensitive=False, rich_help_panel=OUTPUT)] = GenerateFormat.auto,
    quiet: Quiet = False,
) -> None:
    """Sample N solutions, score them with the reward model and print the best.

        codescaler generate "Given an array nums, return the length of its longest increasing subsequence." > lis.py

    The generator runs in-process with vLLM (or on servers with --base-url); the responses are extracted, scored by
    the reward model and ranked. One question: the best code on stdout and a summary on stderr. --problems: the
    top record per problem as JSONL. --output keeps every candidate: the samples are saved there as soon as they
    are drawn, then replaced by the scored records.

    More examples:

        codescaler generate --problems problems.jsonl -n 16 --seed 0 -o all.jsonl > best.jsonl

        codescaler generate "Write add(a, b)" --base-url http://127.0.0.1:8000 -r LARK-Lab/CodeScaler-4B
    """
    fmt = output_format
    many = problems_file is not None
    if fmt is GenerateFormat.auto:
        fmt = GenerateFormat.jsonl if many else GenerateFormat.code
    scorer_config.validate()
    _warn_ignored_options(ctx, fmt, bool(base_url), scorer_config)
    problems = _read_problems(question, problems_file)
    template = load_template(prompt_template) if prompt_template is not None else None
    if fmt is GenerateFormat.code and len(problems) > 1:
        raise UsageError("--format code prints one program; with several problems use jsonl, json or table")
    keep = top_k if top_k is not None else (1 if many else None)
    settings = SamplingSettings(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens)
    generator_config = GeneratorConfig(
        model=model, urls=list(base_url or []), endpoint=endpoint.value, tokenizer=tokenizer,
        revision=generator_revision, dtype=dtype.value, tensor_parallel_size=tensor_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len, api_key=api_key,
        concurrency=concurrency, timeout=timeout, max_retries=max_retries)
    record_format = OutputFormat(fmt.value) if fmt is not GenerateFormat.code else OutputFormat.jsonl
    show = not quiet
    max_length = scorer_config.max_length
    run = BestOfNRun()
    saved: list[Path] = []

    with progress_phases(enabled=show) as phases, \
            RecordWriter(record_format, output, columns="rank", stdout=fmt is not GenerateFormat.code,
                         staged=True) as writer:
        if not problems:
            return

        def sampled(candidates: list[Candidate]) -> None:
            # Saved before scoring: a reward side that fails later costs no sample.
            if output is not None:
                write_records(output, [_sample_record(c) for c in candidates])
                saved.append(output)
            phases.set_total("Scoring", count_unique(group_candidates(candidates)))

        advance_sampling = phases.phase("Sampling", len(problems) * n)
        advance_scoring = phases.phase("Scoring")
        truncated_seen = 0
        try:
            for ranked in iter_best_of_n(problems, generator_config, scorer_config, settings, seed=seed,
                                         template=template, system=system, run=run, on_sampled=sampled,
                                         sampling_progress=advance_sampling, scoring_progress=advance_scoring):
                truncated_seen = warn_truncated(ranked, truncated_seen, max_length, _sample_name)
                writer.write([c.scored_record() for c in keep_top_k(ranked, keep)],
                             problem=str(ranked[0].record.get("id")),
                             file_records=[c.scored_record() for c in ranked])
        except (CodescalerError, KeyboardInterrupt) as exc:
            if saved:
                where = (f"the {len(run.candidates)} samples are saved in {saved[0]}; score them later with: "
                         f"codescaler rank {saved[0]}")
                if isinstance(exc, CodescalerError):
                    exc.hint = f"{exc.hint}; {where}" if exc.hint else where
                else:
                    info(where)
            raise

    finish_truncation_warnings(truncated_seen, max_length)
    best = run.best
    if fmt is GenerateFormat.code:
        _print_code(best[0])
    if show:
        _summary(run)
    exit_on_item_errors(run.candidates, _sample_name, "samples failed")
    if fmt is GenerateFormat.code and not best[0].valid:
        info(f"error: none of the {len(run.candidates)} samples contained valid Python code")
        info("hint: raise --max-tokens or --n, or check the generator with --format jsonl")
        raise typer.Exit(1)


def _warn_ignored_options(ctx: typer.Context, fmt: GenerateFormat, servers: bool, scorer_config: ScorerConfig) -> None:
    if fmt is GenerateFormat.code:
        warn_ignored(ctx, "top_k", "--top-k", "with --format code (it prints the best program only)")
    for parameter, flag in _ENGINE_ONLY if servers else _SERVER_ONLY:
        why = ("with --base-url (the server runs the generator)" if servers
               else "without --base-url (it applies to generator servers)")
        warn_ignored(ctx, parameter, flag, why)
    warn_ignored_scorer_options(ctx, scorer_config, prefixed=True)


def _sample_record(candidate: Candidate) -> dict:  # type: ignore[type-arg]
    """A sample as saved before scoring: the record, its extracted code and validity, and any error."""
    record = candidate.extracted_record()
    if candidate.error is not None:
        record["error"] = candidate.error
    return record


def _sample_name(candidate: Candidate) -> str:
    return f"problem {candidate.record.get('id')!r} sample {candidate.record.get('sample')}"


def _read_problems(question: str | None, problems_file: str | None) -> list[Problem]:
    if question is not None and problems_file is not None:
        raise UsageError("give either a QUESTION or --problems, not both")
    if problems_file is not None:
        if problems_file == "-" and stdin_is_terminal():
            raise UsageError("--problems - reads standard input, but nothing is piped")
        return read_problems(problems_file, stdin=getattr(sys.stdin, "buffer", None))
    if question is None:
        if stdin_is_terminal():
            raise UsageError("no problem given", 'pass it as an argument: codescaler generate "Write add(a, b)", '
                             "pipe it on stdin, or use --problems FILE.jsonl")
        question = sys.stdin.read()
    if not question.strip():
        raise UsageError("the problem text is empty")
    return [Problem(id=0, question=question, record={})]


def _print_code(best: Candidate) -> None:
    if not best.valid:
        return
    if stdout_is_terminal():
        from rich.console import Console
        from rich.syntax import Syntax

        Console().print(Syntax(best.code, "python", line_numbers=False, word_wrap=True))
    else:
        sys.stdout.write(best.code + "\n")
        sys.stdout.flush()


def _summary(run: BestOfNRun) -> None:
    generation, scoring = run.generation, run.scoring
    valid = sum(c.valid for c in run.candidates)
    scores = [c.score for c in run.best if c.score is not None]
    best_text = f"{max(scores):.3f}" if scores else "-"
    problems = len(run.groups)
    line = (f"{problems} problem{'s' if problems != 1 else ''}: sampled {len(run.candidates)}, valid {valid}, "
            f"unique {run.to_score}, best score {best_text}")
    if generation is not None:
        rate = generation.completion_tokens / generation.seconds if generation.seconds else 0.0
        line += (f" | generating {generation.seconds:.1f}s ({generation.completion_tokens:,} tokens, "
                 f"{rate:,.0f} tokens/s)")
    if scoring is not None:
        rate = scoring.tokens / scoring.seconds if scoring.seconds else 0.0
        line += f" | scoring {scoring.seconds:.1f}s ({scoring.tokens:,} tokens, {rate:,.0f} tokens/s)"
    info(line + f" | seed {run.seed}")
