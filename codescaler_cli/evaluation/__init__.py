"""Evaluation: what best-of-N buys, measured against real tests run in a sandbox.

Three concerns, three modules, as in EvalPlus and LiveCodeBench: what a candidate is (`candidates`, `problems`),
how a test runs (`execution`, on top of `sandbox`; `runner` runs many), and what is reported (`strategies`,
`report`). `loop` ties scoring and testing together: `evaluate` is the one call that does everything, and
`codescaler eval` runs it too (`run_evaluation` adds reading or generating the candidates):

    from codescaler_cli.evaluation import EvalConfig, evaluate, load_benchmark, read_eval_candidates

    problems = load_benchmark("humaneval")
    candidates = read_eval_candidates("samples.jsonl", problems)
    report = evaluate(candidates, EvalConfig(jobs=2))
    print(report.strategies[0].accuracy)
"""

from __future__ import annotations

from .candidates import EvalCandidate, from_candidates, has_scores, read_eval_candidates
from .config import BenchmarkConfig, EvalConfig
from .execution import STATUSES, TestsResult, build_program, run_tests
from .loop import evaluate, problem_chunks, problem_groups, run_evaluation, score_candidates
from .benchmarks import BENCHMARKS, BenchmarkSelection, list_benchmarks, load_benchmark
from .grading import GRADING_RULES, GradingRule
from .problems import EvalProblem, Test, read_problems_file
from .report import Report, StrategyRow, plot_curves, print_table, summarize, table_lines, write_json
from .runner import ProgressCallback, Timings, run_all_tests, run_chunk
from .sandbox import ISOLATIONS, Limits, Program, RunResult, Sandbox
from .strategies import STRATEGIES, Outcome, Strategy, pass_at_k

__all__ = [
    "BENCHMARKS", "BenchmarkConfig", "BenchmarkSelection", "EvalCandidate", "EvalConfig", "EvalProblem",
    "GRADING_RULES", "GradingRule", "ISOLATIONS", "Limits", "Outcome", "Program", "ProgressCallback", "Report",
    "RunResult", "STATUSES", "STRATEGIES", "Sandbox", "Strategy", "StrategyRow", "Test", "TestsResult", "Timings",
    "build_program", "evaluate", "from_candidates", "has_scores", "list_benchmarks", "load_benchmark", "pass_at_k",
    "plot_curves", "print_table", "problem_chunks", "problem_groups", "read_eval_candidates", "read_problems_file",
    "run_all_tests", "run_chunk", "run_evaluation", "run_tests", "score_candidates", "summarize", "table_lines",
    "write_json",
]
