"""The extract → dedup → score → rank pipeline, streamed problem by problem, and best-of-N on top of it.

Groups are scored in chunks (so a backend sees large batches) and yielded one group at a time as soon as their
chunk is scored, so a caller can write results as they come and nothing computed is lost if a later chunk fails.
`best_of_n` is the whole of `codescaler generate` as one call: sample → extract → score → rank; with a stopping
rule (`stopping.StoppingRule`) it samples in waves and stops each problem as soon as the rule holds.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from .errors import BackendError
from .extraction import extract_all
from .generation import GenerationStats, Generator, Problem, SamplingSettings, problem_seeds, sample_candidates
from .generation.config import GeneratorConfig, open_generator
from .generation.problems import sample_wave
from .records import Candidate, group_candidates
from .scoring.base import (
    SERVER_UNAVAILABLE,
    ProgressCallback,
    Scorer,
    ScoreRequest,
    ScoreResult,
    ScoringStats,
    report_started,
)
from .scoring.config import ScorerConfig, check_scorer, open_scorer
from .selection import apply_score, assign_ranks
from .stopping import AdaptiveSummary, StoppingRule

StatsT = TypeVar("StatsT", GenerationStats, ScoringStats)

if TYPE_CHECKING:
    from .runs.cache import Cache

# Candidates held in one chunk at most, whatever they need scored: what bounds memory on a large file.
MAX_CHUNK_CANDIDATES = 4096

# Unique programs handed to the scorer per call: large enough to batch well, small enough to stream results.
DEFAULT_CHUNK_REQUESTS = 256


def scoring_key(candidate: Candidate) -> tuple[str, str]:
    """What a score depends on: the question the reward model reads and the program (its dedup key)."""
    return (candidate.question or "", candidate.dedup_key)


def unique_programs(group: Sequence[Candidate]) -> dict[tuple[str, str], Candidate]:
    """The first valid candidate of each distinct (question, program) in a group, in input order."""
    unique: dict[tuple[str, str], Candidate] = {}
    for candidate in group:
        if candidate.valid and scoring_key(candidate) not in unique:
            unique[scoring_key(candidate)] = candidate
    return unique


def count_unique(groups: Sequence[Sequence[Candidate]]) -> int:
    """How many texts the scorer will run: one per distinct valid program per group."""
    return sum(len(unique_programs(group)) for group in groups)


def score_groups(groups: Iterable[list[Candidate]], scorer: Scorer | None, *,
                 progress: ProgressCallback | None = None, chunk_requests: int = DEFAULT_CHUNK_REQUESTS,
                 skip_groups: int = 0) -> Iterator[list[Candidate]]:
    """Score and rank extracted groups; yield each group sorted by rank, in input order of groups.

    Each distinct valid program of a group is scored once and its score shared by its duplicates; invalid
    candidates are never scored (score None, reward 0.0) and rank after every valid one. `scorer` may be None
    only when no group has a valid candidate (then no model needs loading). `groups` may be a stream: one chunk
    of groups is held at a time.

    `skip_groups`: the first groups are already done (a resumed run) and are not yielded. Chunks are still cut
    from the first group on, and a chunk holding done and new groups is scored whole: a score can differ in its
    last bits with the batch it ran in, so only the same chunks give exactly the scores of an uninterrupted run.
    """
    chunk: list[tuple[list[Candidate], dict[tuple[str, str], Candidate]]] = []
    pending = held = 0
    position = 0  # index of the chunk's first group
    for group in groups:
        unique = unique_programs(group)
        chunk.append((group, unique))
        pending += len(unique)
        held += len(group)
        # Cut on candidates held too: groups with nothing to score (all invalid) must not pile up in memory.
        if pending >= chunk_requests or held >= MAX_CHUNK_CANDIDATES:
            yield from _score_chunk(chunk, scorer, progress, max(0, skip_groups - position))
            position += len(chunk)
            chunk, pending, held = [], 0, 0
    if chunk:
        yield from _score_chunk(chunk, scorer, progress, max(0, skip_groups - position))


def _score_chunk(chunk: list[tuple[list[Candidate], dict[tuple[str, str], Candidate]]], scorer: Scorer | None,
                 progress: ProgressCallback | None, done: int = 0) -> Iterator[list[Candidate]]:
    """Score one chunk and yield its groups ranked, except its first `done` (already written by an earlier run)."""
    if done >= len(chunk):
        return
    representatives = [c for _, unique in chunk for c in unique.values()]
    requests = [ScoreRequest(question=encodable(c.question or ""), code=encodable(c.code)) for c in representatives]
    if requests and scorer is None:
        raise ValueError("valid candidates need a scorer")
    # The done groups' texts run with the rest (the same batches, so the same scores), but their candidates keep
    # what they hold (restored from the output) and the progress counts only the new ones.
    finished = sum(len(unique) for _, unique in chunk[:done])
    if finished and progress is not None:
        results = scorer.score(requests) if scorer is not None else []
        progress(len(requests) - finished)
    else:
        results = scorer.score(requests, progress) if requests and scorer is not None else []
    if results and all(result.error_kind == SERVER_UNAVAILABLE for result in results):
        # Not one text of the chunk scored, every request lost to connection errors or 5xx after its retries: the
        # servers are down, not these candidates bad. Stop here, with every finished problem written, rather than
        # write the rest of the run as errors; `--resume` continues once the servers are back.
        raise BackendError(f"the reward model failed on all {len(results)} texts of a batch: {results[0].error}",
                           "check the reward servers")
    for representative, result in zip(representatives[finished:], results[finished:]):
        score, error = result.score, result.error
        if score is not None and not math.isfinite(score):
            # A broken model (NaN weights, overflow) must not rank its nonsense first, nor crash the run.
            score, error = None, f"the reward model returned {score} (not a finite score)"
        apply_score(representative, score)
        representative.truncated = result.truncated
        representative.error = error
        representative.tokens = result.tokens
    for number, (group, unique) in enumerate(chunk):
        if number < done:
            continue
        for candidate in group:
            if not candidate.valid:
                apply_score(candidate, None)
                continue
            representative = unique[scoring_key(candidate)]
            if representative is not candidate:
                apply_score(candidate, representative.score)
                candidate.truncated, candidate.error = representative.truncated, representative.error
        yield assign_ranks(group)


def encodable(text: str) -> str:
    """Text a tokenizer accepts: a lone surrogate (legal in JSON, not in UTF-8) becomes U+FFFD; the record keeps it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


class LazyScorer:
    """A scorer opened on its first use: a run whose texts are all cached, or all invalid, loads no model."""

    def __init__(self, config: ScorerConfig) -> None:
        self.config = config
        self.opened: Scorer | None = None
        self.load_seconds = 0.0

    @property
    def stats(self) -> ScoringStats:
        return self.opened.stats if self.opened is not None else ScoringStats()

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressCallback | None = None) -> list[ScoreResult]:
        if not requests:
            return []
        if self.opened is None:
            started = time.perf_counter()
            self.opened = open_scorer(self.config)
            self.load_seconds = time.perf_counter() - started
        report_started(progress)  # loaded: a progress display waiting for the model shows the scoring now
        return self.opened.score(requests, progress)

    def close(self) -> None:
        if self.opened is not None:
            self.opened.close()


# ---------------------------------------------------------------------------------------------------------------
# Best-of-N: the whole `generate` pipeline as a library call.


@dataclass
class BestOfNRun:
    """What a best-of-N run did: the base seed (record it to reproduce the run) and what each side ran."""

    seed: int = 0
    candidates: list[Candidate] = field(default_factory=list)
    groups: list[list[Candidate]] = field(default_factory=list)
    to_score: int = 0
    generation: GenerationStats | None = None
    scoring: ScoringStats | None = None
    adaptive: AdaptiveSummary | None = None  # what a run with a stopping rule drew and saved

    @property
    def best(self) -> list[Candidate]:
        """The rank-1 candidate of each problem, in problem order."""
        return [group[0] for group in self.groups if group]

    def describe(self) -> str:
        """One line: what was sampled, kept and scored, and how fast each side ran."""
        valid = sum(c.valid for c in self.candidates)
        scores = [c.score for c in self.best if c.score is not None]
        problems = len(self.groups)
        line = (f"{problems} problem{'s' if problems != 1 else ''}: sampled {len(self.candidates)}, valid {valid}, "
                f"unique {self.to_score}, best score {f'{max(scores):.3f}' if scores else '-'}")
        if self.generation is not None:
            seconds, tokens = self.generation.seconds, self.generation.completion_tokens
            line += f" | generating {seconds:.1f}s ({tokens:,} tokens, {tokens / seconds if seconds else 0.0:,.0f} tokens/s)"
        if self.scoring is not None:
            seconds, tokens = self.scoring.seconds, self.scoring.tokens
            line += f" | scoring {seconds:.1f}s ({tokens:,} tokens, {tokens / seconds if seconds else 0.0:,.0f} tokens/s)"
        line += f" | seed {self.seed}"
        if self.adaptive is not None and self.adaptive.problems:
            line += "\n" + self.adaptive.describe()
        return line


def iter_best_of_n(problems: Sequence[Problem | str], generator: Generator | GeneratorConfig,
                   scorer: Scorer | ScorerConfig, settings: SamplingSettings | None = None, *,
                   seed: int | None = None, template: str | None = None, system: str | None = None,
                   run: BestOfNRun | None = None, on_sampled: Callable[[list[Candidate]], None] | None = None,
                   sampling_progress: ProgressCallback | None = None,
                   scoring_progress: ProgressCallback | None = None, cache: Cache | None = None,
                   sampled: Sequence[list[Candidate]] = (), done_problems: int = 0,
                   round_problems: int | None = None,
                   on_round: Callable[[list[Candidate]], None] | None = None,
                   stopping: StoppingRule | None = None) -> Iterator[list[Candidate]]:
    """Sample `settings.n` responses per problem, extract, score and rank; yield each problem's ranked candidates.

    `settings`, `seed`, `template` and `system` default to a GeneratorConfig's own (a Generator object: sampling
    defaults, a random seed, the LiveCodeBench prompt, no system message); given, they win over the config's.
    Configs are opened here and closed when done; objects passed in stay open (the caller owns them). The
    reward side is checked before sampling (a wrong model or a server that is down fails in seconds, not after
    the samples are paid for), and an in-process generator is shut down before the reward model loads, so both
    fit one GPU in turn. `on_sampled` sees every sample (extracted, not yet scored) before scoring starts, e.g. to
    save them. `run` is filled with the seed, candidates and statistics as the run goes.

    Long runs: with `cache`, samples and scores already known are reused and a backend opens only on a miss.
    Resuming: `sampled` holds the samples of the first problems (from an earlier run; problem i's samples always
    come from seed `seed + i * n`, so they are the ones this run would draw), `done_problems` were already
    written and are not yielded again. `round_problems` samples that many problems per generator call, calling
    `on_round` with each round's samples, so an interrupted sampling phase keeps its finished rounds.

    Adaptive sampling: with a `stopping` rule that is adaptive (a GeneratorConfig's own by default), problems are
    sampled in waves and each is yielded as soon as the rule stops it or it has all its samples (see
    `iter_adaptive`); `sampled`, `round_problems` and `on_round` do not apply then.
    """
    if isinstance(generator, GeneratorConfig):
        settings = settings or generator.sampling
        seed = seed if seed is not None else generator.seed
        template = template if template is not None else generator.template
        system = system if system is not None else generator.system
        stopping = stopping if stopping is not None else generator.stopping
    settings = settings or SamplingSettings()
    if stopping is not None and stopping.adaptive:
        yield from iter_adaptive(problems, generator, scorer, settings, stopping, seed=seed, template=template,
                                 system=system, run=run, sampling_progress=sampling_progress,
                                 scoring_progress=scoring_progress, cache=cache, done_problems=done_problems)
        return
    run = run if run is not None else BestOfNRun()
    items = [p if isinstance(p, Problem) else Problem(id=index, question=p, record={})
             for index, p in enumerate(problems)]
    run.seed, _ = problem_seeds(len(items), settings.n, seed)
    if not items:
        return
    if isinstance(scorer, ScorerConfig):
        check_scorer(scorer)
    candidates = [candidate for group in sampled for candidate in group]
    todo = items[len(sampled):]
    if todo:
        opened = _open_generator(generator, cache)
        before = dataclasses.replace(opened.stats)
        try:
            step = round_problems or len(todo)
            for start in range(0, len(todo), step):
                first = len(sampled) + start
                fresh = sample_candidates(todo[start:start + step], opened, settings,
                                          seed=run.seed + first * settings.n, template=template, system=system,
                                          progress=sampling_progress)
                extract_all(fresh)
                if on_round is not None:
                    on_round(fresh)
                candidates.extend(fresh)
        finally:
            if opened is not generator:
                opened.close()
        # What this run did (a generator passed in may have served other runs); None when every sample came from
        # the cache and no generator ran.
        generation = _stats_since(before, opened.stats)
        run.generation = generation if generation.requests else None
    run.candidates = candidates
    groups = group_candidates(run.candidates)
    run.to_score = count_unique(groups[done_problems:])
    if on_sampled is not None:
        on_sampled(run.candidates)
    active: Scorer | None = None
    if run.to_score:
        active = lazy_scorer(scorer, cache)[0] if isinstance(scorer, ScorerConfig) else behind_cache(scorer, cache)
    scoring_before = dataclasses.replace(active.stats) if active is not None else None
    try:
        for ranked in score_groups(groups, active, progress=scoring_progress, skip_groups=done_problems):
            run.groups.append(ranked)
            yield ranked
    finally:
        if active is not None and scoring_before is not None:
            scoring = _stats_since(scoring_before, active.stats)
            run.scoring = scoring if scoring.texts else None  # None: every score came from the cache
            if isinstance(scorer, ScorerConfig):
                active.close()


def iter_adaptive(problems: Sequence[Problem | str], generator: Generator | GeneratorConfig,
                  scorer: Scorer | ScorerConfig, settings: SamplingSettings, stopping: StoppingRule, *,
                  seed: int | None = None, template: str | None = None, system: str | None = None,
                  run: BestOfNRun | None = None, sampling_progress: ProgressCallback | None = None,
                  scoring_progress: ProgressCallback | None = None, cache: Cache | None = None,
                  done_problems: int = 0) -> Iterator[list[Candidate]]:
    """Adaptive best-of-N: sample every unfinished problem in waves of `stopping.wave`, score each wave's new
    programs, and finish a problem when `stopping` holds or it has `settings.n` samples; yield each problem ranked,
    in problem order (a problem that stops early waits for the ones before it).

    Problem i's sample j has the seed it has in a run of all N (`seed + i * n + j`), so what a problem draws is a
    prefix of what the full run draws. Every candidate's record gets `samples_drawn` (how many samples its problem
    drew) and `stopped_by` (the rule that stopped it, None when it drew all N); `run.adaptive` sums up what was
    saved. The generator and the reward model are both open for the whole run (they take turns every wave), so on
    one GPU both must fit. `done_problems`: the first problems were written by an earlier run and are not sampled.
    `sampling_progress` is advanced by the samples drawn and, when a problem stops, by those it saved.
    """
    stopping.validate()
    if isinstance(generator, GeneratorConfig):
        generator.validate()
    run = run if run is not None else BestOfNRun()
    items = [p if isinstance(p, Problem) else Problem(id=index, question=p, record={})
             for index, p in enumerate(problems)]
    n = settings.n
    run.seed, _ = problem_seeds(len(items), n, seed)
    run.adaptive = AdaptiveSummary()
    pending = list(range(done_problems, len(items)))
    if not pending:
        return
    if isinstance(scorer, ScorerConfig):
        check_scorer(scorer)
    drawn: dict[int, list[Candidate]] = {position: [] for position in pending}
    finished: dict[int, list[Candidate]] = {}
    next_out = done_problems
    opened = _open_generator(generator, cache)
    generation_before = dataclasses.replace(opened.stats)
    active = lazy_scorer(scorer, cache)[0] if isinstance(scorer, ScorerConfig) else behind_cache(scorer, cache)
    scoring_before = dataclasses.replace(active.stats)
    try:
        for first, size in stopping.waves(n):
            if not pending:
                break
            fresh = sample_wave([(position, items[position]) for position in pending], opened, settings,
                                seed=run.seed, first=first, count=size, template=template, system=system,
                                progress=sampling_progress)
            extract_all(fresh)
            run.candidates.extend(fresh)
            wave: dict[int, list[Candidate]] = {position: [] for position in pending}
            for candidate in fresh:
                wave[candidate.index // n].append(candidate)
            _score_wave(wave, drawn, active, scoring_progress, run)
            still: list[int] = []
            for position in pending:
                samples = drawn[position]
                samples.extend(wave[position])
                reason = stopping.check((c.dedup_key if c.valid else None, c.score) for c in samples)
                if reason is None and len(samples) < n:
                    still.append(position)
                    continue
                for candidate in samples:
                    candidate.record["samples_drawn"] = len(samples)
                    candidate.record["stopped_by"] = reason
                run.adaptive.add(n, [int(c.record.get("completion_tokens") or 0) for c in samples], reason)
                if sampling_progress is not None and len(samples) < n:
                    sampling_progress(n - len(samples))  # the bar counts the budget: samples drawn or saved
                finished[position] = assign_ranks(list(samples))
                del drawn[position]
            pending = still
            while next_out in finished:
                ranked = finished.pop(next_out)
                run.groups.append(ranked)
                yield ranked
                next_out += 1
    finally:
        if opened is not generator:
            opened.close()
        generation = _stats_since(generation_before, opened.stats)
        run.generation = generation if generation.requests else None
        scoring = _stats_since(scoring_before, active.stats)
        run.scoring = scoring if scoring.texts else None
        if isinstance(scorer, ScorerConfig):
            active.close()


def _score_wave(wave: dict[int, list[Candidate]], drawn: dict[int, list[Candidate]], scorer: Scorer,
                progress: ProgressCallback | None, run: BestOfNRun) -> None:
    """Score the programs a wave brought that its problem had not seen; its repeats take their earlier score."""
    known = {position: unique_programs(drawn[position]) for position in wave}
    new = [[c for c in wave[position] if c.valid and scoring_key(c) not in known[position]] for position in wave]
    run.to_score += count_unique(new)
    for _ in score_groups(new, scorer, progress=progress):
        pass
    for position, candidates in wave.items():
        for candidate in candidates:
            earlier = known[position].get(scoring_key(candidate)) if candidate.valid else None
            if earlier is not None:
                apply_score(candidate, earlier.score)
                candidate.truncated, candidate.error = earlier.truncated, earlier.error


def _stats_since(before: StatsT, after: StatsT) -> StatsT:
    """What a backend did during this run (a backend passed in may have served other runs before)."""
    return dataclasses.replace(after, **{f.name: getattr(after, f.name) - getattr(before, f.name)
                                         for f in dataclasses.fields(after)})  # type: ignore[arg-type]


def _open_generator(generator: Generator | GeneratorConfig, cache: Cache | None) -> Generator:
    """The generator to sample with: behind the cache (which starts the real one only on a miss) when there is one."""
    if cache is None:
        return open_generator(generator) if isinstance(generator, GeneratorConfig) else generator
    from .runs.cache import CachedGenerator, generator_identity

    if isinstance(generator, GeneratorConfig):
        config = generator
        return CachedGenerator(lambda: open_generator(config), cache, generator_identity(config))
    return CachedGenerator(lambda: generator, cache, [type(generator).__name__, getattr(generator, "model", None)])


def lazy_scorer(config: ScorerConfig, cache: Cache | None = None) -> tuple[Scorer, LazyScorer]:
    """The configured scorer, loaded on its first texts (a run whose texts are all cached, or all invalid, loads no
    model), behind `cache` when given; and its LazyScorer (what was loaded, and how long it took)."""
    lazy = LazyScorer(config)
    if cache is None:
        return lazy, lazy
    from .runs.cache import CachedScorer, scorer_identity

    return CachedScorer(lazy, cache, scorer_identity(config)), lazy


def behind_cache(scorer: Scorer, cache: Cache | None) -> Scorer:
    """A scorer passed in (the caller owns and closes it), behind `cache` when given."""
    if cache is None:
        return scorer
    from .runs.cache import CachedScorer

    return CachedScorer(scorer, cache, [type(scorer).__name__, getattr(scorer, "model_name", None)])


def best_of_n(problems: Sequence[Problem | str], generator: Generator | GeneratorConfig,
              scorer: Scorer | ScorerConfig, settings: SamplingSettings | None = None, *,
              seed: int | None = None, template: str | None = None, system: str | None = None) -> BestOfNRun:
    """Best-of-N for each problem (a question string or a `Problem`): `run.best[i]` is problem i's best candidate.

        from codescaler_cli import GeneratorConfig, ScorerConfig, SamplingSettings, best_of_n

        run = best_of_n(["Write add(a, b)."], GeneratorConfig(model="Qwen/Qwen2.5-Coder-7B-Instruct"),
                        ScorerConfig(model="LARK-Lab/CodeScaler-4B"), SamplingSettings(n=16), seed=0)
        print(run.best[0].code, run.best[0].score)
    """
    run = BestOfNRun()
    for _ in iter_best_of_n(problems, generator, scorer, settings, seed=seed, template=template, system=system,
                            run=run):
        pass
    return run
