"""Where a command's input comes from: a file, '-', or standard input when it is piped."""

from __future__ import annotations

import sys

from ..errors import UsageError
from ..records import Candidate, FieldNames, read_candidates


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def read_input(path: str | None, fields: FieldNames, *, require_question: bool, command: str) -> list[Candidate]:
    """Read and validate all candidates: FILE, '-' for stdin, or stdin when no FILE is given and it is piped."""
    if path is None and stdin_is_terminal():
        raise UsageError("no input: give a JSONL FILE or pipe records on standard input",
                         f"e.g. codescaler {command} candidates.jsonl, or cat candidates.jsonl | codescaler {command}")
    stdin = getattr(sys.stdin, "buffer", None)
    return read_candidates(path, fields, require_question=require_question, stdin=stdin)


def problem_label(candidate: Candidate, width: int = 40) -> str:
    """A short name for a candidate's problem in tables: its id, else the start of its question."""
    kind, value = candidate.group_key
    if kind == "id":
        return str(value)
    text = " ".join(str(value or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"
