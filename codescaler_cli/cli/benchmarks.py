"""`codescaler benchmarks`: the benchmarks `--benchmark` knows, with their source, pinned revision, problem count and
whether they are in the Hugging Face cache; `--download` fills the cache for offline runs.

stdout carries the list only (a table on a terminal, JSONL in a pipe); download progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from ..evaluation.benchmarks import BenchmarkInfo, download_benchmark, get_benchmark, list_benchmarks
from ._errors import handle_errors
from ._options import Format, OutputFormat, Release
from ._output import info, stdout_is_terminal


@handle_errors
def benchmarks(
    output_format: Format = OutputFormat.auto,
    download: Annotated[Optional[list[str]], typer.Option(
        "--download", help="Fetch this benchmark into the Hugging Face cache first (repeat for several).",
        show_default=False, metavar="NAME")] = None,
    release: Annotated[Optional[Release], typer.Option(
        "--release", help="With --download livecodebench: the release to fetch.", case_sensitive=False,
        show_default=False)] = None,
) -> None:
    """List the benchmarks: where the data comes from, the revision it is pinned to, how many problems, and whether
    it is cached (then `HF_HUB_OFFLINE=1` runs work).

        codescaler benchmarks

        codescaler benchmarks --download livecodebench --release v6 --download humaneval-plus

        HF_HUB_OFFLINE=1 codescaler eval samples.jsonl --benchmark livecodebench --since 2025-02-01
    """
    for name in download or []:
        benchmark = get_benchmark(name)
        paths = download_benchmark(benchmark.name, release=release.value if release is not None else None)
        info(f"{benchmark.name}: {len(paths)} file(s) cached")
    rows = list_benchmarks()
    fmt = output_format if output_format is not OutputFormat.auto else \
        (OutputFormat.table if stdout_is_terminal() else OutputFormat.jsonl)
    if fmt is OutputFormat.table:
        _print_table(rows)
    elif fmt is OutputFormat.json:
        json.dump([row.record() for row in rows], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        for row in rows:
            sys.stdout.write(json.dumps(row.record(), ensure_ascii=False) + "\n")


def _print_table(rows: list[BenchmarkInfo]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(header_style="bold")
    for column, justify in (("benchmark", "left"), ("problems", "right"), ("cached", "center"),
                            ("source", "left"), ("revision", "left"), ("graded as", "left")):
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(Text(row.name), "?" if row.problems is None else str(row.problems),
                      "yes" if row.cached else "no", Text(row.source), Text(row.revision[:12]), Text(row.grader))
    Console(file=sys.stdout).print(table)
