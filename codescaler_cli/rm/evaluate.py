"""`eval-rm` as a library call: score every response of a preference file with a reward model (any scorer `rank`
uses, behind the cache when given one) and report pairwise accuracy, or RM-Bench's easy / normal / hard.

Each response is shown to the reward model the way `rank` shows a candidate: the question as the user turn, the
response as the assistant turn. `extraction` decides what the assistant turn is: `syntax` (rank's extraction; for
code rows, rank's check of given code), `upstream` (upstream training's one-fenced-block rule), or `none` (the whole
response, for prose such as RM-Bench's answers). `auto` is `syntax` for code rows and `none` for the rest. A response
with no valid code under the chosen extraction is not scored and loses its comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import UsageError
from ..extraction import extract_candidate
from ..pipeline import DEFAULT_CHUNK_REQUESTS, behind_cache, encodable, lazy_scorer
from ..records import Candidate
from ..runs.cache import cache_of
from ..runs.reporter import SILENT, Reporter, loading_text
from ..scoring.base import ProgressCallback, Scorer, ScoreRequest
from ..scoring.config import ScorerConfig
from .data import RM_BENCH_DOMAINS, PreferenceData, PreferenceItem, read_preference_data
from .metrics import Score, beats, pairwise_accuracy, rm_bench_accuracy, rm_bench_overall

if TYPE_CHECKING:
    from ..runs.cache import Cache

EXTRACTIONS = ("auto", "syntax", "upstream", "none")


@dataclass
class ScoredItem:
    """A row with the raw score of each of its responses (None: not scored), in the row's order."""

    item: PreferenceItem
    chosen_scores: list[Score]
    rejected_scores: list[Score]

    def record(self) -> dict[str, Any]:
        """The input row, every field kept, with `chosen_scores` and `rejected_scores` added."""
        return {**self.item.row.record, "chosen_scores": self.chosen_scores, "rejected_scores": self.rejected_scores}


@dataclass
class RMReport:
    """What eval-rm reports: accuracies per group (RM-Bench domain or RewardBench subset) and overall, and what
    was scored."""

    data: str
    format: str
    extraction: str
    model: str | None
    split: str | None
    rows: int
    responses: int
    texts_scored: int  # distinct (question, response) texts the model ran or the cache answered
    no_code: int  # responses with no valid code under the extraction (not scored)
    truncated: int  # responses cut at --max-length
    errors: int  # responses the scorer failed on (not scored)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    overall: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def is_rm_bench(self) -> bool:
        return self.format == "rm-bench"

    def to_json(self) -> dict[str, Any]:
        key = "domains" if self.is_rm_bench else "subsets"
        return {"data": self.data, "format": self.format, "extraction": self.extraction, "model": self.model,
                "split": self.split, "rows": self.rows, "responses": self.responses,
                "texts_scored": self.texts_scored, "no_code": self.no_code, "truncated": self.truncated,
                "errors": self.errors, key: self.groups, "overall": self.overall, "notes": self.notes}

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the accuracy table (percentages), the overall row last."""
        if self.is_rm_bench:
            header = ["domain", "rows", "easy %", "normal %", "hard %", "mean %"]
            lines = [[name, str(v["rows"]), *(_percent(v[k]) for k in ("easy", "normal", "hard", "mean"))]
                     for name, v in self.groups.items()]
            o = self.overall
            lines.append(["overall", str(o["rows"]), *(_percent(o[k]) for k in ("easy", "normal", "hard", "mean"))])
            return header, lines
        header = ["subset" if self.groups else "", "pairs", "accuracy %"]
        lines = [[name, str(v["pairs"]), _percent(v["accuracy"])] for name, v in self.groups.items()]
        lines.append(["overall", str(self.overall["pairs"]), _percent(self.overall["accuracy"])])
        return header, lines

    def table_lines(self) -> list[str]:
        """The table as plain text (what stdout gets in a pipe)."""
        header, lines = self.table()
        widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
        text = [self.title(), ""]
        for row in [header, *lines]:
            text.append("  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                                  for i, cell in enumerate(row)).rstrip())
        text.extend(f"note: {note}" for note in self.notes)
        return text

    def title(self) -> str:
        split = f", split {self.split}" if self.split else ""
        return (f"{self.rows} {self.format} rows{split}, {self.responses} responses scored by "
                f"{self.model or 'the reward model'} (extraction: {self.extraction})")


@dataclass
class RMEvaluation:
    items: list[ScoredItem]
    report: RMReport


def evaluate_reward_model(data: PreferenceData | str | Path, scorer: Scorer | ScorerConfig, *,
                          extraction: str = "auto", split: str | None = None, cache: Cache | Path | None = None,
                          reporter: Reporter = SILENT, stdin: IO[bytes] | None = None) -> RMEvaluation:
    """Score every response of `data` (a file or rows already read) and compute the accuracies.

    A ScorerConfig is opened here (behind `cache`, a Cache or its directory, when given, loading the model only on
    a miss) and closed when done; a Scorer passed in stays open. `reporter` shows a "Scoring" phase over the
    distinct texts.

        from codescaler_cli import ScorerConfig
        from codescaler_cli.rm import evaluate_reward_model

        result = evaluate_reward_model("total_dataset.json", ScorerConfig(model="LARK-Lab/CodeScaler-4B"),
                                       extraction="none")
        print(result.report.overall["hard"])
    """
    if extraction not in EXTRACTIONS:
        raise UsageError(f"unknown extraction '{extraction}'", f"use one of: {', '.join(EXTRACTIONS)}")
    if not isinstance(data, PreferenceData):
        data = read_preference_data(data, split=split, stdin=stdin)
    mode = extraction if extraction != "auto" else ("syntax" if data.format == "codescaler" else "none")

    # Every response becomes a (question, code) text, or None when it has no valid code; equal texts score once.
    texts: dict[tuple[str, str], int] = {}
    slots: list[tuple[list[int | None], list[int | None]]] = []
    for item in data.items:
        sides = []
        for responses in (item.chosen, item.rejected):
            side: list[int | None] = []
            for response in responses:
                code = _assistant_turn(item, response, mode)
                side.append(None if code is None else texts.setdefault((item.question, code), len(texts)))
            sides.append(side)
        slots.append((sides[0], sides[1]))
    requests = [ScoreRequest(question=encodable(question), code=encodable(code)) for question, code in texts]
    with cache_of(cache, reporter) as opened_cache:
        waiting = loading_text(scorer) if isinstance(scorer, ScorerConfig) else None
        scores, truncated, failed = _score(requests, scorer, opened_cache,
                                           reporter.phase("Scoring", len(requests), waiting=waiting))

    scored_items = []
    for item, (chosen, rejected) in zip(data.items, slots):
        scored_items.append(ScoredItem(item, [None if i is None else scores[i] for i in chosen],
                                       [None if i is None else scores[i] for i in rejected]))
    references = [i for chosen, rejected in slots for i in chosen + rejected]
    report = RMReport(
        data=data.source, format=data.format, extraction=mode, split=split,
        model=scorer.model if isinstance(scorer, ScorerConfig) else getattr(scorer, "model_name", None),
        rows=len(data.items), responses=len(references), texts_scored=len(requests),
        no_code=sum(i is None for i in references), truncated=sum(i is not None and truncated[i] for i in references),
        errors=sum(i is not None and failed[i] is not None for i in references))
    _accuracies(report, scored_items)
    if report.errors:
        first = next(error for error in failed if error is not None)
        report.notes.append(f"{report.errors} responses could not be scored ({first}); they lose their comparisons")
    if report.no_code:
        report.notes.append(f"{report.no_code} responses have no valid code under --extraction {mode} and lose "
                            "their comparisons" + (" (RM-Bench's answers are prose: use --extraction none)"
                                                   if data.format == "rm-bench" else ""))
    if report.truncated:
        report.notes.append(f"{report.truncated} responses were longer than --max-length and scored cut on the "
                            "right")
    return RMEvaluation(scored_items, report)


def _assistant_turn(item: PreferenceItem, response: str, mode: str) -> str | None:
    """What the reward model reads as the assistant's turn, or None when there is no valid code to score."""
    if mode == "none":
        return response
    candidate = Candidate(record={}, source=item.row.source, line=item.row.line or 0, index=0,
                          question=item.question, response=None if item.is_code else response,
                          given_code=response if item.is_code else None)
    extract_candidate(candidate, mode)
    return candidate.code if candidate.valid else None


def _score(requests: list[ScoreRequest], scorer: Scorer | ScorerConfig, cache: Cache | None,
           progress: ProgressCallback | None) -> tuple[list[Score], list[bool], list[str | None]]:
    """Scores (None when failed or not finite), truncation flags and errors, in request order."""
    scores: list[Score] = []
    truncated: list[bool] = []
    errors: list[str | None] = []
    if not requests:
        return scores, truncated, errors
    owned = isinstance(scorer, ScorerConfig)
    # A config opens lazily (behind the cache, with rank's identity, so either command's cached scores serve the
    # other): a file whose texts are all cached, or have no code, loads no model.
    opened = lazy_scorer(scorer, cache)[0] if isinstance(scorer, ScorerConfig) else behind_cache(scorer, cache)
    try:
        for start in range(0, len(requests), DEFAULT_CHUNK_REQUESTS):
            for result in opened.score(requests[start:start + DEFAULT_CHUNK_REQUESTS], progress):
                value = result.score
                error = result.error
                if value is not None and not math.isfinite(value):
                    value, error = None, f"the reward model returned {value} (not a finite score)"
                scores.append(value if error is None else None)
                truncated.append(result.truncated)
                errors.append(error)
    finally:
        if owned:
            opened.close()
    return scores, truncated, errors


def _accuracies(report: RMReport, items: Sequence[ScoredItem]) -> None:
    if report.is_rm_bench:
        by_domain: dict[str, list[tuple[list[Score], list[Score]]]] = {}
        for scored in items:
            by_domain.setdefault(scored.item.group or "", []).append((scored.chosen_scores, scored.rejected_scores))
        order = sorted(by_domain, key=lambda name: (RM_BENCH_DOMAINS.index(name) if name in RM_BENCH_DOMAINS
                                                    else len(RM_BENCH_DOMAINS), name))
        domains = {name: rm_bench_accuracy(by_domain[name]) for name in order}
        for name, value in domains.items():
            report.groups[name] = {"rows": value.rows, "easy": value.easy, "normal": value.normal, "hard": value.hard,
                                   "mean": value.mean, "matrix": [list(line) for line in value.matrix]}
        overall = rm_bench_overall(domains)
        report.overall = {"rows": overall.rows, "domains": overall.domains, "easy": overall.easy,
                          "normal": overall.normal, "hard": overall.hard, "mean": overall.mean}
        return
    by_subset: dict[str, list[tuple[Score, Score]]] = {}
    for scored in items:
        if scored.item.group is not None:
            by_subset.setdefault(scored.item.group, []).append((scored.chosen_scores[0], scored.rejected_scores[0]))
    for name, pairs in by_subset.items():
        report.groups[name] = {"pairs": len(pairs), "accuracy": pairwise_accuracy(pairs)}
    everything = [(scored.chosen_scores[0], scored.rejected_scores[0]) for scored in items]
    report.overall = {"pairs": len(everything), "accuracy": pairwise_accuracy(everything),
                      "wins": sum(beats(chosen, rejected) for chosen, rejected in everything)}


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"
