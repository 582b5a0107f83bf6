"""`codescaler rank`: score candidates with the reward model and rank them within each problem."""

from __future__ import annotations

import sys

import typer

from ..errors import UsageError
from ..records import CandidateSource, FieldNames
from ..runs import RunOutput, rank_candidates
from ..scoring import ScorerConfig
from ._errors import handle_errors
from ._help import HelpAll
from ._input import problem_label, stdin_is_terminal
from ._options import (
    CacheDir,
    CodeField,
    Format,
    IdField,
    InputFile,
    NoCache,
    RankedOutputFile,
    QuestionField,
    Quiet,
    ResponseField,
    Resume,
    Select,
    Selection,
    TopK,
    resume_command,
    scorer_options,
    warn_ignored_scorer_options,
)
from ._output import OutputFormat, RecordWriter, exit_on_failures, reporting


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
    select: Select = Selection("reward-model"),
    output: RankedOutputFile = None,
    output_format: Format = OutputFormat.auto,
    quiet: Quiet = False,
    resume: Resume = False,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    help_all: HelpAll = False,
) -> None:
    """Score candidates with a CodeScaler reward model and rank them per problem.

        codescaler rank examples/candidates.jsonl -r LARK-Lab/CodeScaler-4B --top-k 1 | jq .code

    Each record needs a `question` and a `response` (or `code`); --question-field and friends map other names.
    Candidates with the same `id` (else the same question) are one problem. Adds `code`, `valid`, `score` (raw
    logit), `reward` (softplus of the score, 0 when invalid), `rank` (1 = best) and `truncated`. The whole input
    is checked before the model loads. An interrupted run continues with --resume; --cache DIR keeps scores.

    More examples:

        cat examples/candidates.jsonl | codescaler rank - -o ranked.jsonl

        codescaler rank examples/candidates.jsonl --reward-url http://gpu1:8001 --reward-url http://gpu2:8001

        codescaler rank examples/candidates.jsonl --select reward-weighted-vote --top-k 1
    """
    scorer_config.validate()
    warn_ignored_scorer_options(ctx, scorer_config)
    run_output = RunOutput(output, command="rank", resume=resume, reads=input_file, continue_with=resume_command())
    if input_file is None and stdin_is_terminal():
        raise UsageError("no input: give a JSONL FILE or pipe records on standard input",
                         "e.g. codescaler rank candidates.jsonl, or cat candidates.jsonl | codescaler rank")
    fields = FieldNames(id=id_field, question=question_field, response=response_field, code=code_field)
    source = CandidateSource(input_file, fields, require_question=True, stdin=getattr(sys.stdin, "buffer", None))
    try:
        with RecordWriter(output_format, columns="rank", keep_going=output is not None) as writer, \
                reporting(quiet=quiet) as reporter:
            summary = rank_candidates(source, scorer_config, output=run_output, reporter=reporter,
                                      cache=None if no_cache else cache_dir, select=select.value,
                                      on_ranked=lambda ranked: writer.write_ranked(
                                          ranked, top_k, problem=problem_label(ranked[0]), locations=True))
    finally:
        source.close()
    exit_on_failures(summary.first_failures, summary.failed, summary.candidates,
                     "candidates could not be scored and rank with the invalid ones")
