"""Candidate records and JSONL input/output: reading, validating and writing the records every command speaks.

Input is read and validated completely before any model loads, so a bad line fails in well under a second and
names its file and line. Output records are the input records, unchanged, plus the fields the tool adds.

Large inputs stream: `CandidateSource` reads a file (or spooled stdin) twice, a validating pass that keeps only
each problem's size (`scan`), then a pass that yields one problem's candidates at a time (`groups`), so memory
holds one chunk of problems rather than the file — when each problem's records are contiguous, as `generate`
writes them. Scattered problems are read whole and grouped in memory.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import InputError

STDIN_NAME = "<stdin>"

# Deepest nesting a JSON document may have (serde_json's default limit): far beyond any real record, and shallow
# enough that every record read can be written back out (Python's JSON encoder recurses once per level).
MAX_NESTING = 128


@dataclass(frozen=True)
class FieldNames:
    """Which input fields hold the group id, the question and the raw response (`--id-field` and friends)."""

    id: str = "id"
    question: str = "question"
    response: str = "response"
    code: str = "code"

    def fingerprint(self) -> dict[str, str]:
        """The field names, for the settings check of a resumed run (other names, other groups and texts)."""
        return {"id_field": self.id, "question_field": self.question, "response_field": self.response,
                "code_field": self.code}


@dataclass
class Candidate:
    """One candidate program: the input record as read, where it came from, and what the tool computed for it."""

    record: dict[str, Any]
    source: str
    line: int
    index: int
    question: str | None
    response: str | None
    given_code: str | None
    group_key: tuple[str, Any] = ("", None)
    code: str = ""
    valid: bool = False
    dedup_key: str = ""
    score: float | None = None
    reward: float = 0.0
    rank: int | None = None
    truncated: bool = False
    error: str | None = None
    tokens: int = 0  # tokens the reward model ran for this candidate (0 for an unscored or duplicate one)

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}"

    def extracted_record(self) -> dict[str, Any]:
        """The output record of `extract`: the input plus `code` and `valid`."""
        out = dict(self.record)
        out["code"] = self.code
        out["valid"] = self.valid
        return out

    def scored_record(self) -> dict[str, Any]:
        """The output record of `rank` and `generate`: the input plus code, validity, score, reward and rank."""
        out = self.extracted_record()
        out["score"] = self.score
        out["reward"] = self.reward
        out["rank"] = self.rank
        out["truncated"] = self.truncated
        if self.error is not None:
            out["error"] = self.error
        return out


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def _optional_str(record: dict[str, Any], name: str, source: str, line: int) -> str | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(source, line, f"field '{name}' must be a string, got {_type_name(value)}",
                         f"make '{name}' a JSON string")
    return value


def _reject_constant(token: str) -> Any:
    # json accepts NaN/Infinity by default; they are not JSON and would not round-trip through other tools.
    raise ValueError(f"{token} is not valid JSON")


def iter_lines(path: str | Path | None, stdin: IO[bytes] | None = None) -> Iterator[tuple[str, int, str]]:
    """Yield (source name, 1-based line number, decoded text) for each line of a file, or of stdin for None/'-'.

    Decoding is strict UTF-8 line by line so a bad byte is reported with its line number.
    """
    if path is None or str(path) == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        yield from _decode_lines(STDIN_NAME, stream)
        return
    source = str(path)
    with open_input(path, "a JSONL file") as handle:
        yield from _decode_lines(source, handle)


def open_input(path: str | Path, kind: str,
               hint: str = "check the path, or pass '-' to read standard input") -> IO[bytes]:
    """An input file opened for reading bytes; InputError naming the file when it cannot be (`kind`: what it should
    be, for the message about a directory)."""
    source = str(path)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(source, None, "no such file", hint) from None
    except IsADirectoryError:
        raise InputError(source, None, f"is a directory, not {kind}") from None
    except PermissionError:
        raise InputError(source, None, "permission denied") from None


def _decode_lines(source: str, stream: IO[bytes]) -> Iterator[tuple[str, int, str]]:
    """The lines of JSONL; of a JSON array (what `--format json` writes, or a pretty-printed file), its elements,
    each as one line numbered by where it starts."""
    started = False
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(source, number, f"not valid UTF-8 (byte {exc.start + 1} of the line)",
                             "re-encode the file as UTF-8, e.g. with iconv") from None
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        if not started and text.strip():
            started = True
            if text.lstrip().startswith("["):  # a JSON array, read whole (it is one document)
                rest = stream.read()
                try:
                    document = "\n" * (number - 1) + text + rest.decode("utf-8")
                except UnicodeDecodeError as exc:
                    line = number + rest.count(b"\n", 0, exc.start) + 1
                    raise InputError(source, line, "not valid UTF-8",
                                     "re-encode the file as UTF-8, e.g. with iconv") from None
                for line, _, element in json_array_elements(source, document):
                    yield source, line, element
                return
        yield source, number, text


@dataclass(frozen=True)
class JsonProblem:
    """What makes a parsed JSON document unusable: `kind` "nesting", "number" (NaN or infinite) or "text" (a string
    over the limit, `length` its characters), at `path` (keys and indices from the top)."""

    kind: str
    path: tuple[str | int, ...]
    length: int = 0
    value: Any = None

    def where(self) -> str:
        """The path as a field name, `candidates[0].meta`; a nesting problem names the field the nesting is in."""
        path = self.path
        if self.kind == "nesting":
            keys = [i for i, part in enumerate(path) if isinstance(part, str)]
            path = path[: keys[-1] + 1] if keys else path[:1]
        shown, more = path[:8], len(path) > 8
        text = ""
        for part in shown:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
        return text + ("…" if more else "")

    def describe(self) -> str:
        if self.kind == "nesting":
            return f"is nested more than {MAX_NESTING} levels deep"
        if self.kind == "number":
            spelled = "NaN" if self.value != self.value else "Infinity" if self.value > 0 else "-Infinity"
            return f"is {spelled}, which is not a JSON number"
        return f"is {self.length:,} characters long"


def json_problem(document: Any, *, max_text_chars: int | None = None, numbers: bool = False) -> JsonProblem | None:
    """The first part of a parsed JSON document that cannot be handled, or None: nesting beyond MAX_NESTING, and
    with `numbers` NaN or infinity (Python's json reads them; JSON has no such numbers), and strings longer than
    `max_text_chars`. Iterative, so no document can exhaust the stack."""
    if not isinstance(document, (dict, list)):
        return None
    # Paths are linked (parent, key) pairs, so walking a large document copies none; they are spelled out only
    # for the problem found.
    stack: list[tuple[Any, Any, int]] = [(document, None, 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_NESTING:
            return JsonProblem("nesting", _spelled(path))
        for key, item in (node.items() if isinstance(node, dict) else enumerate(node)):
            kind = type(item)
            if kind is dict or kind is list:
                stack.append((item, (path, key), depth + 1))
            elif kind is str:
                if max_text_chars is not None and len(item) > max_text_chars:
                    return JsonProblem("text", _spelled((path, key)), length=len(item))
            elif kind is float and numbers and not math.isfinite(item):
                return JsonProblem("number", _spelled((path, key)), value=item)
    return None


def _spelled(path: Any) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    while path is not None:
        path, key = path
        parts.append(key)
    return tuple(reversed(parts))


def json_array_elements(source: str, text: str) -> Iterator[tuple[int, Any, str]]:
    """(the line it starts on, its value, its text) for each element of the JSON array `text` holds; InputError,
    naming the line, where the document is not one JSON array."""
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    named = "FILE" if source == STDIN_NAME else source
    hint = f"the input must be one valid JSON array, or JSON Lines (one object per line: jq -c '.[]' {named})"
    position = _skip_space(text, text.index("[") + 1)
    line, counted = 1, 0  # the line number at offset `counted`, advanced as the parse moves on

    def line_at(offset: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, offset)
        counted = offset
        return line

    if position < len(text) and text[position] == "]":
        position += 1
    else:
        while True:
            start_line = line_at(position)
            try:
                value, end = decoder.raw_decode(text, position)
            except json.JSONDecodeError as exc:
                raise InputError(source, exc.lineno, f"malformed JSON array at column {exc.colno}: {exc.msg}",
                                 hint) from None
            except ValueError as exc:
                raise InputError(source, start_line, f"malformed JSON: {exc}", hint) from None
            except RecursionError:
                raise InputError(source, start_line, "JSON nested too deeply to read") from None
            yield start_line, value, text[position:end]
            position = _skip_space(text, end)
            if position < len(text) and text[position] == ",":
                position = _skip_space(text, position + 1)
                continue
            if position < len(text) and text[position] == "]":
                position += 1
                break
            raise InputError(source, line_at(min(position, len(text))), "malformed JSON array: expected ',' or ']' "
                             "after an element", hint)
    if text[position:].strip():
        raise InputError(source, line_at(_skip_space(text, position)), "extra data after the JSON array", hint)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def parse_record(source: str, line: int, text: str) -> dict[str, Any]:
    """Parse one JSONL line into an object, or raise InputError naming the line."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InputError(source, line, "JSON nested too deeply to read",
                         "flatten the record; candidates need only a few flat fields") from None
    except (json.JSONDecodeError, ValueError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        column = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise InputError(source, line, f"malformed JSON{column}: {detail}",
                         "each line must be one complete JSON object") from None
    if not isinstance(value, dict):
        raise InputError(source, line, f"expected a JSON object, got {_type_name(value)}",
                         "each line must be one JSON object like {\"question\": ..., \"response\": ...}")
    # Checked now, before any work: a record that could not be written back out would fail the run at its end.
    problem = json_problem(value)
    if problem is not None:
        raise InputError(source, line, f"field '{problem.where()}' {problem.describe()}",
                         "flatten the record; candidates need only a few flat fields")
    return value


def read_candidates(path: str | Path | None, fields: FieldNames = FieldNames(), *, require_question: bool,
                    stdin: IO[bytes] | None = None) -> list[Candidate]:
    """Read and validate every candidate record of a JSONL file (or stdin). Blank lines are skipped.

    Raises InputError, naming the file and line, on the first bad record.
    """
    candidates: list[Candidate] = []
    for source, line, text in iter_lines(path, stdin):
        if not text.strip():
            continue
        record = parse_record(source, line, text)
        candidates.append(candidate_from_record(record, source, line, len(candidates), fields,
                                                require_question=require_question))
    return candidates


def candidate_from_record(record: dict[str, Any], source: str, line: int, index: int, fields: FieldNames, *,
                          require_question: bool) -> Candidate:
    """Validate one record's fields and wrap it as a Candidate."""
    # extract does not require the question: when it is a string it helps find the entry point, anything else is
    # just another field passed through.
    if require_question:
        question = _optional_str(record, fields.question, source, line)
    else:
        value = record.get(fields.question)
        question = value if isinstance(value, str) else None
    if question is None and require_question:
        raise InputError(source, line, f"missing field '{fields.question}' (the problem shown to the reward model); "
                         f"the record has {_field_list(record)}", _mapping_hint(record, fields, require_question))
    response = _optional_str(record, fields.response, source, line)
    given_code = _optional_str(record, fields.code, source, line)
    if response is None and given_code is None:
        raise InputError(source, line, f"record has neither '{fields.response}' nor '{fields.code}'; it has "
                         f"{_field_list(record)}", _mapping_hint(record, fields, require_question))
    group_id = record.get(fields.id)
    if group_id is not None and (isinstance(group_id, bool) or not isinstance(group_id, (str, int))):
        raise InputError(source, line, f"field '{fields.id}' must be a string or an integer, got {_type_name(group_id)}",
                         f"use a string or integer '{fields.id}', or name another field with --id-field")
    group_key: tuple[str, Any] = ("id", group_id) if group_id is not None else ("question", question)
    return Candidate(record=record, source=source, line=line, index=index, question=question, response=response,
                     given_code=given_code, group_key=group_key)


# What other tools call the fields, most common first: the first one a record has is suggested as the mapping.
_FIELD_ALIASES = {
    "id": ("task_id", "problem_id", "question_id", "qid", "uid", "name"),
    "question": ("prompt", "problem", "question_content", "instruction", "query", "input"),
    "response": ("completion", "output", "generation", "answer", "solution", "text", "content"),
}


def _field_list(record: dict[str, Any], shown: int = 12) -> str:
    names = [repr(name) if len(name) <= 40 else repr(name[:37] + "...") for name in list(record)[:shown]]
    more = f" and {len(record) - shown} more" if len(record) > shown else ""
    return f"the fields {', '.join(names)}{more}" if names else "no fields"


def _mapping_hint(record: dict[str, Any], fields: FieldNames, require_question: bool) -> str:
    """The --*-field options that map this record's fields onto the ones read (all at once, so one fix is enough),
    else what to add."""
    def alias(kind: str) -> str | None:
        return next((name for name in _FIELD_ALIASES[kind] if isinstance(record.get(name), str)
                     or (kind == "id" and isinstance(record.get(name), int))), None)

    flags = []
    if fields.id not in record and alias("id") is not None:
        flags.append(f"--id-field {alias('id')}")
    if require_question and not isinstance(record.get(fields.question), str) and alias("question") is not None:
        flags.append(f"--question-field {alias('question')}")
    if not isinstance(record.get(fields.response), str) and not isinstance(record.get(fields.code), str) \
            and alias("response") is not None:
        flags.append(f"--response-field {alias('response')}")
    wanted = (f"'{fields.question}' (the problem) and " if require_question else "") + \
        f"'{fields.response}' (the raw model output) or '{fields.code}' (extracted code)"
    if flags:
        return f"name the fields this record uses: {' '.join(flags)} (the records need {wanted})"
    return f"add {wanted} to each record, or name the fields that hold them with --question-field, --response-field " \
        "or --code-field"


@dataclass
class InputScan:
    """What the validating pass learned: the number of records, and each problem's size and key, in first-seen order.

    `group_hashes` identify problems (a hash of the group key, for this process only) so an output file's problems
    can be matched against the input's without holding the questions in memory.
    """

    records: int = 0
    group_sizes: list[int] = field(default_factory=list)
    group_hashes: list[int] = field(default_factory=list)
    contiguous: bool = True

    @property
    def groups(self) -> int:
        return len(self.group_sizes)


def group_hash(group_key: tuple[str, Any]) -> int:
    """A problem's identity for matching records of one run (Python's hash: stable within a process only)."""
    return hash(group_key)


def record_group_key(record: dict[str, Any], fields: FieldNames) -> tuple[str, Any]:
    """The group key of an input or output record: its id when it has one, else its question."""
    group_id = record.get(fields.id)
    if group_id is not None:
        return ("id", group_id)
    question = record.get(fields.question)
    return ("question", question if isinstance(question, str) else None)


class CandidateSource:
    """A candidates file, or standard input spooled to a temporary file, that can be read more than once."""

    def __init__(self, path: str | Path | None, fields: FieldNames = FieldNames(), *, require_question: bool,
                 stdin: IO[bytes] | None = None) -> None:
        self.fields = fields
        self.require_question = require_question
        self._spool: IO[bytes] | None = None
        self.path = None if path is None or str(path) == "-" else path
        if self.path is None:
            # stdin can be read once; a temporary file on disk (not memory) lets it be read twice.
            self._spool = tempfile.TemporaryFile()
            shutil.copyfileobj(stdin if stdin is not None else sys.stdin.buffer, self._spool, 1 << 20)
        self.scan_result: InputScan | None = None

    def _lines(self) -> Iterator[tuple[str, int, str]]:
        if self._spool is None:
            yield from iter_lines(self.path)
            return
        self._spool.seek(0)
        yield from _decode_lines(STDIN_NAME, self._spool)

    def _candidates(self) -> Iterator[Candidate]:
        index = 0
        for source, line, text in self._lines():
            if not text.strip():
                continue
            record = parse_record(source, line, text)
            yield candidate_from_record(record, source, line, index, self.fields,
                                        require_question=self.require_question)
            index += 1

    def scan(self) -> InputScan:
        """Validate every record (raising InputError at the first bad one) and learn the problems' sizes."""
        scan = InputScan()
        position: dict[int, int] = {}
        current: int | None = None
        for candidate in self._candidates():
            scan.records += 1
            key = group_hash(candidate.group_key)
            if key == current:
                scan.group_sizes[-1] += 1
                continue
            if key in position:
                scan.contiguous = False
                scan.group_sizes[position[key]] += 1
            else:
                position[key] = len(scan.group_sizes)
                scan.group_sizes.append(1)
                scan.group_hashes.append(key)
            current = key
        self.scan_result = scan
        return scan

    def groups(self) -> Iterator[list[Candidate]]:
        """Each problem's candidates in first-seen order: streamed when contiguous, else grouped in memory."""
        scan = self.scan_result if self.scan_result is not None else self.scan()
        if not scan.contiguous:
            yield from group_candidates(list(self._candidates()))
            return
        group: list[Candidate] = []
        for candidate in self._candidates():
            if group and candidate.group_key != group[0].group_key:
                yield group
                group = []
            group.append(candidate)
        if group:
            yield group

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


def group_candidates(candidates: Iterable[Candidate]) -> list[list[Candidate]]:
    """Group candidates of one problem (same `id`, else same `question`), groups in first-seen order."""
    groups: dict[tuple[str, Any], list[Candidate]] = {}
    for candidate in candidates:
        groups.setdefault(candidate.group_key, []).append(candidate)
    return list(groups.values())


def dumps(record: dict[str, Any]) -> str:
    """One JSONL line (no trailing newline). Non-finite floats become null so every line is valid JSON.

    Text stays readable UTF-8; a record holding a lone surrogate (legal as a JSON escape, not encodable as
    UTF-8) is written with escapes instead, so it passes through unchanged rather than failing the output.
    """
    value = _finite(record)
    line = json.dumps(value, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(value, ensure_ascii=True)
    return line


def json_array(records: list[dict[str, Any]]) -> str:
    """A JSON array of records, built whole before any of it is written (readable UTF-8, or escapes when a record
    holds a lone surrogate, which UTF-8 cannot encode); non-finite floats become null, as in `dumps`."""
    value = [_finite(record) for record in records]
    document = json.dumps(value, ensure_ascii=False, indent=2)
    try:
        document.encode("utf-8")
    except UnicodeEncodeError:
        document = json.dumps(value, ensure_ascii=True, indent=2)
    return document


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
