"""Preference data as the projects that publish it write it: reading rows from JSON Lines, JSON arrays and Parquet,
recognising the format of each file, and turning rows into the (question, response) texts a reward model scores.

Formats (the first row decides, every row is checked against it):

* `codescaler`: CodeScalerPair's fields, `question_content`, `code_pos`, `code_neg` (what `codescaler pairs` writes,
  with `id` and `split`); the texts are extracted code.
* `trl`: TRL's preference rows, `chosen` / `rejected` as strings or as conversations, with an explicit `prompt` or an
  implicit one (the shared start of `chosen` and `rejected`, found the way TRL's `maybe_extract_prompt` finds it).
  OpenRLHF's conversational rows (`prompt`, `chosen`, `rejected` message lists) are the explicit-prompt case.
* `rewardbench`: RewardBench rows, `prompt`, `chosen`, `rejected` strings and a `subset` (reported on its own).
* `rm-bench`: RM-Bench rows, `prompt`, three `chosen` and three `rejected` responses, and a `domain`; a per-domain file
  of RM-Bench (e.g. `code_filtered.json`) has no `domain` field: the file name says it.

The reward models read one user turn (the question) and one assistant turn (the response), so conversations with a
system message or several turns are refused with a message naming the row.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import InputError, UsageError
from ..records import STDIN_NAME, iter_lines, json_array_elements, open_input, parse_record

FORMATS = ("codescaler", "trl", "rewardbench", "rm-bench")
SPLITS = ("train", "test")
# RM-Bench's domains; its sub-domains (safety-refuse, safety-response) merge into the one they start with.
RM_BENCH_DOMAINS = ("chat", "math", "code", "safety")
RM_BENCH_RESPONSES = 3  # concise, detailed plain text, detailed markdown

_PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Row:
    """One input row as read, and where it came from (a line for JSONL and JSON arrays, a row number for Parquet)."""

    record: dict[str, Any]
    source: str
    line: int | None
    number: int  # 1-based position in the file

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}" if self.line is not None else f"{self.source} row {self.number}"

    def error(self, message: str, hint: str | None = None) -> InputError:
        if self.line is not None:
            return InputError(self.source, self.line, message, hint)
        return InputError(f"{self.source} row {self.number}", None, message, hint)


@dataclass
class PreferenceItem:
    """One row to score: a question, its preferred responses and its rejected ones (one each for a pair).

    `is_code`: the responses are extracted code (codescaler rows), not prose. `group` is what the report breaks
    accuracy down by: a RewardBench subset or an RM-Bench domain. `split` is the row's `split` field, if any.
    """

    question: str
    chosen: list[str]
    rejected: list[str]
    row: Row
    is_code: bool = False
    group: str | None = None
    split: str | None = None


@dataclass
class PreferenceData:
    """A preference file read whole: its format and its items, in file order."""

    source: str
    format: str
    items: list[PreferenceItem] = field(default_factory=list)

    @property
    def is_rm_bench(self) -> bool:
        return self.format == "rm-bench"


# ---------------------------------------------------------------------------------------------------------------
# Rows: JSON Lines, a JSON array, or Parquet, recognised by content rather than by the file's name.


def read_rows(path: str | Path | None, stdin: IO[bytes] | None = None) -> list[Row]:
    """Every row of a file ('-' or None: standard input): JSON Lines, one JSON array of objects, or Parquet."""
    if path is None or str(path) == "-":
        data = (stdin if stdin is not None else sys.stdin.buffer).read()
        source = STDIN_NAME
    else:
        source = str(path)
        with open_input(path, "a data file", "check the path") as handle:
            head = handle.read(4)
        if head == _PARQUET_MAGIC:
            return _parquet_rows(Path(path))
        if not _starts_json_array(Path(path)):
            return _jsonl_rows(path)
        data = Path(path).read_bytes()
    if data[:4] == _PARQUET_MAGIC:
        raise InputError(source, None, "Parquet cannot be read from standard input", "pass the file's path")
    text = _decode(source, data)
    if text.lstrip().startswith("["):
        return _json_array_rows(source, text)
    return [row for row in _jsonl_text_rows(source, text)]


def _starts_json_array(path: Path) -> bool:
    with open(path, "rb") as handle:
        while chunk := handle.read(4096):
            stripped = chunk.lstrip(b" \t\r\n\xef\xbb\xbf")  # whitespace and a UTF-8 byte-order mark
            if stripped:
                return stripped.startswith(b"[")
    return False


def _decode(source: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(source, line, "not valid UTF-8", "re-encode the file as UTF-8, e.g. with iconv") from None
    return text[1:] if text.startswith("\ufeff") else text


def _jsonl_rows(path: str | Path) -> list[Row]:
    rows = []
    for source, line, text in iter_lines(path):
        if text.strip():
            rows.append(Row(parse_record(source, line, text), source, line, len(rows) + 1))
    return rows


def _jsonl_text_rows(source: str, text: str) -> Iterator[Row]:
    number = 0
    for line, chunk in enumerate(text.splitlines(), start=1):
        if chunk.strip():
            number += 1
            yield Row(parse_record(source, line, chunk), source, line, number)


def _json_array_rows(source: str, text: str) -> list[Row]:
    """The elements of a top-level JSON array, each with the line it starts on (for messages about it)."""
    rows: list[Row] = []
    for line, value, _ in json_array_elements(source, text):
        if not isinstance(value, dict):
            raise InputError(source, line, f"array element {len(rows) + 1} is not a JSON object",
                             "each element must be one row like {\"prompt\": ..., \"chosen\": ..., ...}")
        rows.append(Row(value, source, line, len(rows) + 1))
    return rows


def _parquet_rows(path: Path) -> list[Row]:
    try:
        import pyarrow.parquet as parquet
    except ModuleNotFoundError:
        raise UsageError(f"{path} is a Parquet file, and reading Parquet needs pyarrow",
                         "pip install pyarrow (it comes with `datasets`), or convert the file to JSON Lines") from None
    try:
        records = parquet.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow's own errors: a damaged or truncated file
        raise InputError(str(path), None, f"cannot read Parquet: {exc}") from None
    return [Row(record, str(path), None, number) for number, record in enumerate(records, start=1)]


# ---------------------------------------------------------------------------------------------------------------
# Formats.


def detect_format(record: dict[str, Any]) -> str | None:
    """Which format a row is in (one of FORMATS), or None when it is no preference row at all."""
    if "code_pos" in record or "code_neg" in record:
        return "codescaler"
    if "chosen" not in record or "rejected" not in record:
        return None
    chosen = record["chosen"]
    if isinstance(chosen, list) and chosen and all(isinstance(response, str) for response in chosen):
        return "rm-bench"
    if isinstance(chosen, str) and isinstance(record.get("prompt"), str) and isinstance(record.get("subset"), str):
        return "rewardbench"
    return "trl"


def read_preference_data(path: str | Path | None, *, split: str | None = None, stdin: IO[bytes] | None = None,
                         domain: str | None = None) -> PreferenceData:
    """Read and check every row of a preference file; with `split`, keep the rows of that split only.

    `domain`: the RM-Bench domain of rows that carry none (default: from the file name, e.g. `code_filtered.json`
    is `code`). Raises InputError naming the file and line of the first bad row.
    """
    rows = read_rows(path, stdin)
    source = STDIN_NAME if path is None or str(path) == "-" else str(path)
    if not rows:
        raise InputError(source, None, "no rows",
                         "give a file of preference rows (JSON Lines, a JSON array or Parquet)")
    data_format = detect_format(rows[0].record)
    if data_format is None:
        raise rows[0].error("not a preference row: expected `code_pos`/`code_neg` (CodeScalerPair) or "
                            "`chosen`/`rejected` (TRL, RewardBench, RM-Bench)",
                            "write pairs with `codescaler pairs`, or give TRL, OpenRLHF, RewardBench or RM-Bench rows")
    file_domain = domain or _domain_from_name(source)
    data = PreferenceData(source=source, format=data_format)
    for row in rows:
        found = detect_format(row.record)
        if found != data_format and not {found, data_format} <= {"trl", "rewardbench"}:
            raise row.error(f"this row is in {found or 'no known'} format, but the file's first row is {data_format}",
                            "keep one format per file")
        data.items.append(_parse(row, data_format, file_domain))
    if split is not None:
        if split not in SPLITS:
            raise UsageError(f"unknown split '{split}'", f"use one of: {', '.join(SPLITS)}")
        if all(item.split is None for item in data.items):
            raise InputError(source, None, f"--split {split}: the rows carry no `split` field",
                             "`codescaler pairs` writes it; without --split every row is used")
        data.items = [item for item in data.items if item.split == split]
        if not data.items:
            raise InputError(source, None, f"no rows of split '{split}'")
    return data


def _domain_from_name(source: str) -> str | None:
    """RM-Bench's per-domain files are named `<domain>_filtered.json`: the name is the rows' domain."""
    if source == STDIN_NAME:
        return None
    stem = Path(source).name.split(".")[0]
    return stem.removesuffix("_filtered") or None


def merge_domain(domain: str) -> str:
    """RM-Bench's grouping: a domain counts under the main domain it starts with (safety-refuse is safety)."""
    return next((main for main in RM_BENCH_DOMAINS if domain.startswith(main)), domain)


def _string(row: Row, name: str, what: str) -> str:
    value = row.record.get(name)
    if not isinstance(value, str):
        problem = "missing" if value is None else f"not a string ({type(value).__name__})"
        raise row.error(f"field `{name}` ({what}) is {problem}", f"give `{name}` as a JSON string")
    return value


def _split(row: Row) -> str | None:
    value = row.record.get("split")
    if value is None:
        return None
    if value not in SPLITS:
        raise row.error(f"field `split` is {value!r}", f"use one of: {', '.join(SPLITS)}")
    return value


def _parse(row: Row, data_format: str, file_domain: str | None) -> PreferenceItem:
    record = row.record
    subset = record.get("subset") if isinstance(record.get("subset"), str) else None
    if data_format == "codescaler":
        question = _string(row, "question_content", "the problem")
        return PreferenceItem(question, [_string(row, "code_pos", "the passing program")],
                              [_string(row, "code_neg", "the failing program")], row, is_code=True, split=_split(row))
    if data_format == "rm-bench":
        question = _string(row, "prompt", "the question")
        responses = {}
        for name in ("chosen", "rejected"):
            value = record.get(name)
            if not isinstance(value, list) or len(value) != RM_BENCH_RESPONSES \
                    or not all(isinstance(text, str) for text in value):
                raise row.error(f"field `{name}` must be a list of {RM_BENCH_RESPONSES} strings (concise, detailed, "
                                "detailed with markdown), as in RM-Bench")
            responses[name] = value
        domain = record.get("domain", file_domain)
        if not isinstance(domain, str) or not domain:
            raise row.error("the row has no `domain` and the file name does not give one",
                            "RM-Bench's total_dataset.json rows carry `domain`; per-domain files are named "
                            "<domain>_filtered.json")
        return PreferenceItem(question, responses["chosen"], responses["rejected"], row, group=merge_domain(domain),
                              split=_split(row))
    question, chosen, rejected = _trl_texts(row)
    return PreferenceItem(question, [chosen], [rejected], row, group=subset, split=_split(row))


def _trl_texts(row: Row) -> tuple[str, str, str]:
    """(question, chosen response, rejected response) of a TRL-style row, prompt explicit or implicit."""
    record = row.record
    chosen, rejected, prompt = record["chosen"], record["rejected"], record.get("prompt")
    conversational = _is_conversation(chosen)
    if conversational != _is_conversation(rejected) or not (conversational or isinstance(chosen, str)) \
            or not (conversational or isinstance(rejected, str)):
        raise row.error("`chosen` and `rejected` must both be strings or both be lists of messages "
                        "({\"role\": ..., \"content\": ...})")
    # As TRL's maybe_extract_prompt: a prompt of the other kind (a string next to conversations) is not the prompt.
    explicit = _is_conversation(prompt) if conversational else isinstance(prompt, str)
    if explicit:
        completion_chosen, completion_rejected = chosen, rejected
    else:
        prompt, completion_chosen, completion_rejected = _shared_prompt(chosen, rejected)
    if not conversational:
        if not prompt:
            raise row.error("`chosen` and `rejected` share no prompt and the row has no `prompt`",
                            "add the question as `prompt`")
        return prompt, completion_chosen, completion_rejected
    question = _single_turn(row, prompt, "user", "prompt")
    return (question, _single_turn(row, completion_chosen, "assistant", "chosen response"),
            _single_turn(row, completion_rejected, "assistant", "rejected response"))


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def _shared_prompt(chosen: Any, rejected: Any) -> tuple[Any, Any, Any]:
    """The implicit prompt: the longest shared start of chosen and rejected (turns, or characters for strings,
    leaving a space that starts the responses with them)."""
    length = 0
    while length < min(len(chosen), len(rejected)) and chosen[length] == rejected[length]:
        length += 1
    if isinstance(chosen, str) and length > 0 and chosen[length - 1] == " " and length < len(chosen):
        length -= 1
    return chosen[:length], chosen[length:], rejected[length:]


def _single_turn(row: Row, messages: Any, role: str, what: str) -> str:
    roles = [m.get("role") for m in messages] if isinstance(messages, list) else []
    if len(roles) != 1 or roles[0] != role or not isinstance(messages[0].get("content"), str):
        found = ", ".join(str(r) for r in roles) or "none"
        raise row.error(f"the {what} must be one {role} message with text content (found roles: {found})",
                        "codescaler's reward models read one user turn (the question) and one assistant turn "
                        "(the response); system messages and multi-turn chats are not supported")
    return messages[0]["content"]


# ---------------------------------------------------------------------------------------------------------------
# Writing pairs: CodeScalerPair's fields, TRL's conversational rows, OpenRLHF's prompt/chosen/rejected keys.

PAIR_FORMATS = ("codescaler", "trl", "openrlhf")


def pair_row(pair_format: str, problem_id: Any, split: str, question: str, chosen: str, rejected: str) \
        -> dict[str, Any]:
    """One output row of `codescaler pairs` in the chosen format, with the problem's `id` and its `split`.

    `trl`: an implicit-prompt conversation (user turn, then the code as the assistant turn), as TRL's
    RewardTrainer reads it. `openrlhf`: `prompt` as a message list and `chosen`/`rejected` as one assistant message
    each, for OpenRLHF's `--prompt_key prompt --chosen_key chosen --rejected_key rejected --apply_chat_template`.
    """
    user = {"role": "user", "content": question}
    if pair_format == "codescaler":
        body: dict[str, Any] = {"question_content": question, "code_pos": chosen, "code_neg": rejected}
    elif pair_format == "trl":
        body = {"chosen": [user, {"role": "assistant", "content": chosen}],
                "rejected": [user, {"role": "assistant", "content": rejected}]}
    elif pair_format == "openrlhf":
        body = {"prompt": [user], "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}]}
    else:
        raise UsageError(f"unknown pair format '{pair_format}'", f"use one of: {', '.join(PAIR_FORMATS)}")
    return {"id": problem_id, "split": split, **body}
