"""The CLI's one output layer: records to stdout (JSONL, JSON or a table), notes, warnings and progress to stderr.

stdout carries data only. Progress bars, warnings and summaries go to stderr, and progress is drawn only when
stderr is a terminal. The output file (`-o`) is the library's (`runs.RunOutput`): the run writes a problem's
records there and, in the same stretch that signals wait for, hands them to the printers here.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any

import typer

from ..errors import StorageError
from ..records import Candidate, dumps, json_array
from ..runs.reporter import Reporter
from ..selection import top_k as keep_top_k
from ._errors import silence_stdout

_CODE_PREVIEW = 60
_COLUMNS = {"rank": (("problem", "left"), ("rank", "right"), ("score", "right"), ("reward", "right"),
                     ("valid", "center"), ("code", "left")),
            "extract": (("line", "right"), ("problem", "left"), ("valid", "center"), ("lines", "right"),
                        ("code", "left"))}


class OutputFormat(str, Enum):
    auto = "auto"
    jsonl = "jsonl"
    json = "json"
    table = "table"


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def print_code(code: str) -> None:
    """A program on stdout: highlighted on a terminal, as it is in a pipe."""
    if stdout_is_terminal():
        from rich.console import Console
        from rich.syntax import Syntax

        Console().print(Syntax(code, "python", line_numbers=False, word_wrap=True))
    else:
        write_stdout(code + "\n")


def write_stdout(text: str) -> None:
    """All of `text` to stdout, now. A signal arriving while a pipe is full can cut a buffered write short (CPython's
    BufferedWriter returns the short count and TextIOWrapper drops the rest), so the bytes go out in a loop.

    stdout on a full disk (or any device that fails) is a StorageError, not a crash; a reader that went away is
    the BrokenPipeError callers handle."""
    try:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:  # a text-only stream (no pipe under it)
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        sys.stdout.flush()
        data = memoryview(text.encode(sys.stdout.encoding or "utf-8", sys.stdout.errors or "strict"))
        while data:
            data = data[buffer.write(data):]
        buffer.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        silence_stdout()  # what stays buffered must not fail again when Python exits
        raise StorageError(f"cannot write to standard output: {exc.strerror or exc}",
                           "free some space where stdout goes, or write the records with -o FILE") from None


def info(message: str) -> None:
    print(message, file=sys.stderr)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class RecordWriter:
    """Records to stdout as they come: streamed JSONL, or collected for a JSON document or a table that is printed
    only when the command succeeds (a failure never leaves half a document, or a misleading empty one).

    `keep_going`: an output file gets every record, so a reader of stdout that goes away (`| head`) ends only
    what stdout shows, not the run. `enabled` False: nothing goes to stdout (the command prints something else).
    """

    def __init__(self, fmt: OutputFormat, *, columns: str, keep_going: bool = False, enabled: bool = True) -> None:
        if fmt is OutputFormat.auto:
            fmt = OutputFormat.table if stdout_is_terminal() else OutputFormat.jsonl
        self.format, self.columns, self.keep_going, self.enabled = fmt, columns, keep_going, enabled
        self._collected: list[dict[str, Any]] = []

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None or (isinstance(exc, typer.Exit) and exc.exit_code == 0):
            self.finish()

    def write(self, records: list[dict[str, Any]], *, problem: str | list[str] = "",
              locations: list[str] | None = None) -> None:
        """One group's records; `problem` (one label, or one per record) and `locations` label table rows only."""
        if not self.enabled:
            return
        if self.format is OutputFormat.jsonl:
            try:
                write_stdout("".join(dumps(record) + "\n" for record in records))
            except BrokenPipeError:
                if not self.keep_going:
                    raise
                silence_stdout()
                self.enabled = False
        elif self.format is OutputFormat.json:
            self._collected.extend(records)
        else:
            problems = problem if isinstance(problem, list) else [problem] * len(records)
            self._collected.extend({**record, "_problem": problems[i], "_line": locations[i] if locations else ""}
                                   for i, record in enumerate(records))

    def write_ranked(self, ranked: list[Candidate], top_k: int | None, *, problem: str,
                     locations: bool = False) -> None:
        """One problem's ranked candidates, the top `top_k` of them (all for None)."""
        kept = keep_top_k(ranked, top_k)
        self.write([c.scored_record() for c in kept], problem=problem,
                   locations=[c.location for c in kept] if locations else None)

    def finish(self) -> None:
        """Print the collected JSON document or table (the command succeeded)."""
        if self.enabled and self.format is OutputFormat.json:
            write_stdout(json_array(self._collected) + "\n")
        elif self.enabled and self.format is OutputFormat.table and self._collected:
            self._print_table()
        self._collected = []
        sys.stdout.flush()

    def _print_table(self) -> None:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(show_lines=False, header_style="bold")
        for name, justify in _COLUMNS[self.columns]:
            table.add_column(name, justify=justify, overflow="ellipsis", no_wrap=True, min_width=len(name),
                             max_width={"problem": 24, "code": 48}.get(name))
        previous = None
        for record in self._collected:
            valid = "[green]yes[/]" if record.get("valid") else "[red]no[/]"
            problem = escape(str(record["_problem"]))  # user data: never rich markup
            if self.columns == "rank":
                table.add_row(problem if problem != previous else "", str(record.get("rank", "")),
                              _number(record.get("score")), _number(record.get("reward")), valid,
                              _preview(record.get("code")))
                previous = problem
            else:
                code = record.get("code") or ""
                table.add_row(escape(str(record["_line"])), problem, valid, str(len(code.splitlines())),
                              _preview(code))
        Console(file=sys.stdout).print(table)


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


def exit_on_failures(first: list[str], failed: int, seen: int, what: str) -> None:
    """After everything was written: name the first failed items, count them all, and exit 1."""
    if not failed:
        return
    for line in first:
        warn(line)
    info(f"error: {failed} of {seen} {what} (their records carry an 'error'); the rest were written")
    raise typer.Exit(1)


class StderrReporter(Reporter):
    """A run's notes and warnings on stderr, and one progress display with a bar per phase (on a terminal)."""

    def __init__(self, progress: Any, *, quiet: bool) -> None:
        self._progress, self.quiet = progress, quiet
        self._phases: dict[str, _Advance] = {}

    def _print(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr)

    def info(self, message: str) -> None:
        if not self.quiet:
            self._print(message)

    def warn(self, message: str) -> None:
        self._print(f"warning: {message}")

    def phase(self, description: str, total: int | None = None, *, waiting: str | None = None) -> _Advance:
        """Add a bar; returns `advance(n)`, which also takes `advance.add_tokens(k)` (shown as tokens/s) and
        `advance.start()`. Until the work starts the bar shows `waiting` (when given), pulsing; a phase without a
        total shows once `set_total` gives it one."""
        if self._progress is None:
            return _Advance(None, None, description, total)
        task = self._progress.add_task(waiting or description, total=None if waiting else total, rate="",
                                       visible=total is not None)
        advance = _Advance(self._progress, task, description, total, waiting=waiting is not None,
                           shown=total is not None)
        self._phases[description] = advance
        return advance

    def set_total(self, description: str, total: int) -> None:
        if description in self._phases:
            self._phases[description].set_total(total)


class _Advance:
    """A phase's `advance(n)` callback; `add_tokens(k)` keeps a tokens/s rate over the last half minute.

    `start()`, the first count, or `add_tokens(0)` (a generator calls it when sampling begins, after the model
    loaded) mark the start: a bar that was showing what it waited for ("Loading the generator") shows its phase.
    """

    WINDOW = 30.0

    def __init__(self, progress: Any, task: Any, description: str, total: int | None, *,
                 waiting: bool = False, shown: bool = True) -> None:
        self._progress, self._task = progress, task
        self._description, self._total, self._waiting, self._shown = description, total, waiting, shown
        self._tokens = 0
        self._points: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()  # generators report from their worker threads

    def start(self) -> None:
        if self._progress is None or not self._waiting:
            return
        with self._lock:
            if self._waiting:
                self._waiting, self._shown = False, True
                self._progress.update(self._task, description=self._description, total=self._total, visible=True)

    def set_total(self, total: int) -> None:
        self._total = total
        if self._progress is None:
            return
        if self._shown:
            self._progress.update(self._task, total=None if self._waiting else total)
        else:  # shown from now on: its clock starts now
            self._shown = True
            self._progress.reset(self._task, total=None if self._waiting else total, visible=True)

    def __call__(self, n: int) -> None:
        if self._progress is not None:
            if n:
                self.start()
            self._progress.advance(self._task, n)

    def add_tokens(self, tokens: int) -> None:
        if self._progress is None:
            return
        self.start()
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
def reporting(*, quiet: bool = False) -> Iterator[StderrReporter]:
    """The reporter of one command: progress bars only on a terminal stderr and when not quiet."""
    from rich.console import Console

    console = Console(file=sys.stderr, highlight=False)
    if quiet or not console.is_terminal:
        yield StderrReporter(None, quiet=quiet)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class Count(MofNCompleteColumn):
        """done/total; nothing while a phase waits for its model (no total yet)."""

        def render(self, task: Any) -> Text:
            return Text("") if task.total is None else super().render(task)

    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), Count(),
                  TimeElapsedColumn(), TextColumn("{task.fields[rate]}"), console=console, transient=True,
                  # rich's live display would otherwise capture stdout writes and print them on stderr.
                  redirect_stdout=False, redirect_stderr=False) as progress:
        yield StderrReporter(progress, quiet=quiet)
