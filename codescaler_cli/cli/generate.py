"""`codescaler generate`: sample N solutions with vLLM, score them with the reward model, keep the best."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..generation.problems import Problem, problem_seeds, read_problems, sample_candidates
from ..errors import UsageError
from ..generation import DEFAULT_GENERATOR_MODEL, SamplingSettings
from ..pipeline import count_unique, extract_all, score_groups
from ..generation.prompts import load_template
from ..records import Candidate, group_candidates
from ..scoring import ScorerConfig, open_scorer
from ..selection import top_k as keep_top_k
from ._errors import handle_errors
from ._input import stdin_is_terminal
from ._options import (
    DEFAULTS,
    ApiKey,
    Concurrency,
    Device,
    DeviceOption,
    DType,
    DTypeOption,
    Endpoint,
    GenerateFormat,
    GpuMemory,
    MaxBatchTokens,
    MaxLength,
    MaxRetries,
    OutputFile,
    OutputFormat,
    Quiet,
    RequestTimeout,
    Revision,
    RewardModel,
    RewardUrl,
    ScorerKind,
    ScorerOption,
    TensorParallel,
)
from ._output import (
    RecordWriter,
    exit_on_item_errors,
    finish_truncation_warnings,
    info,
    progress_bar,
    stdout_is_terminal,
    warn_truncated,
)


@handle_errors
def generate(
    question: Annotated[Optional[str], typer.Argument(help="The problem. Omitted: read from piped stdin.",
                                                      show_default=False)] = None,
    problems_file: Annotated[Optional[str], typer.Option(
        "--problems", "-p", help="JSONL of problems ({\"id\", \"question\", \"starter_code\"?}); '-' for stdin.",
        show_default=False)] = None,
    model: Annotated[str, typer.Option("--model", "-m", envvar="CODESCALER_MODEL",
                                       help="Generator: hub id or local directory (in-process vLLM), or the "
                                       "served model name with --base-url.")] = DEFAULT_GENERATOR_MODEL,
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Samples per problem.")] = 16,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="Sampling temperature.")] = 0.6,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling.")] = 0.95,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Longest response, in tokens.")] = 4096,
    seed: Annotated[Optional[int], typer.Option(
        "--seed", min=0, help="Same seed, same candidates. Default: a random seed, recorded in the output.",
        show_default=False)] = None,
    system: Annotated[Optional[str], typer.Option("--system", help="A system message for the generator.",
                                                  show_default=False)] = None,
    prompt_template: Annotated[Optional[Path], typer.Option(
        "--prompt-template", help="Replace the default LiveCodeBench-style prompt: a text file with {question} "
        "(and optionally {starter_code}).", show_default=False, dir_okay=False)] = None,
    base_url: Annotated[Optional[list[str]], typer.Option(
        "--base-url", help="Sample from an OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1) instead of "
        "in-process vLLM; repeat to spread requests over replicas.", show_default=False)] = None,
    endpoint: Annotated[Endpoint, typer.Option("--endpoint", help="Server endpoint: chat (the server applies the "
                                               "chat template) or completions.", case_sensitive=False)] = Endpoint.chat,
    api_key: ApiKey = None,
    concurrency: Concurrency = 4,
    timeout: RequestTimeout = 600.0,
    max_retries: MaxRetries = 4,
    tensor_parallel_size: TensorParallel = 1,
    gpu_memory_utilization: GpuMemory = 0.9,
    max_model_len: Annotated[Optional[int], typer.Option(
        "--max-model-len", min=16, help="Context length of the in-process generator engine.",
        show_default=False)] = None,
    dtype: DTypeOption = DType.auto,
    generator_revision: Annotated[Optional[str], typer.Option(
        "--model-revision", help="Generator revision on the hub.", show_default=False)] = None,
    reward_model: RewardModel = DEFAULTS["reward_model"],
    revision: Revision = None,
    scorer_kind: ScorerOption = ScorerKind.transformers,
    reward_url: RewardUrl = None,
    device: DeviceOption = Device.auto,
    max_length: MaxLength = DEFAULTS["max_length"],
    max_batch_tokens: MaxBatchTokens = DEFAULTS["max_batch_tokens"],
    top_k: Annotated[Optional[int], typer.Option(
        "--top-k", "-k", min=1, help="Records per problem on stdout (jsonl/json/table). Default: all for one "
        "question, 1 with --problems.", show_default=False)] = None,
    output: OutputFile = None,
    output_format: Annotated[GenerateFormat, typer.Option(
        "--format", "-f", help="stdout: code (the best program), jsonl, json or table. auto: code for one question, "
        "jsonl with --problems.", case_sensitive=False)] = GenerateFormat.auto,
    quiet: Quiet = False,
) -> None:
    """Sample N solutions, score them with the reward model and print the best.

    The generator runs in-process with vLLM (or on servers with --base-url); the responses are extracted, scored by
    the reward model and ranked. One question: the best code on stdout and a summary on stderr. --problems: the
    top record per problem as JSONL. --output keeps every candidate.

    Examples:

        codescaler generate "Given an array nums, return the length of its longest increasing subsequence." > lis.py

        codescaler generate --problems problems.jsonl -n 16 --seed 0 -o all.jsonl > best.jsonl

        codescaler generate "Write add(a, b)" --base-url http://127.0.0.1:8000/v1 -m Qwen/Qwen2.5-Coder-7B-Instruct
    """
    problems = _read_problems(question, problems_file)
    template = load_template(prompt_template) if prompt_template is not None else None
    many = problems_file is not None
    fmt = output_format
    if fmt is GenerateFormat.auto:
        fmt = GenerateFormat.jsonl if many else GenerateFormat.code
    if fmt is GenerateFormat.code and len(problems) > 1:
        raise UsageError("--format code prints one program; with several problems use jsonl, json or table")
    keep = top_k if top_k is not None else (1 if many else None)
    settings = SamplingSettings(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens)
    base_seed, _ = problem_seeds(len(problems), n, seed)
    record_format = OutputFormat(fmt.value) if fmt is not GenerateFormat.code else OutputFormat.jsonl
    show = not quiet

    with RecordWriter(record_format, output, columns="rank", stdout=fmt is not GenerateFormat.code) as writer:
        if not problems:
            return
        # 1. Sample. The in-process engine is shut down before the reward model loads: on one GPU both must fit.
        generator = _open_generator(model, base_url, endpoint, api_key, concurrency, timeout, max_retries, dtype,
                                    tensor_parallel_size, gpu_memory_utilization, max_model_len, revision=generator_revision,
                                    show_progress=show)
        try:
            with progress_bar(len(problems) * n, "Sampling", enabled=show and bool(base_url)) as advance:
                candidates = sample_candidates(problems, generator, settings, seed=base_seed, template=template,
                                               system=system, progress=advance)
        finally:
            generator.close()
        generation = generator.stats

        # 2. Extract, score, rank.
        extract_all(candidates)
        groups = group_candidates(candidates)
        to_score = count_unique(groups)
        scorer = None
        if to_score:
            scorer = open_scorer(ScorerConfig(
                model=reward_model, kind=scorer_kind.value, revision=revision, device=device.value,
                dtype=dtype.value, max_length=max_length, max_batch_tokens=max_batch_tokens,
                urls=list(reward_url or []), api_key=api_key, concurrency=concurrency, timeout=timeout,
                max_retries=max_retries, tensor_parallel_size=tensor_parallel_size,
                gpu_memory_utilization=gpu_memory_utilization))
        best: list[Candidate] = []
        truncated_seen = 0
        try:
            with progress_bar(to_score, "Scoring", enabled=show and scorer is not None) as advance:
                for ranked in score_groups(groups, scorer, progress=advance):
                    best.append(ranked[0])
                    truncated_seen = warn_truncated(ranked, truncated_seen, max_length, _sample_name)
                    writer.write([c.scored_record() for c in keep_top_k(ranked, keep)],
                                 problem=str(ranked[0].record.get("id")),
                                 file_records=[c.scored_record() for c in ranked])
        finally:
            if scorer is not None:
                scorer.close()

    finish_truncation_warnings(truncated_seen, max_length)
    if fmt is GenerateFormat.code:
        _print_code(best[0])
    if show:
        _summary(candidates, groups, to_score, best, generation, getattr(scorer, "stats", None), base_seed)
    exit_on_item_errors(candidates, _sample_name, "samples failed")
    if fmt is GenerateFormat.code and not best[0].valid:
        info(f"error: none of the {len(candidates)} samples contained valid Python code")
        info("hint: raise --max-tokens or --n, or check the generator with --format jsonl")
        raise typer.Exit(1)


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


def _open_generator(model: str, base_url: list[str] | None, endpoint: Endpoint, api_key: str | None,
                    concurrency: int, timeout: float, max_retries: int, dtype: DType, tensor_parallel_size: int,
                    gpu_memory_utilization: float, max_model_len: int | None, *, revision: str | None,
                    show_progress: bool):  # type: ignore[no-untyped-def]
    if base_url:
        from ..generation.openai_server import OpenAIGenerator

        return OpenAIGenerator(base_url, model, endpoint=endpoint.value, api_key=api_key, concurrency=concurrency,
                               timeout=timeout, max_retries=max_retries, revision=revision)
    from ..generation.vllm_engine import VllmGenerator

    return VllmGenerator(model, revision=revision, dtype=dtype.value, tensor_parallel_size=tensor_parallel_size,
                         gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                         show_progress=show_progress)


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


def _summary(candidates: list[Candidate], groups: list[list[Candidate]], scored: int, best: list[Candidate],
             generation, scoring, base_seed: int) -> None:  # type: ignore[no-untyped-def]
    valid = sum(c.valid for c in candidates)
    scores = [c.score for c in best if c.score is not None]
    best_text = f"{max(scores):.3f}" if scores else "-"
    gen_rate = generation.completion_tokens / generation.seconds if generation.seconds else 0.0
    line = (f"{len(groups)} problem{'s' if len(groups) != 1 else ''}: sampled {len(candidates)}, valid {valid}, "
            f"unique {scored}, best score {best_text} | generating {generation.seconds:.1f}s "
            f"({generation.completion_tokens:,} tokens, {gen_rate:,.0f} tokens/s)")
    if scoring is not None:
        score_rate = scoring.tokens / scoring.seconds if scoring.seconds else 0.0
        line += f" | scoring {scoring.seconds:.1f}s ({scoring.tokens:,} tokens, {score_rate:,.0f} tokens/s)"
    info(line + f" | seed {base_seed}")
