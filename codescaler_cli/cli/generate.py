"""`codescaler generate`: sample N solutions with vLLM, score them with the reward model, keep the best.

The work is the library's `iter_best_of_n`; this module reads options and problems, and writes what comes out.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import CodescalerError, UsageError
from ..generation import (
    DEFAULT_GENERATOR_MODEL,
    Problem,
    SamplingSettings,
    load_template,
    problem_seeds,
    read_problems,
)
from ..generation.config import GeneratorConfig
from ..pipeline import BestOfNRun, count_unique, iter_best_of_n
from ..records import Candidate, group_candidates, group_hash
from ..resume import (
    check_settings,
    read_sample_groups,
    read_settings,
    repair_output,
    samples_path,
    write_settings,
)
from ..scoring import ScorerConfig
from ._errors import handle_errors, set_interrupt_hint
from ._input import stdin_is_terminal
from ._options import (
    GENERATOR_ENGINE_ONLY,
    GENERATOR_SERVER_ONLY,
    INPUT,
    OUTPUT,
    BaseUrl,
    DType,
    DTypeOption,
    Endpoint,
    EndpointOption,
    GenerateFormat,
    GeneratorApiKey,
    GeneratorConcurrency,
    GeneratorMaxRetries,
    GeneratorModel,
    GeneratorTimeout,
    GpuMemory,
    MaxModelLen,
    MaxTokens,
    ModelRevision,
    OutputFile,
    OutputFormat,
    PromptTemplate,
    Quiet,
    Samples,
    Seed,
    SystemMessage,
    Temperature,
    TensorParallel,
    TokenizerOption,
    TopP,
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
from .cache import CacheDir, NoCache, Resume, resume_command

# Samples drawn per generator call when resuming is possible: large enough batches, and an interrupt during the
# sampling phase loses at most one round.
ROUND_SAMPLES = 1024



@handle_errors
@scorer_options(prefixed=True)
def generate(
    ctx: typer.Context,
    question: Annotated[Optional[str], typer.Argument(help="The problem. Omitted: read from piped stdin.",
                                                      show_default=False)] = None,
    problems_file: Annotated[Optional[str], typer.Option(
        "--problems", "-p", help="JSONL of problems ({\"id\", \"question\", \"starter_code\"?}); '-' for stdin.",
        show_default=False, rich_help_panel=INPUT)] = None,
    system: SystemMessage = None,
    prompt_template: PromptTemplate = None,
    model: GeneratorModel = None,
    n: Samples = 16,
    temperature: Temperature = 0.6,
    top_p: TopP = 0.95,
    max_tokens: MaxTokens = 4096,
    seed: Seed = None,
    generator_revision: ModelRevision = None,
    dtype: DTypeOption = DType.auto,
    tensor_parallel_size: TensorParallel = 1,
    gpu_memory_utilization: GpuMemory = None,
    max_model_len: MaxModelLen = None,
    base_url: BaseUrl = None,
    endpoint: EndpointOption = Endpoint.chat,
    tokenizer: TokenizerOption = None,
    api_key: GeneratorApiKey = None,
    concurrency: GeneratorConcurrency = 4,
    timeout: GeneratorTimeout = 600.0,
    max_retries: GeneratorMaxRetries = 4,
    scorer_config: ScorerConfig = ScorerConfig(),
    top_k: Annotated[Optional[int], typer.Option(
        "--top-k", "-k", min=1, help="Records per problem on stdout (jsonl/json/table). Default: all for one "
        "question, 1 with --problems. --output keeps all.", show_default=False, rich_help_panel=OUTPUT)] = None,
    output: OutputFile = None,
    output_format: Annotated[GenerateFormat, typer.Option(
        "--format", "-f", help="stdout: code (the best program), jsonl, json or table. auto: code for one question, "
        "jsonl with --problems.", case_sensitive=False, rich_help_panel=OUTPUT)] = GenerateFormat.auto,
    quiet: Quiet = False,
    resume: Resume = False,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
) -> None:
    """Sample N solutions, score them with the reward model and print the best.

        codescaler generate "Given an array nums, return the length of its longest increasing subsequence." > lis.py

    The generator runs in-process with vLLM (or on servers with --base-url); the responses are extracted, scored by
    the reward model and ranked. One question: the best code on stdout and a summary on stderr. --problems: the
    top record per problem as JSONL. --output keeps every candidate: the samples are saved there as soon as they
    are drawn, then replaced by the scored records. With --resume, --output grows problem by problem instead, and
    an interrupted run continues where it stopped, drawing the same samples (the base seed is recorded).

    More examples:

        codescaler generate --problems problems.jsonl -n 16 --seed 0 -o all.jsonl > best.jsonl

        codescaler generate --problems problems.jsonl -n 16 -o all.jsonl --resume --cache ~/.cache/codescaler

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
    if resume and output is None:
        raise UsageError("--resume continues the file given with --output, and no --output was given",
                         "add -o FILE (the file an earlier run was writing)")
    recorded = read_settings(output) if resume and output is not None else None
    if recorded is None and resume and output is not None and output.exists() and output.stat().st_size > 0:
        raise UsageError(f"cannot resume {output}: no record of the run that wrote it (its settings file is "
                         "missing)", f"run without --resume to start over (this replaces {output})")
    recorded_seed = recorded["settings"].get("--seed") if recorded is not None else None
    base_seed, _ = problem_seeds(len(problems), n, seed if seed is not None else recorded_seed)
    run_settings = _run_settings(generator_config, scorer_config, settings, base_seed, system, template)
    if recorded is not None and output is not None:
        check_settings(output, "generate", run_settings, recorded)

    from ..cache import Cache

    cache = Cache(cache_dir) if cache_dir is not None and not no_cache else None
    run = BestOfNRun()
    try:
        if resume and output is not None:
            _generate_resumed(problems, output, run_settings, generator_config, scorer_config, settings, run,
                              seed=base_seed, template=template, system=system, cache=cache, fmt=fmt,
                              record_format=record_format, keep=keep, quiet=quiet)
        else:
            _generate(problems, output, run_settings, generator_config, scorer_config, settings, run,
                      seed=base_seed, template=template, system=system, cache=cache, fmt=fmt,
                      record_format=record_format, keep=keep, quiet=quiet)
    finally:
        if cache is not None:
            if not quiet:
                info(f"cache: samples {cache.sample_hits} hits, {cache.sample_misses} misses; scores "
                     f"{cache.score_hits} hits, {cache.score_misses} misses ({cache.directory})")
            cache.close()
    if not problems:
        return
    best = run.best
    if fmt is GenerateFormat.code and best:
        _print_code(best[0])
    if not quiet:
        _summary(run)
    exit_on_item_errors([c for group in run.groups for c in group], _sample_name, "samples failed")
    if fmt is GenerateFormat.code and best and not best[0].valid:
        info(f"error: none of the {len(run.candidates)} samples contained valid Python code")
        info("hint: raise --max-tokens or --n, or check the generator with --format jsonl")
        raise typer.Exit(1)


def _generate(problems: list[Problem], output: Path | None, run_settings: dict[str, Any],
              generator_config: GeneratorConfig, scorer_config: ScorerConfig, settings: SamplingSettings,
              run: BestOfNRun, *, seed: int, template: str | None, system: str | None, cache: Any,
              fmt: GenerateFormat, record_format: OutputFormat, keep: int | None, quiet: bool) -> None:
    """One run from scratch: the samples saved to --output before scoring, then replaced by the scored records."""
    max_length = scorer_config.max_length
    saved: list[Path] = []

    def hint() -> str:
        if output is None:
            return "to be able to resume a long run, write it with -o FILE and continue it with --resume"
        if saved:
            return (f"the {len(run.candidates)} samples are saved in {output}; continue with: {resume_command()} "
                    f"(or score them with: codescaler rank {output})")
        return f"nothing was saved yet; continue with: {resume_command()}"

    set_interrupt_hint(hint)
    with progress_phases(enabled=not quiet) as phases, \
            RecordWriter(record_format, output, columns="rank", stdout=fmt is not GenerateFormat.code,
                         staged=True) as writer:
        if not problems:
            return

        def sampled(candidates: list[Candidate]) -> None:
            # Saved before scoring: a reward side that fails later costs no sample. From here on --output holds
            # this run's samples, and its settings file says so (for --resume).
            if output is not None:
                write_settings(output, "generate", run_settings)
                write_records(output, [_sample_record(c) for c in candidates])
                saved.append(output)
            phases.set_total("Scoring", count_unique(group_candidates(candidates)))

        advance_sampling = phases.phase("Sampling", len(problems) * settings.n)
        advance_scoring = phases.phase("Scoring")
        truncated_seen = 0
        try:
            for ranked in iter_best_of_n(problems, generator_config, scorer_config, settings, seed=seed,
                                         template=template, system=system, run=run, on_sampled=sampled,
                                         sampling_progress=advance_sampling, scoring_progress=advance_scoring,
                                         cache=cache):
                truncated_seen = warn_truncated(ranked, truncated_seen, max_length, _sample_name)
                writer.write_ranked(ranked, keep, problem=str(ranked[0].record.get("id")))
        except CodescalerError as exc:
            if saved:
                exc.add_hint(f"the {len(run.candidates)} samples are saved in {saved[0]}; score them later with: "
                             f"codescaler rank {saved[0]}, or continue with --resume")
            raise
    finish_truncation_warnings(truncated_seen, max_length)


def _generate_resumed(problems: list[Problem], output: Path, run_settings: dict[str, Any],
                      generator_config: GeneratorConfig, scorer_config: ScorerConfig, settings: SamplingSettings,
                      run: BestOfNRun, *, seed: int, template: str | None, system: str | None, cache: Any,
                      fmt: GenerateFormat, record_format: OutputFormat, keep: int | None, quiet: bool) -> None:
    """A resumable run: --output grows problem by problem; samples wait in a sidecar file until scored.

    Problem i's samples come from seed `seed + i * n` whatever run draws them, and rounds of problems start at
    the same problems in every run, so a resumed run writes exactly what an uninterrupted one writes.
    """
    max_length = scorer_config.max_length
    hashes = [group_hash(("id", problem.id)) for problem in problems]
    sizes = [settings.n] * len(problems)

    def key_of(record: dict[str, Any]) -> int:
        return group_hash(("id", record.get("id")))

    samples_file = samples_path(output)
    _adopt_saved_samples(output, samples_file)
    done = repair_output(output, hashes, sizes, key_of)
    round_problems = max(1, ROUND_SAMPLES // settings.n)
    available = repair_output(samples_file, hashes, sizes, key_of).groups
    # A partial round is drawn again whole: the same batches as an uninterrupted run, so the same samples.
    usable = available if available == len(problems) else available // round_problems * round_problems
    if usable < available:
        repair_output(samples_file, hashes, sizes, key_of, keep=usable)
    sampled = [[_candidate_from_sample(record, problems[position], index) for index, record in enumerate(group)]
               for position, group in enumerate(read_sample_groups(samples_file, usable))]
    write_settings(output, "generate", run_settings)
    if not quiet:
        info(done.describe(output, len(problems)) + f"; samples of {usable} are saved")
    if done.groups == len(problems):
        samples_file.unlink(missing_ok=True)
        return
    set_interrupt_hint(lambda: f"{done.groups + writer.groups_written} of {len(problems)} problems are complete in "
                       f"{output}; continue with: {resume_command()}")
    truncated_seen = 0
    with progress_phases(enabled=not quiet) as phases, \
            RecordWriter(OutputFormat.jsonl, samples_file, columns="rank", stdout=False, append=True) as samples, \
            RecordWriter(record_format, output, columns="rank", stdout=fmt is not GenerateFormat.code,
                         append=True) as writer:

        def save_round(candidates: list[Candidate]) -> None:
            for group in group_candidates(candidates):
                samples.write([_sample_record(c) for c in group])

        advance_sampling = phases.phase("Sampling", (len(problems) - usable) * settings.n)
        advance_scoring = phases.phase("Scoring")
        try:
            for ranked in iter_best_of_n(problems, generator_config, scorer_config, settings, seed=seed,
                                         template=template, system=system, run=run, sampled=sampled,
                                         done_problems=done.groups, round_problems=round_problems,
                                         on_round=save_round,
                                         on_sampled=lambda c: phases.set_total("Scoring", run.to_score),
                                         sampling_progress=advance_sampling, scoring_progress=advance_scoring,
                                         cache=cache):
                truncated_seen = warn_truncated(ranked, truncated_seen, max_length, _sample_name)
                writer.write_ranked(ranked, keep, problem=str(ranked[0].record.get("id")))
        except CodescalerError as exc:
            exc.add_hint(f"{done.groups + writer.groups_written} of {len(problems)} problems are complete in "
                         f"{output}; continue with: {resume_command()}")
            raise
    samples_file.unlink(missing_ok=True)  # every problem is in --output now
    finish_truncation_warnings(truncated_seen, max_length)


def _adopt_saved_samples(output: Path, samples_file: Path) -> None:
    """--output holding the samples a run without --resume saved before scoring: they become the samples to score."""
    try:
        with open(output, "rb") as handle:
            first = handle.readline()
        record = json.loads(first)
    except (OSError, ValueError):
        return
    if isinstance(record, dict) and "rank" not in record:
        os.replace(output, samples_file)


def _candidate_from_sample(record: dict[str, Any], problem: Problem, index: int) -> Candidate:
    """A saved sample as the candidate it was: the record without what extraction adds (extracted again)."""
    original = {key: value for key, value in record.items() if key not in ("code", "valid", "error")}
    response = original.get("response")
    candidate = Candidate(record=original, source=problem.source, line=problem.line, index=index,
                          question=problem.question, response=response if isinstance(response, str) else "",
                          given_code=None, group_key=("id", problem.id))
    candidate.error = record.get("error")
    from ..pipeline import extract_candidate

    return extract_candidate(candidate)


def _run_settings(generator: GeneratorConfig, scorer: ScorerConfig, settings: SamplingSettings, seed: int,
                  system: str | None, template: str | None) -> dict[str, Any]:
    """What a resumed run must share with the first one to draw and score the same samples."""
    return {"--model": generator.model or (None if generator.urls else DEFAULT_GENERATOR_MODEL),
            "--model-revision": generator.revision, "--dtype": generator.dtype,
            "--max-model-len": generator.max_model_len, "--endpoint": generator.endpoint if generator.urls else None,
            "--n": settings.n, "--temperature": settings.temperature, "--top-p": settings.top_p,
            "--max-tokens": settings.max_tokens, "--seed": seed, "--system": system,
            "--prompt-template": hashlib.sha256(template.encode("utf-8", "surrogatepass")).hexdigest()[:16]
            if template is not None else None,
            "--reward-model": scorer.model, "--revision": scorer.revision, "--reward-dtype": scorer.dtype,
            "--max-length": scorer.max_length}


def _warn_ignored_options(ctx: typer.Context, fmt: GenerateFormat, servers: bool, scorer_config: ScorerConfig) -> None:
    if fmt is GenerateFormat.code:
        warn_ignored(ctx, "top_k", "--top-k", "with --format code (it prints the best program only)")
    for parameter, flag in GENERATOR_ENGINE_ONLY if servers else GENERATOR_SERVER_ONLY:
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
