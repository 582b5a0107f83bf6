"""The benchmark selection options (`--release`, `--since`, `--until`, `--limit`, `--sample`, `--sample-seed`), added
to a command as one group that hands it a single `BenchmarkSelection`, and the one call that turns `--benchmark` or
`--problems` plus that selection into problems.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from ..errors import UsageError
from ..evaluation.benchmarks import BenchmarkSelection, get_benchmark, load_selection, parse_day, select_problems
from ..evaluation.problems import EvalProblem, read_problems_file

SELECTION = "Benchmark selection"

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = (
    inspect.Parameter("selection_release", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[str], typer.Option("--release", help="LiveCodeBench release: v1 .. v6 (every problem released up "
                                    "to it) or latest.", show_default=False, rich_help_panel=SELECTION)]),
    inspect.Parameter("selection_since", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[str], typer.Option("--since", help="LiveCodeBench: only problems from contests on or after this "
                                    "day (YYYY-MM-DD).", show_default=False, rich_help_panel=SELECTION)]),
    inspect.Parameter("selection_until", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[str], typer.Option("--until", help="LiveCodeBench: only problems from contests up to this day "
                                    "(YYYY-MM-DD, at 00:00 as LiveCodeBench counts it).", show_default=False,
                                    rich_help_panel=SELECTION)]),
    inspect.Parameter("selection_limit", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[int], typer.Option("--limit", min=1, help="Only the first N problems.", show_default=False,
                                    rich_help_panel=SELECTION)]),
    inspect.Parameter("selection_sample", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[int], typer.Option("--sample", min=1, help="N problems drawn at random (with --sample-seed), "
                                    "kept in the benchmark's order.", show_default=False, rich_help_panel=SELECTION)]),
    inspect.Parameter("selection_seed", inspect.Parameter.KEYWORD_ONLY, default=0, annotation=Annotated[
        int, typer.Option("--sample-seed", help="Seed of --sample's draw.", rich_help_panel=SELECTION)]),
)


def benchmark_selection_options(command: F) -> F:
    """Add the selection options to a command, which receives them as `benchmark_selection: BenchmarkSelection`."""
    signature = inspect.signature(command, eval_str=True)
    names = list(signature.parameters)
    at = names.index("benchmark_selection")
    before = [signature.parameters[name] for name in names[:at]]
    after = [signature.parameters[name] for name in names[at + 1:]]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs["benchmark_selection"] = BenchmarkSelection(
            release=kwargs.pop("selection_release"),
            since=parse_day(kwargs.pop("selection_since"), "--since"),
            until=parse_day(kwargs.pop("selection_until"), "--until"),
            limit=kwargs.pop("selection_limit"), sample=kwargs.pop("selection_sample"),
            seed=kwargs.pop("selection_seed"))
        return command(*args, **kwargs)

    # Typer reads options from the signature; keyword-only parameters must follow the positional ones.
    parameters = [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in before + list(_OPTIONS) + after]
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper  # type: ignore[return-value]


def selecting(selection: BenchmarkSelection) -> bool:
    """Whether the selection leaves problems out (candidates of other problems are then skipped, not errors)."""
    return selection != BenchmarkSelection(seed=selection.seed)


def describe(benchmark: str | None, selection: BenchmarkSelection) -> str | None:
    """The benchmark and its selection as options, e.g. `livecodebench --release v6 --limit 20` (for settings)."""
    if benchmark is None:
        return None
    parts = [get_benchmark(benchmark).name]
    for flag, value in (("--release", selection.release), ("--since", selection.since),
                        ("--until", selection.until), ("--limit", selection.limit), ("--sample", selection.sample)):
        if value is not None:
            parts.append(f"{flag} {value}")
    if selection.sample is not None:
        parts.append(f"--sample-seed {selection.seed}")
    return " ".join(parts)


def load_problems(benchmark: str | None, problems_file: Path | str | None,
                  selection: BenchmarkSelection) -> list[EvalProblem]:
    """The problems of `--benchmark NAME` (fetched or from the cache) or of `--problems FILE`, selected."""
    if benchmark is not None:
        problems = load_selection(get_benchmark(benchmark), selection)
        if not problems:
            raise UsageError(f"no problems of {describe(benchmark, selection)} match the selection",
                             "widen --since/--until, or pick another --release")
        return problems
    if selection.windowed:
        raise UsageError("--release, --since and --until select LiveCodeBench problems by contest date: use them "
                         "with --benchmark livecodebench", "with --problems FILE use --limit or --sample")
    assert problems_file is not None
    return select_problems(read_problems_file(problems_file), selection)
