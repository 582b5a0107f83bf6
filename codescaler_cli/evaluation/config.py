"""An evaluation's settings in one object: where its problems come from, how candidates are tested, and what the
report adds (the stopping rules replayed and calibrated, tests written by the generator for CodeT)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import UsageError
from ..generation import Problem
from ..stopping import DEFAULT_WAVE
from .adaptive import DEFAULT_ORDERS
from .benchmarks import (
    BENCHMARKS,
    AnyProblem,
    BenchmarkSelection,
    get_benchmark,
    load_selection,
    parse_day,
    select_problems,
)
from .problems import EvalProblem, generation_problem, read_problems_file
from .report import CostSettings
from .sandbox import ISOLATIONS, Limits, Sandbox


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class BenchmarkConfig:
    """A built-in `benchmark` and which of its problems to use (a LiveCodeBench window, the first `limit` or a
    `sample`): the problem selection `eval` and `generate` share. Each field's `metadata["help"]` is its option's
    help."""

    benchmark: str | None = field(default=None, metadata=_help(
        f"A built-in benchmark ({', '.join(BENCHMARKS[:2])}, livecodebench, ...: `codescaler benchmarks`), graded "
        "as its own harness grades."))
    release: str | None = field(default=None, metadata=_help(
        "LiveCodeBench release: every problem released up to it."))
    since: str | None = field(default=None, metadata=_help(
        "LiveCodeBench: only problems from contests on or after this day."))
    until: str | None = field(default=None, metadata=_help(
        "LiveCodeBench: only problems from contests before this day (as LiveCodeBench counts it)."))
    limit: int | None = field(default=None, metadata=_help("Only the first N problems."))
    sample: int | None = field(default=None, metadata=_help(
        "N problems drawn at random (with --sample-seed), kept in the benchmark's order."))
    sample_seed: int = field(default=0, metadata=_help("Seed of --sample's draw."))

    @property
    def selection(self) -> BenchmarkSelection:
        """Which of the problems to use (a LiveCodeBench window, --limit or --sample)."""
        return BenchmarkSelection(release=self.release, since=parse_day(self.since, "--since"),
                                  until=parse_day(self.until, "--until"), limit=self.limit, sample=self.sample,
                                  seed=self.sample_seed)

    @property
    def selecting(self) -> bool:
        """Whether the selection leaves problems out: candidates of other problems are then skipped, not errors."""
        selection = self.selection
        return selection != BenchmarkSelection(seed=selection.seed)

    def describe_selection(self) -> list[str]:
        """The benchmark and its selection as options, e.g. `--benchmark livecodebench --release v6 --limit 20`
        (without a benchmark: the selection only)."""
        parts = [f"--benchmark {get_benchmark(self.benchmark).name}"] if self.benchmark is not None else []
        for flag, value in (("--release", self.release), ("--since", self.since), ("--until", self.until),
                            ("--limit", self.limit), ("--sample", self.sample)):
            if value is not None:
                parts.append(f"{flag} {value}")
        if self.sample is not None:
            parts.append(f"--sample-seed {self.sample_seed}")
        return parts

    def load_benchmark(self) -> list[EvalProblem]:
        """The benchmark's problems (fetched into, or read from, the Hugging Face cache), selected."""
        if self.benchmark is None:
            raise UsageError("no --benchmark NAME given", "e.g. --benchmark humaneval (codescaler benchmarks lists "
                             "them)")
        problems = load_selection(get_benchmark(self.benchmark), self.selection)
        if not problems:
            raise UsageError(f"no problems of {' '.join(self.describe_selection())} match the selection",
                             "widen --since/--until, or pick another --release")
        return problems

    def select(self, read: Callable[[], list[AnyProblem]]) -> list[AnyProblem]:
        """The problems `read` returns (a --problems file's), with --limit / --sample applied; a LiveCodeBench window
        needs the benchmark, and is refused before anything is read."""
        if self.selection.windowed:
            raise UsageError("--release, --since and --until select LiveCodeBench problems by contest date: use "
                             "them with --benchmark livecodebench", "with --problems FILE use --limit or --sample")
        return select_problems(read(), self.selection)

    def generation_problems(self) -> list[Problem]:
        """The benchmark's selected problems as generate samples them: each its statement and starter code, under
        the benchmark's id (what `eval --benchmark` matches candidates by)."""
        return [generation_problem(problem) for problem in self.load_benchmark()]

    def selection_fingerprint(self) -> dict[str, Any]:
        """The benchmark and selection, for the settings check of a resumed run."""
        return {"benchmark": get_benchmark(self.benchmark).name if self.benchmark is not None else None,
                "release": self.release, "since": self.since, "until": self.until, "limit": self.limit,
                "sample": self.sample, "sample_seed": self.sample_seed if self.sample is not None else None}


@dataclass
class EvalConfig(BenchmarkConfig):
    """The problems (a built-in `benchmark`, selected, or a `problems_file`) and the sandbox the candidates' tests
    run in. Each field's `metadata["help"]` says what it does (the CLI's option help is that text)."""

    problems_file: Path | None = field(default=None, metadata=_help(
        "Problems with tests as their benchmark publishes them (HumanEval, MBPP, LiveCodeBench, ...; JSONL, JSON, "
        ".gz or parquet)."))
    isolation: str = field(default="auto", metadata=_help(
        "auto: bubblewrap when it works here, else the weaker fallback; bwrap; fallback."))
    jobs: int | None = field(default=None, metadata=_help("Programs run in parallel. Default: the number of cores."))
    test_timeout: float | None = field(default=None, metadata=_help(
        "Seconds one test may run (CPU and wall clock). Default: the benchmark's own (LiveCodeBench 6 s, the "
        "paper's sets 2 s, HumanEval 3 s, ...)."))
    memory_mb: int = field(default=2048, metadata=_help(
        "Memory limit of a program in MiB: all its processes together where control groups are available (see "
        "codescaler env), else each process's address space."))
    python: str | None = field(default=None, metadata=_help(
        "The Python interpreter programs run under (default: ours when the sandbox user can run it, else the "
        "system's python3); named on stderr and in the report."))
    calibrate: float | None = field(default=None, metadata=_help(
        "Print the cheapest stopping rule within EPS (0.01: one point) of full-N accuracy, as generate options."))
    replay_orders: int = field(default=DEFAULT_ORDERS, metadata=_help(
        "Random orders of each problem's samples the stopping rules are replayed in (besides sample order)."))
    replay_seed: int = field(default=0, metadata=_help("Seed of the replay's random orders."))
    generated_tests: int | None = field(default=None, metadata=_help(
        "CodeT: the generator (-m) writes K samples of tests per problem, ranked by dual agreement."))
    wave: int = field(default=DEFAULT_WAVE, metadata=_help(
        "Samples per wave in the stopping rules' replay (eval's --wave fills it)."))

    def validate(self) -> None:
        if self.isolation not in ISOLATIONS:
            raise UsageError(f"unknown --isolation '{self.isolation}'", f"use one of: {', '.join(ISOLATIONS)}")
        if self.calibrate is not None and not 0.0 <= self.calibrate < 1.0:
            raise UsageError(f"--calibrate {self.calibrate}: EPS is the accuracy a rule may lose, as a fraction",
                             "e.g. --calibrate 0.01 for one percentage point")

    @property
    def cost(self) -> CostSettings:
        """How the report replays the stopping rules."""
        return CostSettings(wave=self.wave, orders=self.replay_orders, seed=self.replay_seed,
                            calibrate=self.calibrate)

    @property
    def limits(self) -> Limits:
        return Limits(memory_bytes=self.memory_mb * 1024 * 1024)

    def describe_problems(self) -> str:
        """The problems as options, e.g. `--benchmark livecodebench --release v6 --limit 20`."""
        parts = self.describe_selection()
        return " ".join(parts if self.benchmark is not None else [f"--problems {self.problems_file}", *parts])

    def load_problems(self) -> list[EvalProblem]:
        """The problems of the benchmark (fetched into, or read from, the Hugging Face cache) or of the file,
        selected."""
        if (self.benchmark is None) == (self.problems_file is None):
            raise UsageError("give exactly one of --benchmark NAME or --problems FILE",
                             "e.g. codescaler eval samples.jsonl --benchmark humaneval")
        if self.benchmark is not None:
            return self.load_benchmark()
        problems_file = self.problems_file
        assert problems_file is not None
        return self.select(lambda: read_problems_file(problems_file))

    def open_sandbox(self, problems: Sequence[EvalProblem] = ()) -> Sandbox:
        """The sandbox the tests of `problems` run in, with the modules their grading rules' programs import
        preloaded."""
        self.validate()
        preload = dict.fromkeys(module for rules in dict.fromkeys(p.grading for p in problems)
                                for module in rules.preload)
        return Sandbox(isolation=self.isolation, jobs=self.jobs, python=self.python, preload=tuple(preload))

    def fingerprint(self, sandbox: Sandbox) -> dict[str, Any]:
        """What verdicts depend on, for the settings check of a resumed run: the problems (by content), the
        limits, and the isolation `sandbox` runs with. Its `jobs` count too when not running as root: the programs
        then share one uid and its process limit, which grows with the jobs (as root each program has a uid and
        a limit of its own, and the jobs may change)."""
        problems_digest = None
        if self.problems_file is not None:
            try:
                with open(self.problems_file, "rb") as handle:
                    problems_digest = file_sha256(handle)
            except OSError:
                pass
        settings: dict[str, Any] = self.selection_fingerprint() | {
            "problems_file": str(Path(self.problems_file).resolve()) if self.problems_file is not None else None,
            "problems_sha256": problems_digest, "test_timeout": self.test_timeout, "memory_mb": self.memory_mb,
            "isolation": sandbox.isolation,
            "python": sandbox.interpreter.describe(),  # another interpreter may judge otherwise
        }
        if os.geteuid() != 0:
            settings["jobs"] = sandbox.jobs
        return settings


def file_sha256(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while block := handle.read(1 << 20):
        digest.update(block)
    return digest.hexdigest()
