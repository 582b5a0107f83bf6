"""`codescaler rank`: score candidates with the reward model and rank them within each problem."""

from __future__ import annotations

import sys

import typer

from ..errors import UsageError
from ..records import CandidateSource, FieldNames
from ..runs import Cache, RunOutput, rank_candidates
from ..scoring import ScorerConfig
from ._errors import handle_errors
from ._input import problem_label, stdin_is_terminal
from ._options import (
    CacheDir,
    CodeField,
    Format,
    IdField,
    InputFile,
    NoCache,
    OutputFile,
    QuestionField,
    Quiet,
    ResponseField,
    Resume,
    TopK,
    resume_command,
    scorer_options,
    warn_ignored_scorer_options,
)
from ._output import OutputFormat, RankedPrinter, RecordWriter, info, reporting


@handle_errors
@scorer_options()
def rank(
    ctx: typer.Context,
    input_file: InputFile = None,
    id_field: IdField = "id",
    question_field: QuestionField = "question",
    response_field: ResponseField = "response",
    code_field: CodeField = "code",
    scorer_config: ScorerConfig = ScorerConfig(),
    top_k: TopK = None,
    output: OutputFile = None,
    output_format: Format = OutputFormat.auto,
    quiet: Quiet = False,
    resume: Resume = False,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
) -> None:
    """Score candidates with a CodeScaler reward model and rank them per problem.

        codescaler rank candidates.jsonl -r LARK-Lab/CodeScaler-4B --top-k 1 | jq .code

    Each record needs a `question` and a `response` (or `code`). Candidates with the same `id` (else the same
    question) are one problem. Adds `code`, `valid`, `score` (raw logit), `reward` (softplus of the score, 0 when
    invalid), `rank` (1 = best) and `truncated`. The whole input is checked before the model loads. --output
    keeps every candidate, ranked; --top-k and --format choose what stdout shows. A run interrupted (Ctrl-C,
    SIGTERM, even SIGKILL) continues with --resume; --cache DIR keeps scores for the next run.

    More examples:

        cat candidates.jsonl | codescaler rank - -r ./CodeScaler-1.7B -o ranked.jsonl

        codescaler rank candidates.jsonl -o ranked.jsonl --resume --cache ~/.cache/codescaler

        codescaler rank candidates.jsonl --reward-url http://gpu1:8001 --reward-url http://gpu2:8001
    """
    scorer_config.validate()
    warn_ignored_scorer_options(ctx, scorer_config)
    run_output = RunOutput(output, command="rank", resume=resume, reads=input_file, continue_with=resume_command())
    if input_file is None and stdin_is_terminal():
        raise UsageError("no input: give a JSONL FILE or pipe records on standard input",
                         "e.g. codescaler rank candidates.jsonl, or cat candidates.jsonl | codescaler rank")
    fields = FieldNames(id=id_field, question=question_field, response=response_field, code=code_field)
    source = CandidateSource(input_file, fields, require_question=True, stdin=getattr(sys.stdin, "buffer", None))
    cache = Cache(cache_dir) if cache_dir is not None and not no_cache else None
    try:
        with RecordWriter(output_format, columns="rank", keep_going=output is not None) as writer, \
                reporting(quiet=quiet) as reporter:
            printer = RankedPrinter(writer, top_k=top_k, max_length=scorer_config.max_length,
                                    name=lambda c: c.location, problem=problem_label, locations=True)
            summary = rank_candidates(source, scorer_config, output=run_output, cache=cache, on_ranked=printer,
                                      reporter=reporter)
        if not quiet and summary.problems:
            info(summary.describe(cache))
        if not quiet and summary.problems and cache is not None:
            loaded = "the reward model was loaded" if summary.model_loaded else "no model was loaded"
            info(f"cache: {cache.score_hits} hits, {cache.score_misses} misses ({loaded}) in {cache.directory}")
    finally:
        source.close()
        if cache is not None:
            cache.close()
    printer.finish("candidates could not be scored and rank with the invalid ones")
