"""What is reported: the strategy table (accuracy over problems with a 95% interval, and what each selection
costs in seconds), pass@k, accuracy against N, the selection latency of the reward model versus public and
generated tests, what adaptive sampling would have spent (the stopping rules replayed, and the calibrated rule),
and which isolation ran the programs; as text, as JSON, and as a matplotlib plot (imported only when a plot is
asked for).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..stopping import DEFAULT_WAVE, RULES
from .adaptive import DEFAULT_ORDERS, CostReport, calibrate, describe_row, replay_grid
from .candidates import EvalCandidate
from .execution import STATUSES
from .runner import Timings
from .strategies import STRATEGIES, Outcome, Strategy, curve_sizes, pass_at_k, pass_at_k_values, wilson_interval


@dataclass(frozen=True)
class CostSettings:
    """How the stopping rules are replayed: waves of `wave`, `orders` random orders drawn with `seed`; and, with
    `calibrate`, the accuracy (a fraction) a calibrated rule may lose against full-N."""

    wave: int = DEFAULT_WAVE
    orders: int = DEFAULT_ORDERS
    seed: int = 0
    calibrate: float | None = None


@dataclass
class GeneratedTestsTiming:
    """What selecting by generated tests (CodeT) cost: sampling the tests, and running every candidate on them."""

    tests: int  # generated tests, all problems together
    problems: int  # problems that got at least one
    generation: float  # seconds sampling them (the generator's own time, not its loading)
    execution: float  # wall seconds running every candidate on them, `jobs` in parallel
    execution_processes: float = 0.0  # the same, summed over processes
    written: dict[str, list[str]] = field(default_factory=dict)  # the tests of each problem (by problem key)


@dataclass
class StrategyRow:
    name: str
    description: str
    accuracy: float | None  # None: left out (see note)
    interval: tuple[float, float] | None
    note: str = ""
    latency: float | None = None  # seconds what it selects by took, all problems together (None: not measured)


@dataclass
class Report:
    """Everything `codescaler eval` prints and writes, computed from evaluated candidates."""

    problems: int
    candidates: int
    samples_per_problem: int  # the smallest number of candidates any problem has: N of the table
    strategies: list[StrategyRow]
    pass_at_k: dict[int, float]
    curve_sizes: list[int]
    curves: dict[str, list[float]]
    timings: Timings
    isolation: str
    isolation_detail: str
    statuses: dict[str, int]
    public_tests: int  # problems with at least one public test
    notes: list[str] = field(default_factory=list)
    cost: CostReport | None = None  # the stopping rules replayed (needs scores and 2+ samples a problem)
    generated: GeneratedTestsTiming | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "isolation": self.isolation, "isolation_detail": self.isolation_detail,
            "problems": self.problems, "candidates": self.candidates,
            "samples_per_problem": self.samples_per_problem, "problems_with_public_tests": self.public_tests,
            "strategies": [{"name": row.name, "description": row.description, "accuracy": row.accuracy,
                            "interval_95": list(row.interval) if row.interval else None, "note": row.note,
                            "latency_seconds": row.latency}
                           for row in self.strategies],
            "pass_at_k": {str(k): value for k, value in self.pass_at_k.items()},
            "accuracy_vs_n": {"n": self.curve_sizes, **self.curves},
            "seconds": asdict(self.timings), "statuses": self.statuses, "notes": self.notes,
            "generated_tests": asdict(self.generated) if self.generated is not None else None,
            "adaptive": self.cost.to_json() if self.cost is not None else None,
        }


def problem_outcomes(candidates: Sequence[EvalCandidate], *, with_reward: bool,
                     sample_order: bool = False) -> list[list[Outcome]]:
    """Per problem (first-seen order), its candidates in input order as strategies see them; with `sample_order`,
    in the order they were sampled (their records' `sample` numbers, when every candidate of the problem has
    one: `generate` writes its records in rank order)."""
    by_problem: dict[str, list[EvalCandidate]] = {}
    for candidate in candidates:
        by_problem.setdefault(candidate.problem.key, []).append(candidate)
    outcomes = []
    for group in by_problem.values():
        group = sorted(group, key=lambda c: c.candidate.index)
        numbers = [c.candidate.record.get("sample") for c in group]
        if sample_order and all(isinstance(x, int) and not isinstance(x, bool) for x in numbers):
            group = [c for _, c in sorted(zip(numbers, group), key=lambda pair: pair[0])]
        outcomes.append([_outcome(c, with_reward) for c in group])
    return outcomes


def _outcome(candidate: EvalCandidate, with_reward: bool) -> Outcome:
    tokens = candidate.candidate.record.get("completion_tokens")
    valid = candidate.candidate.valid
    return Outcome(passed=candidate.passed, public_passed=candidate.public.passed if candidate.public else 0,
                   reward=candidate.candidate.reward if with_reward else None,
                   program=candidate.candidate.dedup_key if valid else None,
                   score=candidate.candidate.score if with_reward and valid else None,
                   tokens=tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None,
                   generated=candidate.generated)


def strategy_latency(strategy: Strategy, timings: Timings, generated: GeneratedTestsTiming | None) -> float | None:
    """The seconds what a strategy selects by took: scoring for the reward model, running public tests, generating
    and running tests for CodeT; 0 for what needs nothing; None where it was not measured (or is no selection)."""
    if strategy.name == "oracle":
        return None
    if strategy.needs_generated_tests:
        return generated.generation + generated.execution if generated is not None else None
    seconds = 0.0
    if strategy.needs_reward:
        if timings.scoring is None:
            return None
        seconds += timings.scoring
    if strategy.needs_public_tests:
        seconds += timings.public_tests
    return seconds


def summarize(candidates: Sequence[EvalCandidate], *, with_reward: bool, timings: Timings, isolation: str,
              isolation_detail: str, cost: CostSettings | None = None,
              generated: GeneratedTestsTiming | None = None) -> Report:
    """Compute the strategy table, pass@k, the accuracy-vs-N curves of evaluated candidates and, with scores and
    `cost`, the stopping rules replayed on them (and the calibration `cost.calibrate` asks for)."""
    per_problem = problem_outcomes(candidates, with_reward=with_reward)
    count = len(per_problem)
    smallest = min((len(o) for o in per_problem), default=0)
    has_public = sum(1 for c in {c.problem.key: c for c in candidates}.values() if c.problem.public_tests)
    with_generated = sum(1 for o in per_problem if any(x.generated for x in o))
    rows: list[StrategyRow] = []
    sizes = curve_sizes(smallest) if smallest else []
    curves: dict[str, list[float]] = {}
    notes: list[str] = []
    for strategy in STRATEGIES:
        latency = strategy_latency(strategy, timings, generated)
        if strategy.needs_reward and not with_reward:
            rows.append(StrategyRow(strategy.name, strategy.description, None, None,
                                    "left out: needs reward-model scores (-r MODEL, or records from rank)"))
            continue
        if strategy.needs_generated_tests and generated is None:
            continue  # an opt-in that costs a generator and a sandbox run: only asked for (--generated-tests)
        # Every problem contributes its own candidates; N in the table is all of them.
        accuracy = sum(strategy.expected(o, len(o)) for o in per_problem) / count if count else 0.0
        note = ""
        if strategy.name == "vote" and not with_reward:
            note = "ties by input order (no reward model)"
        if strategy.needs_public_tests and has_public < count:
            note = f"{count - has_public} of {count} problems have no public tests (ties there)"
        if strategy.needs_generated_tests and with_generated < count:
            note = f"{count - with_generated} of {count} problems have no generated test any candidate passes " \
                "(the first valid candidate there)"
        rows.append(StrategyRow(strategy.name, strategy.description, accuracy, wilson_interval(accuracy, count),
                                note, latency))
        curves[strategy.name] = [sum(strategy.expected(o, size) for o in per_problem) / count for size in sizes]
    ks = pass_at_k_values(smallest) if smallest else []
    pass_k = {k: sum(pass_at_k(len(o), sum(x.passed for x in o), k) for o in per_problem) / count for k in ks}
    if any(len(o) != smallest for o in per_problem):
        notes.append(f"problems have different numbers of candidates ({smallest} to "
                     f"{max(len(o) for o in per_problem)}); pass@k and the curves use subsets of each")
    statuses = Counter(c.result.status for c in candidates if c.result is not None)
    cost_report = None
    if cost is not None and with_reward and smallest >= 2:
        cost_report = replay_grid(problem_outcomes(candidates, with_reward=True, sample_order=True),
                                  wave=cost.wave, orders=cost.orders, seed=cost.seed)
        if cost.calibrate is not None:
            calibrate(cost_report, cost.calibrate)
    elif cost is not None and cost.calibrate is not None:
        notes.append("--calibrate needs reward-model scores and at least 2 candidates a problem: no rule calibrated")
    return Report(problems=count, candidates=len(candidates), samples_per_problem=smallest, strategies=rows,
                  pass_at_k=pass_k, curve_sizes=sizes, curves=curves, timings=timings, isolation=isolation,
                  isolation_detail=isolation_detail, statuses={s: statuses.get(s, 0) for s in STATUSES},
                  public_tests=has_public, notes=notes, cost=cost_report, generated=generated)


# ---------------------------------------------------------------------------------------------------------------
# Text


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _per_problem(report: Report) -> str:
    """'16 candidates each', or 'at least 3 candidates each' when problems have different numbers."""
    even = report.candidates == report.problems * report.samples_per_problem
    return f"{'' if even else 'at least '}{report.samples_per_problem} candidates each"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table_lines(report: Report) -> list[str]:
    """The report as plain text (what stdout gets in a pipe)."""
    width = max(len(row.name) for row in report.strategies)
    lines = [f"{report.problems} problems, {_per_problem(report)} "
             f"({report.candidates} in all); programs ran under {report.isolation}",
             "",
             f"{'strategy':<{width}}  {'accuracy %':>10}  {'95% interval':>13}  {'latency s':>9}  note",
             ]
    for row in report.strategies:
        interval = f"[{_percent(row.interval[0])}, {_percent(row.interval[1])}]" if row.interval else "-"
        lines.append(f"{row.name:<{width}}  {_percent(row.accuracy):>10}  {interval:>13}  "
                     f"{_seconds(row.latency):>9}  {row.note or row.description}")
    lines.append("")
    lines.append("pass@k: " + ", ".join(f"pass@{k} {_percent(v)}%" for k, v in report.pass_at_k.items()))
    lines.append(latency_line(report))
    lines.append("statuses: " + ", ".join(f"{name} {count}" for name, count in report.statuses.items() if count))
    lines.extend(f"note: {note}" for note in report.notes)
    if report.cost is not None:
        lines.append("")
        lines.extend(cost_lines(report.cost))
    return lines


def latency_line(report: Report) -> str:
    timings = report.timings
    scoring = "reward model: not run here" if timings.scoring is None else \
        f"reward model {timings.scoring:.2f}s scoring (+{timings.scoring_load or 0.0:.1f}s loading)"
    line = (f"selection latency: {scoring}; public tests {timings.public_tests:.2f}s wall "
            f"({timings.public_test_processes:.2f}s summed over processes)")
    generated = report.generated
    if generated is not None:
        line += (f"; generated tests {generated.generation + generated.execution:.2f}s ({generated.generation:.2f}s "
                 f"writing {generated.tests} tests for {generated.problems} problems, {generated.execution:.2f}s "
                 f"running them)")
    return line + f"; all tests {timings.all_tests:.2f}s"


def cost_lines(cost: CostReport) -> list[str]:
    """The stopping rules replayed: full-N, then each rule's thresholds that no other beats on both accuracy and
    samples, then the calibrated rule when one was asked for."""
    tokens = cost.full.tokens is not None
    lines = [f"adaptive sampling, replayed on the recorded samples (waves of {cost.wave}; accuracy % and samples "
             f"per problem over {cost.orders} random orders, seed {cost.seed}, and in sample order):",
             f"{'rule':<26}  {'accuracy %':>10}  {'samples':>7}  {'in order: acc %':>15}  {'samples':>7}"
             + (f"  {'tokens':>8}" if tokens else "")]

    def line(name: str, shuffled: Any, in_order: Any) -> str:
        text = (f"{name:<26}  {_percent(shuffled.accuracy):>10}  {shuffled.samples:>7.2f}  "
                f"{_percent(in_order.accuracy):>15}  {in_order.samples:>7.2f}")
        return text + (f"  {shuffled.tokens:>8,.0f}" if tokens and shuffled.tokens is not None else "")

    lines.append(line(f"all samples (N up to {cost.n})", cost.full, cost.full_in_order))
    for rule in RULES:
        for row in cost.frontier(rule):
            lines.append(line(describe_row(row), row.shuffled, row.in_order))
    if not cost.rows:
        lines.append("(no thresholds: the records hold no valid scored candidates)")
    calibration = cost.calibration
    if calibration is not None:
        lines.append("")
        if calibration.row is None:
            lines.append(f"calibration: no stopping rule keeps accuracy within {100 * calibration.epsilon:.1f} "
                         f"points of full-N while drawing fewer samples: keep -n {cost.n}")
        else:
            row = calibration.row
            saved = 100 * (1 - row.shuffled.samples / cost.full.samples) if cost.full.samples else 0.0
            lines.append(f"calibrated (within {100 * calibration.epsilon:.1f} points of full-N): {calibration.flags()}")
            lines.append(f"  accuracy {_percent(row.shuffled.accuracy)}% against {_percent(cost.full.accuracy)}% "
                         f"with every sample; {row.shuffled.samples:.2f} samples per problem instead of "
                         f"{cost.full.samples:.2f} ({saved:.0f}% fewer)")
    return lines


def print_table(report: Report, *, terminal: bool) -> None:
    """Print the report on stdout: a rich table on a terminal, plain text in a pipe."""
    import sys

    if not terminal:
        sys.stdout.write("\n".join(table_lines(report)) + "\n")
        sys.stdout.flush()
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=sys.stdout)
    table = Table(title=f"{report.problems} problems, {_per_problem(report)} (isolation: {report.isolation})",
                  header_style="bold")
    table.add_column("strategy", no_wrap=True, min_width=max(len(row.name) for row in report.strategies))
    table.add_column("accuracy %", justify="right", no_wrap=True)
    table.add_column("95% interval", justify="right", no_wrap=True)
    table.add_column("latency s", justify="right", no_wrap=True)
    table.add_column("what it picks / note")
    for row in report.strategies:
        interval = f"{_percent(row.interval[0])} – {_percent(row.interval[1])}" if row.interval else "-"
        table.add_row(row.name, _percent(row.accuracy), interval, _seconds(row.latency),
                      escape(row.note) if row.note else f"[dim]{escape(row.description)}[/]")
    console.print(table)
    for line in table_lines(report)[len(report.strategies) + 4:]:
        if line:
            console.print(escape(line), highlight=False)


# ---------------------------------------------------------------------------------------------------------------
# JSON and plot


def write_json(report: Report | Any, path: str | Path) -> None:
    """Any report's `to_json()` (eval's, eval-rm's) to --json's file, or to stdout for '-'."""
    text = json.dumps(report.to_json(), indent=2) + "\n"
    if str(path) == "-":
        import sys

        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write --json {path}: {exc.strerror or exc}") from None


def plot_curves(report: Report, path: str | Path) -> None:
    """Accuracy against N for every strategy and, when the stopping rules were replayed, beside it accuracy against
    the samples spent: each rule's thresholds (over random orders) against the reward model at fixed N. The format
    follows the suffix (.png, .svg, .pdf)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ("png", "svg", "pdf"):
        raise UsageError(f"--plot {path}: unknown image format", "end the file name in .png, .svg or .pdf")
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise UsageError("--plot needs matplotlib", "pip install 'codescaler[eval]' (or pip install matplotlib)") \
            from None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    panels = 2 if report.cost is not None and report.cost.rows else 1
    figure, grid = pyplot.subplots(1, panels, figsize=(7 * panels, 4.5), dpi=120, squeeze=False)
    axes = grid[0][0]
    styles = {"oracle": ":", "random": "--", "first": "--"}
    for name, values in report.curves.items():
        axes.plot(report.curve_sizes, [100 * v for v in values], marker="o", markersize=4,
                  linestyle=styles.get(name, "-"), label=name)
    axes.set_xscale("log", base=2)
    axes.set_xticks(report.curve_sizes, [str(size) for size in report.curve_sizes])
    axes.set_xlabel("N (candidates per problem)")
    axes.set_ylabel("accuracy over problems (%)")
    axes.set_title(f"Best-of-N accuracy, {report.problems} problems (exact expectation over subsets)", fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    if panels == 2:
        assert report.cost is not None
        _plot_spent(grid[0][1], report, report.cost)
    figure.tight_layout()
    try:
        figure.savefig(path, format=suffix)
    except OSError as exc:
        raise UsageError(f"cannot write --plot {path}: {exc.strerror or exc}") from None
    finally:
        pyplot.close(figure)


def _plot_spent(axes: Any, report: Report, cost: CostReport) -> None:
    """Accuracy against the samples drawn per problem: fixed N (the reward model on N samples, exact) and each
    stopping rule's thresholds replayed (random orders), with the calibrated rule marked."""
    if "reward-model" in report.curves:
        axes.plot(report.curve_sizes, [100 * v for v in report.curves["reward-model"]], marker="o", markersize=4,
                  color="black", label="reward model, fixed N")
    for rule in RULES:
        rows = sorted((row for row in cost.rows if row.rule == rule), key=lambda row: row.shuffled.samples)
        if rows:
            axes.plot([row.shuffled.samples for row in rows], [100 * row.shuffled.accuracy for row in rows],
                      marker=".", markersize=5, linestyle="-", alpha=0.85,
                      label=f"{describe_row(rows[0]).split()[0]} (thresholds)")
    if cost.calibration is not None and cost.calibration.row is not None:
        row = cost.calibration.row
        axes.plot([row.shuffled.samples], [100 * row.shuffled.accuracy], marker="*", markersize=14, color="red",
                  linestyle="none", label=f"calibrated: {describe_row(row)}")
    axes.set_xscale("log", base=2)
    axes.set_xticks(report.curve_sizes, [str(size) for size in report.curve_sizes])
    axes.set_xlabel("samples drawn per problem (expected)")
    axes.set_ylabel("accuracy over problems (%)")
    axes.set_title(f"Accuracy against samples spent (stopping rules replayed, waves of {cost.wave})", fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, loc="best")
