"""The CLI's one output layer: records to stdout (JSONL, JSON or a table) and to `--output`, everything else to stderr.

stdout carries data only. Progress bars, warnings and summaries go to stderr, and progress is hidden in a pipe
unless stderr is a terminal.
"""

from __future__ import annotations

import collections
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import typer

from ..errors import UsageError
from ..records import Candidate, dumps
from ..selection import top_k as keep_top_k
from ._errors import silence_stdout, uninterrupted
from ._options import OutputFormat

_CODE_PREVIEW = 60
_COLUMN_WIDTHS = {"problem": 24, "code": 48}


def stderr_console() -> Any:
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False)


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def resolve_format(requested: OutputFormat) -> OutputFormat:
    if requested is OutputFormat.auto:
        return OutputFormat.table if stdout_is_terminal() else OutputFormat.jsonl
    return requested


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# Per-item warnings shown before they are only counted: enough to see the pattern, not a wall of text.
MAX_ITEM_WARNINGS = 5


def warn_truncated(ranked: list[Candidate], seen: int, max_length: int, describe: Callable[[Candidate], str]) -> int:
    """Warn about candidates cut at --max-length (the first few by name); returns the running count."""
    for candidate in sorted(ranked, key=lambda c: c.index):
        if candidate.truncated:
            seen += 1
            if seen <= MAX_ITEM_WARNINGS:
                warn(f"{describe(candidate)}: the rendered chat is longer than --max-length {max_length} tokens; "
                     "it was cut on the right and scored truncated")
    return seen


def finish_truncation_warnings(seen: int, max_length: int) -> None:
    if seen > MAX_ITEM_WARNINGS:
        warn(f"{seen} candidates in all exceeded --max-length {max_length} and were truncated")


def exit_on_item_errors(candidates: list[Candidate], describe: Callable[[Candidate], str], what: str) -> None:
    """After everything was written: name the first failed items, count them all, and exit 1."""
    errors = ItemErrors(describe)
    errors.add(candidates)
    errors.exit_if_any(what)


class ItemErrors:
    """Per-item failures counted as a streamed run goes: the first few kept to name, the rest only counted."""

    def __init__(self, describe: Callable[[Candidate], str]) -> None:
        self.describe = describe
        self.first: list[str] = []
        self.failed = 0
        self.seen = 0

    def add(self, candidates: list[Candidate]) -> None:
        self.seen += len(candidates)
        for candidate in candidates:
            if candidate.error is not None:
                self.failed += 1
                if len(self.first) < MAX_ITEM_WARNINGS:
                    self.first.append(f"{self.describe(candidate)}: {candidate.error}")

    def exit_if_any(self, what: str) -> None:
        """After everything was written: name the first failed items, count them all, and exit 1."""
        if not self.failed:
            return
        for line in self.first:
            warn(line)
        info(f"error: {self.failed} of {self.seen} {what} (their records carry an 'error'); the rest were written")
        raise typer.Exit(1)


def info(message: str) -> None:
    print(message, file=sys.stderr)


class RecordWriter:
    """Writes output records as they come: streamed JSONL, or collected for JSON and tables.

    JSONL to stdout and `--output` is flushed after every group, so an interrupted run keeps what it finished. A
    JSON document or a table is printed only when the command succeeds: a failure never leaves half a document
    (or a misleading empty one) on stdout. With `staged=True` the `--output` file is written next to its target
    and moved into place on success, so a file already there (e.g. the samples `generate` saved) survives a
    failure. With `append=True` records are added to the end of `--output` (resuming a run).

    One group's records are written as a whole: SIGINT or SIGTERM during a write takes effect after it, so both
    streams always end with complete lines (and, in a file, complete problems).
    """

    def __init__(self, fmt: OutputFormat, output_file: Path | None, *, columns: str, stdout: bool = True,
                 staged: bool = False, append: bool = False) -> None:
        self.format = resolve_format(fmt)
        self.stdout = stdout
        self.columns = columns
        self.groups_written = 0
        self._collected: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        self._target = output_file
        self._path = output_file.with_name(f".{output_file.name}.partial") if output_file and staged else output_file
        if self._path is not None:
            try:
                self._file = open(self._path, "a" if append else "w", encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write --output {output_file}: {exc.strerror or exc}",
                                 "check that the directory exists and is writable") from None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.close(succeeded=exc_type is None or (isinstance(exc, typer.Exit) and exc.exit_code == 0))

    def write_ranked(self, ranked: list[Candidate], top_k: int | None, *, problem: str,
                     locations: bool = False) -> None:
        """One problem's ranked candidates: the top `top_k` (all for None) to stdout, every one to --output."""
        kept = keep_top_k(ranked, top_k)
        self.write([c.scored_record() for c in kept], problem=problem,
                   locations=[c.location for c in kept] if locations else None,
                   file_records=[c.scored_record() for c in ranked])

    def write(self, records: list[dict[str, Any]], *, problem: str = "", locations: list[str] | None = None,
              file_records: list[dict[str, Any]] | None = None, flush: bool = True) -> None:
        """Write one group's records; `problem` and `locations` label table rows only, never the JSON.

        `file_records`, when given, go to --output instead of `records` (e.g. all candidates, not just the top-k).
        """
        # Serialised before the protected section, so a signal waits only for the writes themselves.
        file_text = "".join(dumps(r) + "\n" for r in (records if file_records is None else file_records)) \
            if self._file is not None else ""
        stdout_text = "".join(dumps(r) + "\n" for r in records) \
            if self.stdout and self.format is OutputFormat.jsonl else ""
        with uninterrupted():
            if self._file is not None:
                self._file.write(file_text)
                if flush:
                    self._file.flush()
            self.groups_written += 1
            if stdout_text:
                try:
                    sys.stdout.write(stdout_text)
                    if flush:
                        sys.stdout.flush()
                except BrokenPipeError:
                    if self._file is None:
                        raise
                    # The reader of stdout went away (`| head`), but --output still gets every record.
                    silence_stdout()
                    self.stdout = False
        if not self.stdout or self.format is OutputFormat.jsonl:
            return
        if self.format is OutputFormat.json:
            self._collected.extend(records)
        else:
            for position, record in enumerate(records):
                where = locations[position] if locations else ""
                self._collected.append({**record, "_problem": problem, "_line": where})

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
        if self.stdout and self.format is OutputFormat.jsonl:
            sys.stdout.flush()

    def close(self, *, succeeded: bool = True) -> None:
        """Emit collected output (JSON array or table) when the command succeeded, and close the output file."""
        try:
            if not succeeded or not self.stdout:
                pass
            elif self.format is OutputFormat.json:
                sys.stdout.write(json_document(self._collected) + "\n")
            elif self.format is OutputFormat.table and self._collected:
                self._print_table()
            self._collected = []
            if succeeded:
                sys.stdout.flush()
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None
                if self._path != self._target and self._path is not None and self._target is not None:
                    if succeeded:
                        self._path.replace(self._target)
                    else:
                        self._path.unlink(missing_ok=True)


    def _print_table(self) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=False, header_style="bold")
        if self.columns == "rank":
            for name, justify in (("problem", "left"), ("rank", "right"), ("score", "right"),
                                  ("reward", "right"), ("valid", "center"), ("code", "left")):
                table.add_column(name, justify=justify, overflow="ellipsis", no_wrap=True,
                                 max_width=_COLUMN_WIDTHS.get(name), min_width=len(name))
            previous = None
            for record in self._collected:
                problem = record.get("_problem")
                table.add_row(_text(problem) if problem != previous else "", str(record.get("rank", "")),
                              _number(record.get("score")), _number(record.get("reward")),
                              "[green]yes[/]" if record.get("valid") else "[red]no[/]", _preview(record.get("code")))
                previous = problem
        else:
            for name, justify in (("line", "right"), ("problem", "left"), ("valid", "center"),
                                  ("lines", "right"), ("code", "left")):
                table.add_column(name, justify=justify, overflow="ellipsis", no_wrap=True,
                                 max_width=_COLUMN_WIDTHS.get(name), min_width=len(name))
            for record in self._collected:
                code = record.get("code") or ""
                table.add_row(_text(record.get("_line", "")), _text(record.get("_problem", "")),
                              "[green]yes[/]" if record.get("valid") else "[red]no[/]",
                              str(len(code.splitlines())), _preview(code))
        Console(file=sys.stdout).print(table)


def json_document(records: list[dict[str, Any]]) -> str:
    """A JSON array of records, built whole before any of it is written (readable UTF-8, or escapes when a record
    holds a lone surrogate, which UTF-8 cannot encode)."""
    value = [json.loads(dumps(record)) for record in records]  # dumps turns NaN/inf into null
    document = json.dumps(value, ensure_ascii=False, indent=2)
    try:
        document.encode("utf-8")
    except UnicodeEncodeError:
        document = json.dumps(value, ensure_ascii=True, indent=2)
    return document


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    """Write a JSONL file whole: to a temporary sibling first, then moved into place (never half a file)."""
    partial = path.with_name(f".{path.name}.writing")
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(dumps(record) + "\n")
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UsageError(f"cannot write --output {path}: {exc.strerror or exc}",
                         "check that the directory exists and is writable") from None


def _text(value: Any) -> str:
    """User data shown in a table: never interpreted as rich markup (a question may well contain "[i]")."""
    from rich.markup import escape

    return escape(str(value))


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _preview(code: Any) -> str:
    from rich.markup import escape

    lines = [line for line in str(code or "").splitlines() if line.strip()]
    if not lines:
        return "[dim](no code)[/]"
    # "class Solution:" says little; the first def line says what the candidate is.
    first = next((line.strip() for line in lines if line.lstrip().startswith(("def ", "async def "))),
                 lines[0].strip())
    more = f" [dim](+{len(lines) - 1} lines)[/]" if len(lines) > 1 else ""
    return escape(first[:_CODE_PREVIEW]) + more


@contextmanager
def progress_bar(total: int, description: str, *, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar on stderr; yields a callback `advance(n)`. Disabled: a no-op callback."""
    if not enabled or total <= 0:
        yield lambda n: None
        return
    with progress_phases(enabled=True) as phases:
        yield phases.phase(description, total)


class _Phases:
    """One rich progress display with a bar per phase (e.g. sampling, then scoring)."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress

    def phase(self, description: str, total: int | None = None) -> Callable[[int], None]:
        """Add a bar; returns `advance(n)`, which also takes `advance.add_tokens(k)` (shown as tokens/s).

        A phase whose size is known later starts with total None.
        """
        if self._progress is None:
            return _Advance(None, 0)
        return _Advance(self._progress, self._progress.add_task(description, total=total, rate=""))

    def set_total(self, description: str, total: int) -> None:
        if self._progress is None:
            return
        for task in self._progress.tasks:
            if task.description == description:
                self._progress.update(task.id, total=total)


class _Advance:
    """A phase's `advance(n)` callback; `add_tokens(k)` keeps a tokens/s rate over the last half minute.

    `add_tokens(0)` marks the start (a generator calls it when sampling begins, after the model loaded).
    """

    WINDOW = 30.0

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress, self._task = progress, task
        self._tokens = 0
        self._points: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()  # generators report from their worker threads

    def __call__(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def add_tokens(self, tokens: int) -> None:
        if self._progress is None:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens += tokens
            self._points.append((now, self._tokens))
            while len(self._points) > 2 and now - self._points[1][0] >= self.WINDOW:
                self._points.popleft()
            (first, before), (last, after) = self._points[0], self._points[-1]
        if last > first:
            self._progress.update(self._task, rate=f"{(after - before) / (last - first):,.0f} tokens/s")


@contextmanager
def progress_phases(*, enabled: bool = True) -> Iterator[_Phases]:
    """Progress for a command with several phases, on stderr; nothing on a non-terminal stderr or when disabled."""
    console = stderr_console()
    if not enabled or not console.is_terminal:
        yield _Phases(None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[rate]}"), console=console, transient=True,
                  # rich's live display would otherwise capture stdout writes and print them on stderr.
                  redirect_stdout=False, redirect_stderr=False) as progress:
        yield _Phases(progress)
