"""Evaluation: what best-of-N buys, measured against real tests run in a sandbox.

Three concerns, three modules, as in EvalPlus and LiveCodeBench: what a candidate is (`candidates`, `problems`),
how a test runs (`execution`, on top of `sandbox`), and what is reported (`strategies`, `report`). `runner` ties
scoring and execution together; `evaluate` below is the one call that does everything:

    from codescaler_cli.evaluation import evaluate, load_benchmark, read_eval_candidates

    problems = load_benchmark("humaneval")
    candidates = read_eval_candidates("samples.jsonl", problems)
    report = evaluate(candidates, jobs=2)
    print(report.strategies[0].accuracy)
"""

from __future__ import annotations

from collections.abc import Sequence

from ..scoring import ScorerConfig, open_scorer
from ..scoring.base import Scorer
from .candidates import EvalCandidate, from_candidates, has_scores, read_eval_candidates
from .execution import DEFAULT_TEST_TIMEOUT, STATUSES, TestsResult, build_program, run_tests
from .benchmarks import BENCHMARKS, BenchmarkSelection, list_benchmarks, load_benchmark
from .grading import GRADING_RULES, GradingRule
from .problems import EvalProblem, Test, read_problems_file
from .report import Report, StrategyRow, plot_curves, print_table, summarize, table_lines, write_json
from .runner import ProgressCallback, Timings, run_all_tests, run_chunk, score_candidates
from .sandbox import ISOLATIONS, Limits, Program, RunResult, Sandbox
from .strategies import STRATEGIES, Outcome, Strategy, pass_at_k

__all__ = [
    "BENCHMARKS", "DEFAULT_TEST_TIMEOUT", "GRADING_RULES", "BenchmarkSelection", "EvalCandidate", "EvalProblem",
    "GradingRule", "ISOLATIONS", "Limits", "Outcome", "Program", "Report", "RunResult", "STATUSES", "STRATEGIES",
    "Sandbox", "Strategy", "StrategyRow", "Test", "TestsResult", "Timings", "build_program", "evaluate",
    "from_candidates", "has_scores", "list_benchmarks", "load_benchmark", "pass_at_k", "plot_curves", "print_table",
    "read_eval_candidates", "read_problems_file", "run_all_tests", "run_tests", "score_candidates", "summarize",
    "table_lines", "write_json",
]


def evaluate(candidates: Sequence[EvalCandidate], *, scorer: Scorer | ScorerConfig | None = None,
             sandbox: Sandbox | None = None, isolation: str = "auto", jobs: int | None = None,
             test_timeout: float = DEFAULT_TEST_TIMEOUT, limits: Limits = Limits(),
             scoring_progress: ProgressCallback | None = None,
             test_progress: ProgressCallback | None = None) -> Report:
    """Score (when a scorer is given), run public then all tests, and summarise.

    Without a scorer, scores already in the records are used when every record has one; otherwise the
    strategies that need a reward model are left out of the report. Fills each candidate's `public`/`result`.
    """
    timings = Timings()
    with_reward = has_scores(candidates)
    if scorer is not None and candidates:
        opened = open_scorer(scorer) if isinstance(scorer, ScorerConfig) else scorer
        try:
            timings.scoring = score_candidates(candidates, opened, scoring_progress)
        finally:
            if isinstance(scorer, ScorerConfig):
                opened.close()
        with_reward = True
    own_sandbox = sandbox is None
    box = sandbox if sandbox is not None else Sandbox(isolation=isolation, jobs=jobs)
    try:
        run_chunk(candidates, box, timings, test_timeout=test_timeout, limits=limits, public_progress=test_progress,
                  all_progress=test_progress)
    finally:
        if own_sandbox:
            box.close()
    return summarize(candidates, with_reward=with_reward, timings=timings, isolation=box.isolation,
                     isolation_detail=box.describe())
