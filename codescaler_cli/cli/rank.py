"""`codescaler rank`: score candidates with the reward model and rank them within each problem."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from ..errors import CodescalerError, UsageError
from ..pipeline import DEFAULT_CHUNK_REQUESTS, LazyScorer, extract_candidate, score_groups, unique_programs
from ..records import Candidate, CandidateSource, FieldNames, group_hash, record_group_key
from ..resume import Progress, check_settings, read_settings, repair_output, write_settings
from ..scoring import ScorerConfig
from ..scoring.config import check_scorer
from ._errors import handle_errors, set_interrupt_hint
from ._input import problem_label, stdin_is_terminal
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
    ItemErrors,
    RecordWriter,
    finish_truncation_warnings,
    info,
    progress_bar,
    warn_truncated,
)
from .cache import CacheDir, NoCache, Resume, resume_command


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
    if resume and output is None:
        raise UsageError("--resume continues the file given with --output, and no --output was given",
                         "add -o FILE (the file an earlier run was writing)")
    fields = FieldNames(id=id_field, question=question_field, response=response_field, code=code_field)
    if output is not None and input_file not in (None, "-") and output.resolve() == Path(input_file).resolve():
        raise UsageError(f"--output {output} is the input file: ranking would overwrite what it reads",
                         "write the ranked records to another file")
    if input_file is None and stdin_is_terminal():
        raise UsageError("no input: give a JSONL FILE or pipe records on standard input",
                         "e.g. codescaler rank candidates.jsonl, or cat candidates.jsonl | codescaler rank")
    source = CandidateSource(input_file, fields, require_question=True, stdin=getattr(sys.stdin, "buffer", None))
    try:
        _rank(source, fields, scorer_config, top_k=top_k, output=output, output_format=output_format, quiet=quiet,
              resume=resume, cache_dir=None if no_cache else cache_dir)
    finally:
        source.close()


def _rank(source: CandidateSource, fields: FieldNames, scorer_config: ScorerConfig, *, top_k: int | None,
          output: Path | None, output_format: OutputFormat, quiet: bool, resume: bool,
          cache_dir: Path | None) -> None:
    scan = source.scan()  # every record validated before any model loads or any output is touched
    done = Progress()
    if output is not None and cache_dir is None and output.exists() and output.stat().st_size > 0:
        # A file that holds earlier results is only replaced (or continued) once the reward side can work: a typo
        # in -r must not cost them.
        check_scorer(scorer_config)
    if output is not None:
        settings = rank_settings(scorer_config, fields)
        if resume:
            recorded = read_settings(output)
            if recorded is None and output.exists() and output.stat().st_size > 0:
                raise UsageError(f"cannot resume {output}: no record of the run that wrote it (its settings file "
                                 "is missing)", f"run without --resume to start over (this replaces {output})")
            check_settings(output, "rank", settings, recorded)
            done = repair_output(output, scan.group_hashes, scan.group_sizes,
                                 lambda record: group_hash(record_group_key(record, fields)))
            if not quiet:
                info(done.describe(output, scan.groups))
        write_settings(output, "rank", settings)

    from ..cache import Cache, CachedScorer, scorer_identity

    cache = Cache(cache_dir) if cache_dir is not None else None
    lazy = LazyScorer(scorer_config)
    scorer: Any = lazy
    if cache is not None:
        scorer = CachedScorer(lazy, cache, scorer_identity(scorer_config.model, scorer_config.revision,
                                                           scorer_config.dtype, scorer_config.max_length,
                                                           scorer_config.urls))
    errors = ItemErrors(_location)
    counts = {"valid": 0, "unique": 0}
    max_length = scorer_config.max_length
    truncated_seen = 0
    writer: RecordWriter | None = None
    try:
        with RecordWriter(output_format, output, columns="rank", append=resume) as writer:
            set_interrupt_hint(lambda: _resume_hint(output, done.groups + writer.groups_written, scan.groups))
            if scan.records == 0 or done.groups == scan.groups:
                return
            remaining = scan.records - done.records
            with progress_bar(remaining, "Scoring", enabled=not quiet) as advance:
                groups = ([extract_candidate(c) for c in group] for group in source.groups())
                for ranked in score_groups(groups, scorer, chunk_requests=chunk_size(scorer_config),
                                           skip_groups=done.groups):
                    truncated_seen = warn_truncated(ranked, truncated_seen, max_length, _location)
                    writer.write_ranked(ranked, top_k, problem=problem_label(ranked[0]), locations=True)
                    errors.add(ranked)
                    counts["valid"] += sum(c.valid for c in ranked)
                    counts["unique"] += len(unique_programs(ranked))
                    advance(len(ranked))
    except CodescalerError as exc:
        if output is not None and writer is not None:
            exc.add_hint(_resume_hint(output, done.groups + writer.groups_written, scan.groups))
        raise
    finally:
        scorer.close()
        if cache is not None:
            cache.close()
    finish_truncation_warnings(truncated_seen, max_length)
    if not quiet:
        _summary(errors.seen, scan.groups - done.groups, counts["valid"], counts["unique"], lazy, cache)
    errors.exit_if_any("candidates could not be scored and rank with the invalid ones")


def rank_settings(config: ScorerConfig, fields: FieldNames) -> dict[str, Any]:
    """What a resumed run must share with the first one for the file to equal an uninterrupted run's."""
    return {"--reward-model": config.model, "--revision": config.revision, "--dtype": config.dtype,
            "--max-length": config.max_length, "--id-field": fields.id, "--question-field": fields.question,
            "--response-field": fields.response, "--code-field": fields.code}


def chunk_size(config: ScorerConfig) -> int:
    """Unique programs scored per chunk: a few batches' worth, so results stream out steadily (and an interrupt
    loses little) whatever the batch budget; 256 at the default budget. On servers: one full request (16 texts)
    per connection in flight."""
    if config.urls:
        return max(4, min(DEFAULT_CHUNK_REQUESTS, config.concurrency * len(config.urls) * 16))
    return max(4, min(DEFAULT_CHUNK_REQUESTS, config.max_batch_tokens // 64))


def _resume_hint(output: Path | None, complete: int, total: int) -> str:
    if output is None:
        return ("the problems finished so far were written to stdout; to be able to resume a long run, write it "
                "with -o FILE and continue it with --resume")
    return f"{complete} of {total} problems are complete in {output}; continue with: {resume_command()}"


def _location(candidate: Candidate) -> str:
    return candidate.location


def _summary(candidates: int, groups: int, valid: int, scored: int, scorer: LazyScorer, cache: Any) -> None:
    stats = scorer.stats
    line = (f"ranked {candidates} candidates in {groups} problems: {valid} valid, {scored} unique "
            f"programs scored")
    if cache is not None and cache.score_hits:
        line += f" ({cache.score_hits} from the cache)"
    if stats.seconds > 0:
        line += (f" in {stats.seconds:.2f}s ({stats.tokens / stats.seconds:,.0f} tokens/s; "
                 f"model loaded in {scorer.load_seconds:.1f}s)")
    info(line)
    if cache is not None:
        loaded = "the reward model was loaded" if scorer.opened is not None else "no model was loaded"
        info(f"cache: {cache.score_hits} hits, {cache.score_misses} misses ({loaded}) in {cache.directory}")
