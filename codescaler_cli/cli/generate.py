"""`codescaler generate`: sample N solutions with vLLM, score them with the reward model, keep the best."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ..evaluation.config import BenchmarkConfig
from ..generation import Problem, read_problems
from ..generation.config import GeneratorConfig
from ..runs import RunOutput, generate_solutions
from ..runs.generate import sample_name
from ..scoring import ScorerConfig
from ._errors import handle_errors
from ._help import HelpAll
from ._input import stdin_is_terminal
from ._options import (
    INPUT,
    OUTPUT,
    CacheDir,
    GenerateFormat,
    NoCache,
    RankedOutputFile,
    Quiet,
    Resume,
    benchmark_options,
    generator_options,
    resume_command,
    scorer_options,
    warn_ignored,
    warn_ignored_generator_options,
    warn_ignored_scorer_options,
)
from ._output import OutputFormat, RecordWriter, exit_on_failures, info, print_code, reporting


@handle_errors
@benchmark_options()
@scorer_options(prefixed=True)
@generator_options()
def generate(
    ctx: typer.Context,
    question: Annotated[Optional[str], typer.Argument(help="The problem. Omitted: read from piped stdin.",
                                                      show_default=False)] = None,
    problems_file: Annotated[Optional[str], typer.Option(
        "--problems", "-p", help="JSONL of problems ({\"id\", \"question\", \"starter_code\"?}); '-' for stdin.",
        show_default=False, metavar="FILE|-", rich_help_panel=INPUT)] = None,
    benchmark_config: BenchmarkConfig = BenchmarkConfig(),
    generator_config: GeneratorConfig = GeneratorConfig(),
    scorer_config: ScorerConfig = ScorerConfig(),
    top_k: Annotated[Optional[int], typer.Option(
        "--top-k", "-k", min=1, help="Records per problem on stdout (jsonl/json/table). Default: all for one "
        "question, 1 with --problems or --benchmark. --output keeps all.", show_default=False,
        rich_help_panel=OUTPUT)] = None,
    output: RankedOutputFile = None,
    output_format: Annotated[GenerateFormat, typer.Option(
        "--format", "-f", help="stdout: code (the best program), jsonl, json or table. auto: code for one question, "
        "jsonl with --problems or --benchmark.", case_sensitive=False, rich_help_panel=OUTPUT)] = GenerateFormat.auto,
    quiet: Quiet = False,
    resume: Resume = False,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    help_all: HelpAll = False,
) -> None:
    """Sample N solutions, score them with the reward model and print the best.

        codescaler generate "Write a function add(a, b) that returns the sum of a and b." > add.py

    The generator runs in-process with vLLM (or on servers with --base-url); the responses are extracted, scored by
    the reward model and ranked. One question: the best code on stdout, a summary on stderr. --problems: the top
    record per problem as JSONL (--benchmark NAME: a built-in benchmark's problems, which `codescaler eval
    --benchmark NAME` grades). A problem left without valid code exits 1, once everything is written. --output
    keeps every candidate, and an interrupted run continues with --resume, drawing the same samples.

    More examples:

        codescaler generate --problems examples/problems.jsonl -n 16 --seed 0 -o all.jsonl

        codescaler generate "Write add(a, b)" --base-url http://127.0.0.1:8000/v1

        codescaler generate --benchmark humaneval --limit 5 -n 4 -o all.jsonl

        codescaler generate --problems examples/problems.jsonl -n 16 --wave 4 --stop-agreement 3 -o all.jsonl

    With a --stop-* rule, samples are drawn in waves of --wave and a problem stops as soon as the rule holds (its
    records say how many samples it drew and which rule stopped it); `codescaler eval --calibrate` picks a rule.
    """
    fmt, many = output_format, problems_file is not None or benchmark_config.benchmark is not None
    if fmt is GenerateFormat.auto:
        fmt = GenerateFormat.jsonl if many else GenerateFormat.code
    scorer_config.validate()
    if fmt is GenerateFormat.code:
        warn_ignored(ctx, ["top_k"], "with --format code (it prints the best program only)")
    warn_ignored_generator_options(ctx, generator_config, unused="")
    if not generator_config.stopping.adaptive:
        warn_ignored(ctx, ["generator_wave"], "without a --stop-score, --stop-margin or --stop-agreement rule")
    warn_ignored_scorer_options(ctx, scorer_config)
    problems = _read_problems(question, problems_file, benchmark_config)
    if fmt is GenerateFormat.code and len(problems) > 1:
        raise UsageError("--format code prints one program; with several problems use jsonl, json or table")
    run_output = RunOutput(output, command="generate", resume=resume, continue_with=resume_command())
    with RecordWriter(OutputFormat(fmt.value) if fmt is not GenerateFormat.code else OutputFormat.jsonl,
                      columns="rank", keep_going=output is not None, enabled=fmt is not GenerateFormat.code) \
            as writer, reporting(quiet=quiet) as reporter:
        keep = top_k if top_k is not None else (1 if many else None)
        run = generate_solutions(problems, generator_config, scorer_config, output=run_output, reporter=reporter,
                                 settings=benchmark_config.selection_fingerprint(),
                                 cache=None if no_cache else cache_dir, on_ranked=lambda ranked: writer.write_ranked(
                                     ranked, keep, problem=str(ranked[0].record.get("id"))))
    if not run.groups:
        return
    best = run.best[0]
    if fmt is GenerateFormat.code and best.valid:
        print_code(best.code)
    failed = [c for c in run.candidates if c.error is not None]
    exit_on_failures([f"{sample_name(c)}: {c.error}" for c in failed[:5]], len(failed), len(run.candidates),
                     "samples failed")
    # One rule for every format: a problem left without valid code is a failure (exit 1), once everything is written.
    empty = [group for group in run.groups if not group[0].valid]
    if not empty:
        return
    if len(run.groups) == 1:
        info(f"error: none of the {len(empty[0])} samples contained valid Python code")
    else:
        named = ", ".join(repr(group[0].record.get("id")) for group in empty[:5])
        info(f"error: {len(empty)} of {len(run.groups)} problems got no valid Python code (problem {named}"
             f"{', ...' if len(empty) > 5 else ''}); their records are written with valid false")
    info("hint: raise --max-tokens or --n, or check the generator's answers with --format jsonl")
    raise typer.Exit(1)


def _read_problems(question: str | None, problems_file: str | None, benchmark: BenchmarkConfig) -> list[Problem]:
    if [question, problems_file, benchmark.benchmark].count(None) < 2:
        raise UsageError("give one of a QUESTION, --problems FILE or --benchmark NAME, not several")
    if benchmark.benchmark is not None:
        return benchmark.generation_problems()
    if problems_file is not None:
        if problems_file == "-" and stdin_is_terminal():
            raise UsageError("--problems - reads standard input, but nothing is piped")
        return benchmark.select(lambda: read_problems(problems_file, stdin=getattr(sys.stdin, "buffer", None)))
    if benchmark.selecting:
        raise UsageError("--limit, --sample and the LiveCodeBench window select among problems: use them with "
                         "--benchmark NAME or --problems FILE")
    if question is None:
        if stdin_is_terminal():
            raise UsageError("no problem given", 'pass it as an argument: codescaler generate "Write add(a, b)", '
                             "pipe it on stdin, or use --problems FILE.jsonl")
        question = sys.stdin.read()
    if not question.strip():
        raise UsageError("the problem text is empty")
    return [Problem(id=0, question=question, record={})]
