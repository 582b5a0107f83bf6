"""`codescaler eval-rm`: a reward model's accuracy on preference data (pairs, RewardBench, RM-Bench)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ..evaluation.report import write_json
from ..rm.data import read_preference_data
from ..rm.evaluate import RMReport, evaluate_reward_model
from ..scoring import ScorerConfig
from ._errors import handle_errors
from ._help import HelpAll
from ._input import stdin_is_terminal
from ..runs import RunOutput
from ._options import INPUT, OUTPUT, CacheDir, NoCache, Quiet, scorer_options, warn_ignored_scorer_options
from ._output import reporting, stdout_is_terminal, warn


class Extraction(str, Enum):
    auto = "auto"
    syntax = "syntax"
    upstream = "upstream"
    none = "none"


class Split(str, Enum):
    train = "train"
    test = "test"


@handle_errors
@scorer_options()
def eval_rm(
    ctx: typer.Context,
    data_file: Annotated[Optional[str], typer.Argument(
        help="Preference data: codescaler/CodeScalerPair pairs, TRL or OpenRLHF rows, RewardBench rows, or RM-Bench "
        "rows (total_dataset.json or a per-domain file), as JSONL, a JSON array or Parquet; '-' reads standard "
        "input.", show_default=False, metavar="DATA")] = None,
    extraction: Annotated[Extraction, typer.Option(
        "--extraction", help="What the assistant turn is: syntax (rank's extraction), upstream (one fenced block, "
        "as in upstream training) or none (the whole response). auto: syntax for code pairs, none for prose rows.",
        case_sensitive=False, rich_help_panel=INPUT)] = Extraction.auto,
    split: Annotated[Optional[Split], typer.Option(
        "--split", help="Score only the rows of this split (the `split` field `codescaler pairs` writes).",
        case_sensitive=False, show_default=False, rich_help_panel=INPUT)] = None,
    scorer_config: ScorerConfig = ScorerConfig(),
    json_file: Annotated[Optional[str], typer.Option(
        "--json", help="Write the report (accuracies per domain or subset, and overall) as JSON ('-': to stdout, "
        "instead of the table).", show_default=False, metavar="FILE|-", rich_help_panel=OUTPUT)] = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write every row with its scores (chosen_scores, rejected_scores) to this file as "
        "JSONL.", dir_okay=False, show_default=False, rich_help_panel=OUTPUT)] = None,
    quiet: Quiet = False,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    help_all: HelpAll = False,
) -> None:
    """Measure a reward model on preference data: pairwise accuracy, or RM-Bench's easy / normal / hard.

        codescaler eval-rm pairs.jsonl -r ./my-rm --split test

    Every response is scored as `rank` scores a candidate (question as the user turn, response as the assistant
    turn), with the same scorers (transformers, --scorer vllm, --reward-url) and --cache. A win is strict: a tie
    loses. RM-Bench rows (three chosen, three rejected responses) give RM-Bench's 3x3 matrix per domain (safety
    sub-domains merged): easy, normal and hard, and their mean, as its scripts/utils.py computes them. A table goes
    to stdout, --json writes the report, -o the rows with their scores.

    More examples:

        codescaler eval-rm total_dataset.json -r LARK-Lab/CodeScaler-4B --extraction none --json rm-bench.json

        codescaler eval-rm reward-bench-filtered.parquet -r ./my-rm --reward-url http://gpu1:8001
    """
    scorer_config.validate()
    warn_ignored_scorer_options(ctx, scorer_config)
    if data_file is None:
        if stdin_is_terminal():
            raise UsageError("no input: give a DATA file of preference rows, or pipe one in",
                             "e.g. codescaler eval-rm pairs.jsonl -r MODEL --split test")
        data_file = "-"
    run_output = RunOutput(output, command="eval-rm", resumable=False, reads=data_file)
    run_output.start(None)  # an unwritable -o fails now, not after the scoring
    # Every row is checked before any model loads.
    data = read_preference_data(data_file, split=split.value if split else None,
                                stdin=getattr(sys.stdin, "buffer", None))
    with reporting(quiet=quiet) as reporter:
        result = evaluate_reward_model(data, scorer_config, extraction=extraction.value,
                                       split=split.value if split else None,
                                       cache=None if no_cache else cache_dir, reporter=reporter)
    report = result.report
    with run_output:
        run_output.write([[item.record() for item in result.items]])
    if json_file is not None:
        write_json(report, json_file)
    if json_file != "-":
        _print_table(report, terminal=stdout_is_terminal())
    if report.errors:
        warn(f"{report.errors} of {report.responses} responses could not be scored; they count as lost")
        raise typer.Exit(1)


def _print_table(report: RMReport, *, terminal: bool) -> None:
    """A rich table on a terminal, plain aligned text in a pipe."""
    if not terminal:
        sys.stdout.write("\n".join(report.table_lines()) + "\n")
        sys.stdout.flush()
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    header, rows = report.table()
    table = Table(title=escape(report.title()), header_style="bold")
    for position, name in enumerate(header):
        table.add_column(name, justify="left" if position == 0 else "right", no_wrap=True)
    for number, row in enumerate(rows):
        table.add_row(*(escape(cell) for cell in row), end_section=number == len(rows) - 2)
    console = Console(file=sys.stdout)
    console.print(table)
    for note in report.notes:
        console.print(f"note: {escape(note)}", highlight=False)
