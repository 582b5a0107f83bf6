"""What is reported: the strategy table (accuracy over problems with a 95% interval), pass@k, accuracy against N,
the selection latency of the reward model versus public tests, and which isolation ran the programs; as text,
as JSON, and as a matplotlib plot (imported only when a plot is asked for).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .candidates import EvalCandidate
from .execution import STATUSES
from .runner import Timings
from .strategies import STRATEGIES, Outcome, curve_sizes, pass_at_k, pass_at_k_values, wilson_interval


@dataclass
class StrategyRow:
    name: str
    description: str
    accuracy: float | None  # None: left out (see note)
    interval: tuple[float, float] | None
    note: str = ""


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

    def to_json(self) -> dict[str, Any]:
        return {
            "isolation": self.isolation, "isolation_detail": self.isolation_detail,
            "problems": self.problems, "candidates": self.candidates,
            "samples_per_problem": self.samples_per_problem, "problems_with_public_tests": self.public_tests,
            "strategies": [{"name": row.name, "description": row.description, "accuracy": row.accuracy,
                            "interval_95": list(row.interval) if row.interval else None, "note": row.note}
                           for row in self.strategies],
            "pass_at_k": {str(k): value for k, value in self.pass_at_k.items()},
            "accuracy_vs_n": {"n": self.curve_sizes, **self.curves},
            "seconds": asdict(self.timings), "statuses": self.statuses, "notes": self.notes,
        }


def problem_outcomes(candidates: Sequence[EvalCandidate], *, with_reward: bool) -> list[list[Outcome]]:
    """Per problem (first-seen order), its candidates in input order as strategies see them."""
    by_problem: dict[str, list[EvalCandidate]] = {}
    for candidate in candidates:
        by_problem.setdefault(candidate.problem.key, []).append(candidate)
    outcomes = []
    for group in by_problem.values():
        group = sorted(group, key=lambda c: c.candidate.index)
        outcomes.append([Outcome(passed=c.passed, public_passed=c.public.passed if c.public else 0,
                                 reward=c.candidate.reward if with_reward else None,
                                 program=c.candidate.dedup_key if c.candidate.valid else None) for c in group])
    return outcomes


def summarize(candidates: Sequence[EvalCandidate], *, with_reward: bool, timings: Timings, isolation: str,
              isolation_detail: str) -> Report:
    """Compute the strategy table, pass@k and the accuracy-vs-N curves of evaluated candidates."""
    per_problem = problem_outcomes(candidates, with_reward=with_reward)
    count = len(per_problem)
    smallest = min((len(o) for o in per_problem), default=0)
    has_public = sum(1 for c in {c.problem.key: c for c in candidates}.values() if c.problem.public_tests)
    rows: list[StrategyRow] = []
    sizes = curve_sizes(smallest) if smallest else []
    curves: dict[str, list[float]] = {}
    notes: list[str] = []
    for strategy in STRATEGIES:
        if strategy.needs_reward and not with_reward:
            rows.append(StrategyRow(strategy.name, strategy.description, None, None,
                                    "left out: needs reward-model scores (-r MODEL, or records from rank)"))
            continue
        # Every problem contributes its own candidates; N in the table is all of them.
        accuracy = sum(strategy.expected(o, len(o)) for o in per_problem) / count if count else 0.0
        note = ""
        if strategy.name == "vote" and not with_reward:
            note = "ties by input order (no reward model)"
        if strategy.needs_public_tests and has_public < count:
            note = f"{count - has_public} of {count} problems have no public tests (ties there)"
        rows.append(StrategyRow(strategy.name, strategy.description, accuracy, wilson_interval(accuracy, count),
                                note))
        curves[strategy.name] = [sum(strategy.expected(o, size) for o in per_problem) / count for size in sizes]
    ks = pass_at_k_values(smallest) if smallest else []
    pass_k = {k: sum(pass_at_k(len(o), sum(x.passed for x in o), k) for o in per_problem) / count for k in ks}
    if any(len(o) != smallest for o in per_problem):
        notes.append(f"problems have different numbers of candidates ({smallest} to "
                     f"{max(len(o) for o in per_problem)}); pass@k and the curves use subsets of each")
    statuses = Counter(c.result.status for c in candidates if c.result is not None)
    return Report(problems=count, candidates=len(candidates), samples_per_problem=smallest, strategies=rows,
                  pass_at_k=pass_k, curve_sizes=sizes, curves=curves, timings=timings, isolation=isolation,
                  isolation_detail=isolation_detail, statuses={s: statuses.get(s, 0) for s in STATUSES},
                  public_tests=has_public, notes=notes)


# ---------------------------------------------------------------------------------------------------------------
# Text


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _per_problem(report: Report) -> str:
    """'16 candidates each', or 'at least 3 candidates each' when problems have different numbers."""
    even = report.candidates == report.problems * report.samples_per_problem
    return f"{'' if even else 'at least '}{report.samples_per_problem} candidates each"


def table_lines(report: Report) -> list[str]:
    """The report as plain text (what stdout gets in a pipe)."""
    width = max(len(row.name) for row in report.strategies)
    lines = [f"{report.problems} problems, {_per_problem(report)} "
             f"({report.candidates} in all); programs ran under {report.isolation}",
             "",
             f"{'strategy':<{width}}  {'accuracy %':>10}  {'95% interval':>13}  note",
             ]
    for row in report.strategies:
        interval = f"[{_percent(row.interval[0])}, {_percent(row.interval[1])}]" if row.interval else "-"
        lines.append(f"{row.name:<{width}}  {_percent(row.accuracy):>10}  {interval:>13}  "
                     f"{row.note or row.description}")
    lines.append("")
    lines.append("pass@k: " + ", ".join(f"pass@{k} {_percent(v)}%" for k, v in report.pass_at_k.items()))
    lines.append(latency_line(report))
    lines.append("statuses: " + ", ".join(f"{name} {count}" for name, count in report.statuses.items() if count))
    lines.extend(f"note: {note}" for note in report.notes)
    return lines


def latency_line(report: Report) -> str:
    timings = report.timings
    scoring = "reward model: not run here" if timings.scoring is None else \
        f"reward model {timings.scoring:.2f}s scoring (+{timings.scoring_load or 0.0:.1f}s loading)"
    return (f"selection latency: {scoring}; public tests {timings.public_tests:.2f}s wall "
            f"({timings.public_test_processes:.2f}s summed over processes); all tests {timings.all_tests:.2f}s")


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
    table.add_column("what it picks / note")
    for row in report.strategies:
        interval = f"{_percent(row.interval[0])} – {_percent(row.interval[1])}" if row.interval else "-"
        table.add_row(row.name, _percent(row.accuracy), interval,
                      escape(row.note) if row.note else f"[dim]{escape(row.description)}[/]")
    console.print(table)
    for line in table_lines(report)[len(report.strategies) + 4:]:
        if line:
            console.print(escape(line), highlight=False)


# ---------------------------------------------------------------------------------------------------------------
# JSON and plot


def write_json(report: Report, path: str | Path) -> None:
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
    """Accuracy against N for every strategy; the format follows the suffix (.png, .svg, .pdf)."""
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

    figure, axes = pyplot.subplots(figsize=(7, 4.5), dpi=120)
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
    figure.tight_layout()
    try:
        figure.savefig(path, format=suffix)
    except OSError as exc:
        raise UsageError(f"cannot write --plot {path}: {exc.strerror or exc}") from None
    finally:
        pyplot.close(figure)
