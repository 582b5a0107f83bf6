"""Best-of-N for a list of problems as one call: what `codescaler generate` runs.

Samples are drawn in rounds of problems and kept beside the output file (`.NAME.samples.jsonl`) as soon as each
round is drawn; once every problem is sampled (and the generator shut down), the reward model scores them and
each problem is appended to the output as soon as it is ranked. Problem i's samples come from seed
`seed + i * n` whatever run draws them, and rounds start at the same problems in every run, so a resumed run
(which takes the saved samples and the finished problems as they are) writes exactly what an uninterrupted one
writes. The samples file goes once every problem is in the output.

An adaptive run (a `--stop-*` rule) samples all problems in waves and writes each problem once its rule stops it
(in problem order); its records say how many samples the problem drew, so a resumed run finds the finished
problems by that count. It keeps no samples file: an interrupted problem is drawn again (from `--cache` when
there is one), with the same seeds, so the same samples.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from ..errors import write_error
from ..extraction import extract_candidate
from ..generation import Problem, problem_seeds
from ..backends.loading import REWARD, check_model
from ..generation.config import GeneratorConfig, check_generator
from ..pipeline import BestOfNRun, iter_best_of_n
from ..records import Candidate, dumps, group_candidates, group_hash
from ..scoring import DEFAULT_REWARD_MODEL, ScorerConfig
from .cache import Cache, cache_of
from .output import RunOutput
from .reporter import SILENT, ItemTally, Reporter, loading_text
from .resume import read_sample_groups, repair_output, samples_path
from .signals import uninterrupted

# Samples drawn per generator call: large batches, and an interrupt during sampling loses at most one round. On a
# CPU, where a round of 1024 samples of a real model takes hours (and the engine runs in waves of one scheduler step
# anyway), rounds are small: an interrupt keeps every problem sampled but the last few.
ROUND_SAMPLES = 1024
CPU_ROUND_SAMPLES = 16


def generate_solutions(problems: Sequence[Problem], generator: GeneratorConfig, scorer: ScorerConfig, *,
                       output: RunOutput | None = None, cache: Cache | Path | None = None,
                       on_ranked: Callable[[list[Candidate]], None] | None = None,
                       reporter: Reporter = SILENT, settings: dict[str, Any] | None = None) -> BestOfNRun:
    """Sample `generator.n` solutions per problem, extract, score and rank them, writing each problem's ranked
    candidates to `output` (and handing them to `on_ranked`) as it is ranked; returns what the run did.

        from codescaler_cli.runs import RunOutput, generate_solutions

        run = generate_solutions(read_problems("problems.jsonl"), GeneratorConfig(model="Qwen/Qwen2.5-Coder-7B-Instruct",
                                 n=16, seed=0), ScorerConfig(), output=RunOutput("all.jsonl", command="generate"))

    A resumed `output` reuses the base seed it recorded when `generator.seed` is None. `cache` (a Cache, or its
    directory) serves the samples and scores it holds. Candidates cut at the reward model's max length, and a
    summary, are told through `reporter`. `settings`: what else the problems depend on (a benchmark's selection,
    `BenchmarkConfig.selection_fingerprint()`), recorded with the models' settings so --resume checks it.
    """
    output = output if output is not None else RunOutput(None, command="generate")
    with cache_of(cache, reporter) as opened:
        run = _generate(problems, generator, scorer, output, opened, on_ranked, reporter, settings or {})
        if opened is not None and opened is not cache:  # a cache passed in is its owner's to report
            reporter.info(f"cache: samples {opened.sample_hits} hits, {opened.sample_misses} misses; scores "
                          f"{opened.score_hits} hits, {opened.score_misses} misses ({opened.directory})")
    if run.groups:
        reporter.info(run.describe())
    return run


def _generate(problems: Sequence[Problem], generator: GeneratorConfig, scorer: ScorerConfig, output: RunOutput,
              cache: Cache | None, on_ranked: Callable[[list[Candidate]], None] | None,
              reporter: Reporter, settings: dict[str, Any]) -> BestOfNRun:
    run = BestOfNRun()
    with output:
        seed = generator.seed if generator.seed is not None else output.recorded_setting("generator_seed")
        config = dataclasses.replace(generator, seed=problem_seeds(len(problems), generator.n, seed)[0])
        saved = _SavedSamples(output, problems, config.n, round_samples=_round_samples(config))
        adaptive = config.stopping.adaptive
        sizes = _written_sizes(output, problems, config.n) if adaptive else [config.n] * len(problems)
        done = output.start(config.fingerprint() | scorer.fingerprint() | settings, hashes=saved.hashes, sizes=sizes,
                            key_of=_problem_hash)
        sampled = saved.load() if output.resume and not adaptive else []
        if output.resume:
            reporter.info(output.describe_resume() + ("" if adaptive else f"; samples of {len(sampled)} are saved"))
        if done.groups == len(problems):
            saved.discard()
            return run
        # Both models' kinds, from their configs, in seconds: the reward model's first (its other checks come first
        # too), then the generator's; after the settings of a resumed run, before anything loads.
        if not scorer.urls:
            check_model(scorer.model or DEFAULT_REWARD_MODEL, scorer.revision, REWARD)
        check_generator(generator)
        tally = ItemTally(reporter, scorer.max_length, sample_name)
        # Adaptive: the problems not yet written, each up to N (a problem that stops early advances by what it saved).
        # What each phase shows while its model loads; the scoring phase shows once sampling is done.
        first = done.groups if adaptive else len(sampled)
        advance_sampling = reporter.phase("Sampling", (len(problems) - first) * config.n,
                                          waiting=None if config.urls else "Loading the generator")
        advance_scoring = reporter.phase("Scoring", waiting=loading_text(scorer))
        try:
            for ranked in iter_best_of_n(problems, config, scorer, run=run, cache=cache, sampled=sampled,
                                         done_problems=done.groups, round_problems=saved.round_problems,
                                         on_round=saved.save,
                                         on_sampled=lambda _: reporter.set_total("Scoring", run.to_score),
                                         sampling_progress=advance_sampling, scoring_progress=advance_scoring):
                tally.add(ranked)
                output.write([[c.scored_record() for c in ranked]],
                             also=(lambda: on_ranked(ranked)) if on_ranked is not None else None)
        finally:
            saved.close()
        tally.finish()
        saved.discard()  # every problem is in the output now
    return run


def _written_sizes(output: RunOutput, problems: Sequence[Problem], n: int) -> list[int]:
    """Records per problem of an adaptive run's output: a problem's `samples_drawn` where the file already holds its
    first record (a resumed run), else N. Read leniently: `output.start` checks and repairs the file after this."""
    sizes = [n] * len(problems)
    if not output.resume or output.path is None or not output.path.exists():
        return sizes
    position = offset = 0
    with open(output.path, "rb") as handle:
        for raw in handle:
            if position >= len(problems) or not raw.endswith(b"\n"):
                break
            try:
                record = json.loads(raw)
                drawn = record["samples_drawn"]
            except (ValueError, KeyError, TypeError):
                break
            if offset == 0 and isinstance(drawn, int) and not isinstance(drawn, bool) and 1 <= drawn <= n:
                sizes[position] = drawn
            offset += 1
            if offset >= sizes[position]:
                position, offset = position + 1, 0
    return sizes


def _round_samples(generator: GeneratorConfig) -> int:
    """Samples per round: small for an in-process engine on CPU, large elsewhere."""
    if generator.urls:
        return ROUND_SAMPLES
    from ..backends.vllm import cuda_available

    return ROUND_SAMPLES if cuda_available() else CPU_ROUND_SAMPLES


def sample_name(candidate: Candidate) -> str:
    """How messages name a sample: its problem and its number."""
    return f"problem {candidate.record.get('id')!r} sample {candidate.record.get('sample')}"


def _problem_hash(record: dict[str, Any]) -> int:
    return group_hash(("id", record.get("id")))


class _SavedSamples:
    """The samples drawn but not yet scored into the output, kept beside it in whole rounds of problems."""

    def __init__(self, output: RunOutput, problems: Sequence[Problem], n: int, *,
                 round_samples: int = ROUND_SAMPLES) -> None:
        self.output = output
        self.problems = problems
        self.path = samples_path(output.path) if output.path is not None else None
        self.hashes = [group_hash(("id", problem.id)) for problem in problems]
        self.sizes = [n] * len(problems)
        self.round_problems = max(1, round_samples // n)
        self._file: IO[str] | None = None

    def load(self) -> list[list[Candidate]]:
        """The saved samples of the first problems, as the candidates they were (extracted again)."""
        if self.path is None:
            return []
        available = repair_output(self.path, self.hashes, self.sizes, _problem_hash).groups
        # A partial round is drawn again whole: the same batches as an uninterrupted run, so the same samples.
        usable = available if available == len(self.problems) else \
            available // self.round_problems * self.round_problems
        if usable < available:
            repair_output(self.path, self.hashes, self.sizes, _problem_hash, keep=usable)
        self.output.samples_saved = usable
        return [[_candidate_from_sample(record, self.problems[position], index) for index, record in enumerate(group)]
                for position, group in enumerate(read_sample_groups(self.path, usable))]

    def save(self, candidates: list[Candidate]) -> None:
        """Keep a round's samples (from here on the output file belongs to this run)."""
        if self.path is None:
            return
        self.output.open()
        groups = group_candidates(candidates)
        text = "".join(dumps(_sample_record(c)) + "\n" for group in groups for c in group)
        with uninterrupted():
            try:
                if self._file is None:
                    self._file = open(self.path, "a", encoding="utf-8")
                self._file.write(text)
                self._file.flush()
            except OSError as exc:
                raise write_error(f"{self.path} (the samples drawn, kept for --resume)", exc) from None
            self.output.samples_saved += len(groups)

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError:
                pass  # every write was flushed and checked; a failing close has nothing left to lose

    def discard(self) -> None:
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _sample_record(candidate: Candidate) -> dict[str, Any]:
    """A sample as saved before scoring: the record, its extracted code and validity, and any error."""
    record = candidate.extracted_record()
    if candidate.error is not None:
        record["error"] = candidate.error
    return record


def _candidate_from_sample(record: dict[str, Any], problem: Problem, index: int) -> Candidate:
    """A saved sample as the candidate it was: the record without what extraction adds (extracted again)."""
    original = {key: value for key, value in record.items() if key not in ("code", "valid", "error")}
    response = original.get("response")
    candidate = Candidate(record=original, source=problem.source, line=problem.line, index=index,
                          question=problem.question, response=response if isinstance(response, str) else "",
                          given_code=None, group_key=("id", problem.id))
    candidate.error = record.get("error")
    return extract_candidate(candidate)
