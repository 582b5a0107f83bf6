"""Ranking a candidates file as one call: what `codescaler rank` runs.

Every record is validated before any model loads; then problems are extracted, scored and ranked chunk by chunk
and each problem is written to the output file (and handed to `on_ranked`) as soon as it is ranked. A resumed run
skips the problems its output already holds, scoring their chunks again (a score can differ in its last bits
with the batch it ran in) so the file ends exactly as an uninterrupted run's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..extraction import extract_all
from ..pipeline import DEFAULT_CHUNK_REQUESTS, lazy_scorer, score_groups, unique_programs
from ..records import Candidate, CandidateSource, InputScan, group_hash, record_group_key
from ..scoring import ScorerConfig, ScoringStats
from ..selection import select_ranks
from .cache import Cache, cache_of
from .output import RunOutput
from .reporter import SILENT, ItemTally, Reporter, StartOnly, loading_text


@dataclass
class RankSummary:
    """What one `rank_candidates` run did (problems an earlier run finished are not counted)."""

    candidates: int = 0
    problems: int = 0
    valid: int = 0
    unique: int = 0  # programs scored: one per distinct valid program of a problem
    failed: int = 0  # candidates whose scoring failed (their records carry an `error`)
    first_failures: list[str] = field(default_factory=list)  # the first few, by location, with their error
    scoring: ScoringStats = field(default_factory=ScoringStats)
    load_seconds: float = 0.0
    model_loaded: bool = False

    def describe(self, cache: Cache | None = None) -> str:
        line = (f"ranked {self.candidates} candidates in {self.problems} problems: {self.valid} valid, "
                f"{self.unique} unique programs scored")
        if cache is not None and cache.score_hits:
            line += f" ({cache.score_hits} from the cache)"
        stats = self.scoring
        if stats.seconds > 0:
            line += (f" in {stats.seconds:.2f}s ({stats.tokens / stats.seconds:,.0f} tokens/s; "
                     f"model loaded in {self.load_seconds:.1f}s)")
        return line


def chunk_size(config: ScorerConfig) -> int:
    """Unique programs scored per chunk: a few batches' worth, so results stream out steadily (and an interrupt
    loses little) whatever the batch budget; 256 at the default budget. On servers: one full request (16 texts)
    per connection in flight."""
    if config.urls:
        return max(4, min(DEFAULT_CHUNK_REQUESTS, config.concurrency * len(config.urls) * 16))
    return max(4, min(DEFAULT_CHUNK_REQUESTS, config.max_batch_tokens // 64))


def rank_candidates(source: CandidateSource, scorer: ScorerConfig, *, output: RunOutput | None = None,
                    cache: Cache | Path | None = None, on_ranked: Callable[[list[Candidate]], None] | None = None,
                    reporter: Reporter = SILENT, select: str = "reward-model") -> RankSummary:
    """Score and rank every problem of `source`, writing each to `output` (and `on_ranked`) as it is ranked.

        from codescaler_cli.records import CandidateSource
        from codescaler_cli.runs import RunOutput, rank_candidates

        source = CandidateSource("candidates.jsonl", require_question=True)
        rank_candidates(source, ScorerConfig(model="LARK-Lab/CodeScaler-4B"),
                        output=RunOutput("ranked.jsonl", command="rank"))

    The reward model loads on the first text not in `cache` (a Cache, or its directory). Records of a failed text
    carry an `error`; candidates cut at the model's max length, and a summary, are told through `reporter`.
    `select` orders each problem by another strategy than the reward model's score (`selection.SELECTIONS`).
    """
    scan = source.scan()  # every record validated before any model loads or any output is touched
    output = output if output is not None else RunOutput(None, command="rank")
    with cache_of(cache, reporter) as opened:
        summary = _rank(source, scan, scorer, output, opened, on_ranked, reporter, select)
        if summary.problems:
            reporter.info(summary.describe(opened))
        if summary.problems and opened is not None:
            loaded = "the reward model was loaded" if summary.model_loaded else "no model was loaded"
            reporter.info(f"cache: {opened.score_hits} hits, {opened.score_misses} misses ({loaded}) in "
                          f"{opened.directory}")
    return summary


def _rank(source: CandidateSource, scan: InputScan, scorer: ScorerConfig, output: RunOutput, cache: Cache | None,
          on_ranked: Callable[[list[Candidate]], None] | None, reporter: Reporter, select: str) -> RankSummary:
    summary = RankSummary()
    # The default is recorded as None, as runs before --select recorded nothing: they stay resumable.
    selection = {"select": None if select == "reward-model" else select}
    with output:
        done = output.start(scorer.fingerprint() | source.fields.fingerprint() | selection, hashes=scan.group_hashes,
                            sizes=scan.group_sizes,
                            key_of=lambda record: group_hash(record_group_key(record, source.fields)))
        if output.resume:
            reporter.info(output.describe_resume())
        if scan.records == 0 or done.groups == scan.groups:
            return summary
        active, lazy = lazy_scorer(scorer, cache)
        tally = ItemTally(reporter, scorer.max_length, lambda candidate: candidate.location)
        try:
            advance = reporter.phase("Scoring", scan.records - done.records, waiting=loading_text(scorer))
            groups = (extract_all(group) for group in source.groups())
            # Counted by problems written; the scorer only says when its model is loaded.
            for ranked in score_groups(groups, active, progress=StartOnly(advance), chunk_requests=chunk_size(scorer),
                                       skip_groups=done.groups):
                ranked = select_ranks(ranked, select)
                tally.add(ranked)
                output.write([[c.scored_record() for c in ranked]],
                             also=(lambda: on_ranked(ranked)) if on_ranked is not None else None)
                summary.candidates += len(ranked)
                summary.problems += 1
                summary.valid += sum(c.valid for c in ranked)
                summary.unique += len(unique_programs(ranked))
                advance(len(ranked))
        finally:
            active.close()
        tally.finish()
        summary.failed, summary.first_failures = tally.failed, tally.first_failures
        summary.scoring = lazy.stats
        summary.load_seconds, summary.model_loaded = lazy.load_seconds, lazy.opened is not None
    return summary

