"""Preference pairs from verified samples, as CodeScalerPair was built: within a problem, a program that passes all
its tests is preferred to one that fails.

Input: `codescaler eval`'s per-candidate records (`--output`), which carry the problem's id, the extracted `code`,
`valid` and the verdict `passed`. Programs are told apart by the dedup key (the same program up to comments and
spacing counts once). A problem with no passing or no failing program gives no pairs and is counted as skipped; a
program that both passed and failed within one problem (a flaky test) is left out of both sides. At most
`max_pairs_per_problem` pairs are drawn per problem, with a seed of its own, so a problem's pairs do not change when
other problems are added or the file is reordered.

Problems are split, never pairs: a problem and all its pairs are `train` or `test`, chosen by a hash of the seed and
the problem's id, so the split is stable whatever the order of the file.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import InputError, UsageError
from ..extraction import dedup_key, is_valid_python
from ..records import iter_lines, parse_record
from .data import PAIR_FORMATS, pair_row

# Fields that name a candidate's problem, in the order `eval` matches them.
ID_FIELDS = ("id", "task_id", "question_id", "problem_id")


@dataclass(frozen=True)
class PairsConfig:
    """How pairs are drawn and split, and the format they are written in (one of PAIR_FORMATS)."""

    max_pairs_per_problem: int = 8
    seed: int = 0
    test_fraction: float = 0.1
    invalid_rejected: bool = False  # code that does not parse may be the rejected side (never the chosen one)
    format: str = "codescaler"

    def validate(self) -> None:
        if self.format not in PAIR_FORMATS:
            raise UsageError(f"unknown pair format '{self.format}'", f"use one of: {', '.join(PAIR_FORMATS)}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise UsageError(f"--test-fraction {self.test_fraction} is not in [0, 1)",
                             "e.g. 0.1 keeps a tenth of the problems for testing")
        if self.max_pairs_per_problem < 1:
            raise UsageError("--max-pairs-per-problem must be at least 1")


@dataclass(frozen=True)
class Verdict:
    """One evaluated candidate: its problem, the question the reward model reads, its code, and the verdict."""

    problem_id: Any
    question: str
    code: str
    valid: bool
    passed: bool
    location: str


@dataclass
class PairsSummary:
    """Every count `codescaler pairs` reports."""

    problems: int = 0  # problems read
    candidates: int = 0
    used: int = 0  # problems that gave pairs
    train_problems: int = 0
    test_problems: int = 0
    no_pass: int = 0  # skipped: no passing program
    no_fail: int = 0  # skipped: a passing program but no failing one
    conflicts: int = 0  # programs that both passed and failed in one problem, left out
    pairs: int = 0
    train_pairs: int = 0
    test_pairs: int = 0

    @property
    def skipped(self) -> int:
        return self.no_pass + self.no_fail


@dataclass
class PairsResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: PairsSummary = field(default_factory=PairsSummary)


def read_verdicts(path: str | Path | None, *, questions: dict[str, str] | None = None,
                  stdin: IO[bytes] | None = None) -> list[Verdict]:
    """Read eval's per-candidate records; `questions` (by problem id as text) fills in a missing `question`."""
    verdicts = []
    for source, line, text in iter_lines(path, stdin):
        if not text.strip():
            continue
        record = parse_record(source, line, text)
        verdicts.append(_verdict(record, source, line, questions or {}))
    return verdicts


def _verdict(record: dict[str, Any], source: str, line: int, questions: dict[str, str]) -> Verdict:
    name = next((name for name in ID_FIELDS if record.get(name) is not None), None)
    if name is None:
        raise InputError(source, line, "the record names no problem: no 'id' or 'task_id'",
                         "give eval's --output records (each carries its problem's id)")
    problem_id = record[name]
    if isinstance(problem_id, bool) or not isinstance(problem_id, (str, int)):
        raise InputError(source, line, f"field '{name}' must be a string or an integer")
    passed = record.get("passed")
    if not isinstance(passed, bool):
        raise InputError(source, line, "the record has no test verdict ('passed' true or false)",
                         "give the records `codescaler eval CANDIDATES --problems FILE -o VERDICTS.jsonl` writes")
    code = record.get("code")
    if not isinstance(code, str):
        raise InputError(source, line, "the record has no extracted 'code' string",
                         "give the records `codescaler eval ... -o VERDICTS.jsonl` writes")
    question = record.get("question")
    if question is None:
        question = questions.get(str(problem_id))
    if not isinstance(question, str):
        raise InputError(source, line, "the record has no 'question' (the problem the reward model reads)",
                         "give the problems with --problems FILE or --benchmark NAME, or add a 'question' field")
    valid = record.get("valid")
    return Verdict(problem_id, question, code, valid if isinstance(valid, bool) else is_valid_python(code), passed,
                   f"{source}:{line}")


def build_pairs(verdicts: Iterable[Verdict], config: PairsConfig = PairsConfig()) -> PairsResult:
    """Pair passing with failing programs per problem, split problems into train and test, and count everything."""
    config.validate()
    problems: dict[str, list[Verdict]] = {}
    for verdict in verdicts:
        problems.setdefault(str(verdict.problem_id), []).append(verdict)
    result = PairsResult()
    summary = result.summary
    summary.problems = len(problems)
    summary.candidates = sum(len(group) for group in problems.values())
    pairs_by_problem: dict[str, list[tuple[str, str]]] = {}
    for key, group in problems.items():
        passing, failing, conflicts = _programs(group, config.invalid_rejected)
        summary.conflicts += conflicts
        if not passing:
            summary.no_pass += 1
        elif not failing:
            summary.no_fail += 1
        else:
            pairs_by_problem[key] = _draw(passing, failing, config, key)
    test = _test_problems(list(pairs_by_problem), config)
    summary.used = len(pairs_by_problem)
    summary.test_problems = len(test)
    summary.train_problems = summary.used - summary.test_problems
    for key, pairs in pairs_by_problem.items():
        first = problems[key][0]
        split = "test" if key in test else "train"
        for chosen, rejected in pairs:
            result.rows.append(pair_row(config.format, first.problem_id, split, first.question, chosen, rejected))
        summary.pairs += len(pairs)
        if split == "test":
            summary.test_pairs += len(pairs)
        else:
            summary.train_pairs += len(pairs)
    return result


def _programs(group: Sequence[Verdict], invalid_rejected: bool) -> tuple[list[str], list[str], int]:
    """A problem's distinct passing and failing programs (the first spelling of each, ordered by dedup key so the
    draw does not depend on the order of the file), and how many were left out for being on both sides."""
    passing: dict[str, str] = {}
    failing: dict[str, str] = {}
    for verdict in group:
        if verdict.valid:
            (passing if verdict.passed else failing).setdefault(dedup_key(verdict.code), verdict.code)
        elif invalid_rejected and not verdict.passed and verdict.code.strip():
            # Unparsable code has no token stream to compare: only byte-identical texts are the same program.
            failing.setdefault("\x00invalid\x00" + verdict.code, verdict.code)
    both = passing.keys() & failing.keys()
    for key in both:
        del passing[key], failing[key]
    return [passing[key] for key in sorted(passing)], [failing[key] for key in sorted(failing)], len(both)


def _draw(passing: list[str], failing: list[str], config: PairsConfig, key: str) -> list[tuple[str, str]]:
    pairs = [(chosen, rejected) for chosen in passing for rejected in failing]
    if len(pairs) <= config.max_pairs_per_problem:
        return pairs
    picked = random.Random(_digest(config.seed, key)).sample(range(len(pairs)), config.max_pairs_per_problem)
    return [pairs[index] for index in sorted(picked)]


def _test_problems(keys: list[str], config: PairsConfig) -> set[str]:
    """round(test_fraction x problems) problems, at least one when the fraction is above 0 and two or more
    problems gave pairs (and never all of them)."""
    if config.test_fraction == 0 or len(keys) < 2:
        return set()
    count = min(len(keys) - 1, max(1, round(config.test_fraction * len(keys))))
    ordered = sorted(keys, key=lambda key: _digest(config.seed, key))
    return set(ordered[:count])


def _digest(seed: int, key: str) -> int:
    """A number fixed by the seed and the problem alone (not by Python's per-process string hashing)."""
    text = f"{seed}\x00{key}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def pairs_from_verdicts(path: str | Path | None, config: PairsConfig = PairsConfig(), *,
                        questions: dict[str, str] | None = None, stdin: IO[bytes] | None = None) -> PairsResult:
    """`codescaler pairs` as one call: read eval's records (every one checked first), then pair and split them."""
    config.validate()
    return build_pairs(read_verdicts(path, questions=questions, stdin=stdin), config)
