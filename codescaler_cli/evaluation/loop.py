"""The evaluation loop, which `codescaler eval` and the Python API both run: score the candidates that carry no
scores (when a reward model is given), run their public tests (what a selection strategy may use, timed on its
own for the latency comparison) and then all their tests in the sandbox, and summarise.

With a resumable output file, problems are tested in chunks of whole problems and each chunk's records are
written (with the seconds so far, beside the file) before the next starts; a resumed run reads the verdicts of
the problems already in the file back instead of running them again.

With `--generated-tests K` a generator first writes assert tests for every problem (CodeT), and each chunk's
candidates run them after their own tests; their verdicts go into the records (`generated_passed`).
"""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from ..errors import InputError, UsageError
from ..generation import Generator
from ..generation.config import GeneratorConfig
from ..pipeline import lazy_scorer, score_groups
from ..records import group_candidates, group_hash
from ..runs.cache import Cache, cache_of
from ..runs.output import RunOutput
from ..runs.reporter import SILENT, ProgressCallback, Reporter, loading_text
from ..scoring import ScorerConfig
from ..scoring.base import Scorer
from .candidates import EvalCandidate, from_candidates, has_scores, read_eval_candidates, record_problem_key
from .config import EvalConfig, file_sha256
from .execution import STATUSES
from .generated_tests import run_generated_tests, write_tests
from .problems import EvalProblem, generation_problem
from .report import GeneratedTestsTiming, Report, summarize
from .runner import Timings, run_chunk
from .sandbox import Sandbox

# With a resumable output, problems are tested in chunks of whole problems, at least this many candidates per
# sandbox worker (enough to keep the workers busy), and each chunk's records are written before the next starts.
CHUNK_CANDIDATES_PER_JOB = 8


def run_evaluation(config: EvalConfig, candidates_file: str | Path | None = None, *,
                   generator: GeneratorConfig | None = None, scorer: ScorerConfig | None = None,
                   output: RunOutput | None = None, cache: Cache | Path | None = None,
                   stdin: IO[bytes] | None = None, reporter: Reporter = SILENT) -> Report:
    """What `codescaler eval` runs: the problems of `config`; the candidates read from `candidates_file` ('-':
    `stdin`), or sampled, scored and ranked with `generator` and `scorer` (best-of-N); then `evaluate`. `cache`
    (a Cache, or its directory) serves the samples and scores it holds."""
    with cache_of(cache, reporter) as opened:
        return _run_evaluation(config, candidates_file, generator, scorer, output, opened, stdin, reporter)


def _run_evaluation(config: EvalConfig, candidates_file: str | Path | None, generator: GeneratorConfig | None,
                    scorer: ScorerConfig | None, output: RunOutput | None, cache: Cache | None,
                    stdin: IO[bytes] | None, reporter: Reporter) -> Report:
    output = output if output is not None else RunOutput(None, command="eval")
    if config.generated_tests is not None and generator is None:
        raise UsageError("--generated-tests needs a generator to write the tests",
                         "add -m MODEL or --base-url URL (with a CANDIDATES file it only writes tests)")
    if generator is not None and candidates_file is not None and config.generated_tests is None:
        raise UsageError("give either a CANDIDATES file or -m/--base-url to generate them, not both",
                         "with a CANDIDATES file, -m/--base-url only writes tests for --generated-tests K")
    test_writer = generator if config.generated_tests is not None else None
    if candidates_file is not None:
        generator = None  # the generator writes tests only
    if generator is not None and output.resume:
        source = config.describe_problems()
        raise UsageError("--resume cannot continue a run that generates its candidates (-m/--base-url)",
                         f"generate them resumably first, then evaluate them resumably: codescaler generate "
                         f"--problems PROBLEMS.jsonl -n {generator.n} -o samples.jsonl --resume (records {{\"id\", "
                         f"\"question\"}}), then codescaler eval samples.jsonl {source} -o {output.path} --resume")
    if config.benchmark is None and config.problems_file is None:
        raise UsageError("give exactly one of --benchmark NAME or --problems FILE",
                         _benchmark_hint(candidates_file) or "e.g. codescaler eval samples.jsonl --benchmark humaneval")
    problems = config.load_problems()
    # The sandbox opens before any model loads or sample is drawn: a refused isolation fails in a second.
    with config.open_sandbox(problems) as sandbox:
        reporter.info(f"isolation: {sandbox.describe()}")
        scoring_seconds = digest = None
        if generator is not None:
            candidates, scoring_seconds = _generate(problems, generator, scorer or ScorerConfig(), cache, reporter)
            scorer = None  # scored and ranked already
        else:
            candidates, digest = _read_candidates(candidates_file or "-", problems, config, stdin,
                                                  digest=output.resumable and output.path is not None)
        covered = {c.problem.key for c in candidates}
        missing = [p for p in problems if p.key not in covered]
        if missing:
            reporter.info(f"note: {len(missing)} of {len(problems)} problems have no candidates and are not counted "
                          f"(e.g. {missing[0].id})")
        report = evaluate(candidates, config, scorer=scorer, sandbox=sandbox, output=output, cache=cache,
                          candidates_sha256=digest, scoring_seconds=scoring_seconds, reporter=reporter,
                          test_writer=test_writer)
    if cache is not None:
        samples = f"samples {cache.sample_hits} hits, {cache.sample_misses} misses; " if generator else ""
        reporter.info(f"cache: {samples}scores {cache.score_hits} hits, {cache.score_misses} misses "
                      f"({cache.directory})")
    return report


# Problem ids that say which benchmark the candidates answer, and the benchmark (with its harder variant).
_BENCHMARK_IDS = ((re.compile(r"HumanEval/\d+"), "humaneval", "humaneval-plus"),
                  (re.compile(r"Mbpp/\d+"), "mbpp-plus", None))


def _benchmark_hint(candidates_file: str | Path | None) -> str | None:
    """The --benchmark the candidates' ids point at (all `HumanEval/N`: humaneval), from the file's first records."""
    if candidates_file is None or str(candidates_file) == "-":
        return None
    keys: list[str] = []
    try:
        with open(candidates_file, encoding="utf-8", errors="replace") as handle:
            for line in itertools.islice(handle, 100):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                key = record_problem_key(record) if isinstance(record, dict) else None
                if key is not None:
                    keys.append(key)
    except OSError:
        return None
    for pattern, name, harder in _BENCHMARK_IDS:
        if keys and all(pattern.fullmatch(key) for key in keys):
            also = f" (or --benchmark {harder}, with its extra tests)" if harder else ""
            return (f"the candidates' ids ({keys[0]}, ...) are {name}'s: add --benchmark {name}{also}, e.g. "
                    f"codescaler eval {candidates_file} --benchmark {name}")
    return None


def evaluate(candidates: Sequence[EvalCandidate], config: EvalConfig = EvalConfig(), *,
             scorer: Scorer | ScorerConfig | None = None, sandbox: Sandbox | None = None,
             output: RunOutput | None = None, cache: Cache | None = None, candidates_sha256: str | None = None,
             scoring_seconds: float | None = None, reporter: Reporter = SILENT,
             test_writer: Generator | GeneratorConfig | None = None) -> Report:
    """Score (when `scorer` is given and the candidates carry no scores), run public then all tests, summarise.

        from codescaler_cli.evaluation import EvalConfig, evaluate, load_benchmark, read_eval_candidates

        candidates = read_eval_candidates("samples.jsonl", load_benchmark("humaneval"))
        report = evaluate(candidates, EvalConfig(jobs=8, isolation="bwrap"), scorer=ScorerConfig())

    Without scores, the strategies that need a reward model are left out of the report. Fills each candidate's
    `public` and `result`. `output` gets every candidate's record; resuming it needs `candidates_sha256` (the
    candidates' identity) to match. `scoring_seconds`: what scoring these candidates took before (best-of-N's).
    With `config.generated_tests` K, `test_writer` (a generator) writes K samples of tests per problem and every
    candidate runs them (CodeT); a resumed run writes them again, from the seed the first run recorded.
    """
    if sandbox is None:
        with config.open_sandbox([c.problem for c in candidates]) as own:
            return evaluate(candidates, config, scorer=scorer, sandbox=own, output=output, cache=cache,
                            candidates_sha256=candidates_sha256, scoring_seconds=scoring_seconds, reporter=reporter,
                            test_writer=test_writer)
    if config.generated_tests is not None and test_writer is None:
        raise UsageError("--generated-tests needs a generator to write the tests", "add -m MODEL or --base-url URL")
    output = output if output is not None else RunOutput(None, command="eval")
    scored = has_scores(candidates)
    score_here = scorer is not None and not scored
    if scorer is not None and scored:
        reporter.info("note: the records carry scores; using them (-r is not needed)")
    elif scorer is None and not scored:
        count = sum("score" in c.candidate.record for c in candidates)
        why = f"{len(candidates) - count} of {len(candidates)} records have no score" if count \
            else "the records have no scores"
        reporter.info(f"note: {why} and no -r was given: the reward-model strategies are left out")
    groups = problem_groups(candidates)
    settings = config.fingerprint(sandbox) | {"candidates_sha256": candidates_sha256}
    if score_here and isinstance(scorer, ScorerConfig):
        settings |= scorer.fingerprint()
    writing = config.generated_tests is not None and test_writer is not None
    if writing:
        settings |= _test_writer_settings(config, test_writer, output)
    timings, timed = Timings(scoring=scoring_seconds), 0  # `timed`: problems whose test seconds `timings` holds
    generated: GeneratedTestsTiming | None = None
    with output:
        done = output.start(settings, hashes=[group_hash(("id", group[0].problem.key)) for group in groups],
                            sizes=[len(group) for group in groups],
                            key_of=lambda record: group_hash(("id", record_problem_key(record))))
        if output.resume:
            reporter.info(output.describe_resume())
            _restore(output, [c for group in groups[:done.groups] for c in group], scores=score_here)
            timings, timed = _restored_timings(output.recorded_state, done.groups)
            output.save_state(_state(timings, timed))
        if writing:
            assert test_writer is not None and config.generated_tests is not None
            written = write_tests([group[0].problem for group in groups], test_writer, config.generated_tests,
                                  seed=settings["test_seed"], cache=cache,
                                  progress=reporter.phase("Writing tests", len(groups) * config.generated_tests))
            generated = GeneratedTestsTiming(tests=written.total, problems=sum(1 for t in written.tests.values() if t),
                                             generation=written.seconds, execution=0.0, written=written.tests)
            if timed:
                generated.execution, generated.execution_processes = _restored_generated(output.recorded_state)
        if score_here and done.groups < len(groups):
            assert scorer is not None
            seconds, load = _score(candidates, groups, done.groups, scorer, cache, reporter)
            if timings.scoring is None:  # what scoring every candidate took (a resumed run re-scores what it must)
                timings.scoring, timings.scoring_load = seconds, load
                output.save_state(_state(timings, timed))
        remaining = groups[done.groups:]
        to_run = [c for group in remaining for c in group]
        with_public = sum(1 for c in to_run if c.problem.public_tests)
        advance_public = reporter.phase("Public tests", with_public) if with_public else None
        advance_all = reporter.phase("All tests", len(to_run)) if to_run else None
        advance_generated = reporter.phase("Generated tests", len(to_run)) if to_run and writing else None
        resumable = output.resumable and output.path is not None
        for chunk in problem_chunks(remaining, CHUNK_CANDIDATES_PER_JOB * sandbox.jobs if resumable else None):
            run_chunk([c for group in chunk for c in group], sandbox, timings, test_timeout=config.test_timeout,
                      limits=config.limits, public_progress=advance_public, all_progress=advance_all)
            if generated is not None:
                wall, processes = run_generated_tests([c for group in chunk for c in group], written.tests, sandbox,
                                                      test_timeout=config.test_timeout, limits=config.limits,
                                                      progress=advance_generated)
                generated.execution += wall
                generated.execution_processes += processes
            timed += len(chunk)
            output.write([[c.record() for c in group] for group in chunk], state=_state(timings, timed, generated))
    report = summarize(candidates, with_reward=scored or score_here, timings=timings, isolation=sandbox.isolation,
                       isolation_detail=sandbox.describe(), cost=config.cost, generated=generated)
    if done.groups:
        report.notes.append(_resumed_note(output, done.groups, len(groups), timed))
    if cache is not None and cache.score_hits:
        total = cache.score_hits + cache.score_misses
        report.notes.append(f"{cache.score_hits} of {total} reward scores came from the cache ({cache.directory}): "
                            f"the reward model's seconds cover the other {cache.score_misses}")
    return report


def score_candidates(candidates: Sequence[EvalCandidate], scorer: Scorer,
                     progress: ProgressCallback | None = None, *, skip_groups: int = 0) -> float:
    """Score every distinct valid program with the reward model and rank each problem's candidates.

    `skip_groups`: the first problems (in first-seen order) are already scored and ranked (a resumed run); the
    rest are scored in the same chunks as in a run that scores them all, so their scores are the same to the bit.
    Returns the seconds the scorer spent.
    """
    before = scorer.stats.seconds
    groups = group_candidates(c.candidate for c in candidates)
    for _ in score_groups(groups, scorer, progress=progress, skip_groups=skip_groups):
        pass
    return scorer.stats.seconds - before


def problem_groups(candidates: Sequence[EvalCandidate]) -> list[list[EvalCandidate]]:
    """Candidates per problem, problems in first-seen order, each problem's candidates in input order."""
    groups: dict[str, list[EvalCandidate]] = {}
    for candidate in candidates:
        groups.setdefault(candidate.problem.key, []).append(candidate)
    return list(groups.values())


def problem_chunks(groups: Sequence[list[EvalCandidate]], programs: int | None) -> list[list[list[EvalCandidate]]]:
    """Whole problems in chunks of at least `programs` candidates (the last may be smaller); None: one chunk."""
    if programs is None:
        return [list(groups)] if groups else []
    chunks: list[list[list[EvalCandidate]]] = []
    chunk: list[list[EvalCandidate]] = []
    size = 0
    for group in groups:
        chunk.append(group)
        size += len(group)
        if size >= programs:
            chunks.append(chunk)
            chunk, size = [], 0
    if chunk:
        chunks.append(chunk)
    return chunks


def _score(candidates: Sequence[EvalCandidate], groups: list[list[EvalCandidate]], done: int,
           scorer: Scorer | ScorerConfig, cache: Cache | None, reporter: Reporter) -> tuple[float, float]:
    """Score the problems after the first `done`; the seconds are the model's (for the texts the cache lacked),
    and its loading's."""
    todo = [c for group in groups[done:] for c in group]
    active, lazy = lazy_scorer(scorer, cache) if isinstance(scorer, ScorerConfig) else (scorer, None)
    try:
        waiting = loading_text(scorer) if isinstance(scorer, ScorerConfig) else None
        advance = reporter.phase("Scoring", len({(c.problem.key, c.candidate.dedup_key) for c in todo
                                                 if c.candidate.valid}), waiting=waiting)
        seconds = score_candidates(candidates, active, advance, skip_groups=done)
    finally:
        if lazy is not None:
            active.close()
    failed = [c for c in todo if c.candidate.error is not None]
    if failed:
        reporter.warn(f"{len(failed)} candidates could not be scored ({failed[0].candidate.error}); they rank last")
    return seconds, lazy.load_seconds if lazy is not None else 0.0


def _read_candidates(path: str | Path, problems: list[EvalProblem], config: EvalConfig, stdin: IO[bytes] | None,
                     *, digest: bool) -> tuple[list[EvalCandidate], str | None]:
    """The candidates, and (with `digest`) the SHA-256 of their bytes: a resumed run must read the same ones.

    Standard input is spooled to a temporary file first, so it can be hashed and read; resuming then means piping
    the same candidates in again.
    """
    name = config.describe_problems() if config.benchmark else str(config.problems_file)
    stdin = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
    sha = None
    with tempfile.TemporaryFile() as spool:
        if digest and str(path) == "-":
            assert stdin is not None
            shutil.copyfileobj(stdin, spool, 1 << 20)
            spool.seek(0)
            sha = file_sha256(spool)
            spool.seek(0)
            stdin = spool
        elif digest:
            try:
                with open(path, "rb") as handle:
                    sha = file_sha256(handle)
            except OSError:
                pass  # read_eval_candidates names the problem
        candidates = read_eval_candidates(path, problems, stdin=stdin, problems_name=name,
                                          skip_unknown=config.selecting)
    if not candidates:
        raise InputError(str(path) if str(path) != "-" else "<stdin>", None, "no candidates",
                         "one JSON record per line, e.g. {\"task_id\": \"HumanEval/0\", \"completion\": ...}")
    return candidates, sha


def _generate(problems: list[EvalProblem], generator: GeneratorConfig, scorer: ScorerConfig, cache: Cache | None,
              reporter: Reporter) -> tuple[list[EvalCandidate], float | None]:
    """Best-of-N's candidates for the problems (sampled, scored, ranked), and the seconds scoring took."""
    from ..runs.generate import generate_solutions

    run = generate_solutions([generation_problem(p) for p in problems], generator, scorer, cache=cache, reporter=reporter)
    failed = [c for c in run.candidates if c.error is not None]
    if failed:
        reporter.warn(f"{len(failed)} samples failed ({failed[0].error}); they count as wrong answers")
    return from_candidates(run.candidates, problems), run.scoring.seconds if run.scoring else None


def _state(timings: Timings, timed: int, generated: GeneratedTestsTiming | None = None) -> dict[str, Any]:
    """The seconds so far, kept beside the output file: `problems` is how many problems' tests they cover."""
    state: dict[str, Any] = {"problems": timed, "seconds": asdict(timings)}
    if generated is not None:
        state["generated_tests_seconds"] = [generated.execution, generated.execution_processes]
    return state


def _restored_generated(state: dict[str, Any] | None) -> tuple[float, float]:
    """The seconds an earlier run spent running generated tests on the problems it finished."""
    try:
        wall, processes = (state or {})["generated_tests_seconds"]
        return float(wall), float(processes)
    except (KeyError, TypeError, ValueError):
        return 0.0, 0.0


def _test_writer_settings(config: EvalConfig, writer: Generator | GeneratorConfig,
                          output: RunOutput) -> dict[str, Any]:
    """What generated tests depend on, for a resumed run's settings check: K, the generator, and the seed (drawn
    when not given, recorded, and reused by --resume so the same tests are written)."""
    settings: dict[str, Any] = {"generated_tests": config.generated_tests}
    if isinstance(writer, GeneratorConfig):
        settings |= {f"test_{key}": value for key, value in writer.fingerprint().items()
                     if key in ("generator_model", "generator_revision", "generator_temperature", "generator_top_p",
                                "generator_max_tokens", "generator_system")}
        seed = writer.seed
    else:
        settings["test_generator_model"] = getattr(writer, "model", type(writer).__name__)
        seed = None
    if seed is None:
        seed = output.recorded_setting("test_seed") if output.resume else None
    settings["test_seed"] = seed if seed is not None else random.SystemRandom().randrange(2**31 - 2**20)
    return settings


def _restored_timings(state: dict[str, Any] | None, done: int) -> tuple[Timings, int]:
    """The seconds the finished chunks of an earlier run took, and how many problems they cover."""
    if state is None or not isinstance(state.get("seconds"), dict):
        return Timings(), 0
    try:
        timings, timed = Timings(**state["seconds"]), int(state.get("problems", 0))
    except (TypeError, ValueError):
        return Timings(), 0
    if timed > done:
        # The file holds fewer problems than the seconds cover (cut by hand?): those tests run again, and their
        # seconds must not count twice. Scoring covered every candidate either way.
        return Timings(scoring=timings.scoring, scoring_load=timings.scoring_load), 0
    return timings, timed


def _restore(output: RunOutput, candidates: list[EvalCandidate], *, scores: bool) -> None:
    """The verdicts (and with `scores`, the scores and ranks) of the output's complete problems, put back into
    their candidates."""
    assert output.path is not None
    for candidate, (number, record) in zip(candidates, output.done_records()):
        if record.get("code") != candidate.candidate.code or record.get("status") not in STATUSES:
            raise InputError(str(output.path), number, "this record is not the verdict of the input's candidate at "
                             "this place: the output file was written from other candidates",
                             "resume with the input this file was written from, or use another --output")
        try:
            candidate.restore(record, scores=scores)
        except (KeyError, TypeError, ValueError):
            raise InputError(str(output.path), number, "the record lacks its test verdicts (passed, status, "
                             "tests_passed, tests_total)",
                             f"run without --resume to start over (this replaces {output.path})") from None


def _resumed_note(output: RunOutput, restored: int, total: int, timed: int) -> str:
    note = (f"resumed: {restored} of {total} problems were tested by an earlier run (verdicts read back from "
            f"{output.path}); the seconds add up the chunks of problems each run finished (tests cut off by the "
            "interruption are not counted)")
    if timed < total:
        note += (f"; the test seconds of {total - timed} problems are missing (an earlier run tested them but its "
                 "recorded seconds do not match -o: killed between writing them and recording their seconds, or "
                 "-o was cut afterwards)")
    return note
