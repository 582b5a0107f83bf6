"""`codescaler rank`: score candidates with the reward model and rank them within each problem."""

from __future__ import annotations

import time

import typer

from ..pipeline import count_unique, extract_all, score_groups
from ..records import Candidate, FieldNames, group_candidates
from ..scoring import ScorerConfig, open_scorer
from ..selection import top_k as keep_top_k
from ._errors import handle_errors
from ._input import problem_label, read_input
from ._options import (
    CodeField,
    Format,
    IdField,
    InputFile,
    OutputFile,
    OutputFormat,
    QuestionField,
    Quiet,
    ResponseField,
    TopK,
    scorer_options,
    warn_ignored_scorer_options,
)
from ._output import (
    RecordWriter,
    exit_on_item_errors,
    finish_truncation_warnings,
    info,
    progress_bar,
    warn_truncated,
)


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
) -> None:
    """Score candidates with a CodeScaler reward model and rank them per problem.

        codescaler rank candidates.jsonl -r LARK-Lab/CodeScaler-4B --top-k 1 | jq .code

    Each record needs a `question` and a `response` (or `code`). Candidates with the same `id` (else the same
    question) are one problem. Adds `code`, `valid`, `score` (raw logit), `reward` (softplus of the score, 0 when
    invalid), `rank` (1 = best) and `truncated`. The whole input is checked before the model loads. --output
    keeps every candidate, ranked; --top-k and --format choose what stdout shows.

    More examples:

        cat candidates.jsonl | codescaler rank - -r ./CodeScaler-1.7B -o ranked.jsonl

        codescaler rank candidates.jsonl --scorer vllm

        codescaler rank candidates.jsonl --reward-url http://gpu1:8001 --reward-url http://gpu2:8001
    """
    scorer_config.validate()
    warn_ignored_scorer_options(ctx, scorer_config)
    fields = FieldNames(id=id_field, question=question_field, response=response_field, code=code_field)
    candidates = extract_all(read_input(input_file, fields, require_question=True, command="rank"))
    groups = group_candidates(candidates)
    to_score = count_unique(groups)
    max_length = scorer_config.max_length
    with RecordWriter(output_format, output, columns="rank") as writer:
        if not candidates:
            return
        scorer = None
        if to_score:
            started = time.perf_counter()
            scorer = open_scorer(scorer_config)
            load_seconds = time.perf_counter() - started
        truncated_seen = 0
        try:
            with progress_bar(to_score, "Scoring", enabled=not quiet and scorer is not None) as advance:
                for ranked in score_groups(groups, scorer, progress=advance):
                    truncated_seen = warn_truncated(ranked, truncated_seen, max_length, _location)
                    kept = keep_top_k(ranked, top_k)
                    writer.write([c.scored_record() for c in kept], problem=problem_label(ranked[0]),
                                 locations=[c.location for c in kept],
                                 file_records=[c.scored_record() for c in ranked])
        finally:
            if scorer is not None:
                scorer.close()
        finish_truncation_warnings(truncated_seen, max_length)
        if not quiet:
            _summary(candidates, groups, to_score, scorer, load_seconds if scorer else 0.0)
    exit_on_item_errors(candidates, _location, "candidates could not be scored and rank with the invalid ones")


def _location(candidate: Candidate) -> str:
    return candidate.location


def _summary(candidates: list[Candidate], groups: list[list[Candidate]], scored: int, scorer: object,
             load_seconds: float) -> None:
    valid = sum(c.valid for c in candidates)
    stats = getattr(scorer, "stats", None)
    line = (f"ranked {len(candidates)} candidates in {len(groups)} problems: {valid} valid, {scored} unique "
            f"programs scored")
    if stats is not None and stats.seconds > 0:
        line += (f" in {stats.seconds:.2f}s ({stats.tokens / stats.seconds:,.0f} tokens/s; "
                 f"model loaded in {load_seconds:.1f}s)")
    info(line)
