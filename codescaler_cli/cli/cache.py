"""`codescaler cache info|clear DIR`, and the options long runs share: `--resume`, `--cache DIR`, `--no-cache`."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ._errors import handle_errors
from ._options import OUTPUT

LONG_RUNS = "Long runs"

Resume = Annotated[
    bool,
    typer.Option("--resume", help="Continue an interrupted run: problems already complete in --output are kept and "
                 "skipped, the rest appended. Refused when the settings differ from the first run's.",
                 rich_help_panel=LONG_RUNS),
]
CacheDir = Annotated[
    Optional[Path],
    typer.Option("--cache", envvar="CODESCALER_CACHE", file_okay=False, show_default=False,
                 help="Keep reward scores and generated samples in this directory (SQLite) and reuse them; "
                 "a run whose scores are all cached loads no model.", rich_help_panel=LONG_RUNS),
]
NoCache = Annotated[
    bool,
    typer.Option("--no-cache", help="Ignore CODESCALER_CACHE for this run.", rich_help_panel=LONG_RUNS),
]

CacheDirArgument = Annotated[
    Optional[Path],
    typer.Argument(help="The cache directory (default: $CODESCALER_CACHE).", envvar="CODESCALER_CACHE",
                   file_okay=False, show_default=False),
]

def resume_command() -> str:
    """The command line that continues this run: the same arguments plus --resume."""
    arguments = sys.argv[1:]
    program = Path(sys.argv[0]).name if sys.argv else ""
    if program not in ("codescaler", "__main__.py"):
        return "the same command with --resume"  # e.g. called from Python: the command line is not ours to know
    if "--resume" not in arguments:
        arguments = [*arguments, "--resume"]
    return "codescaler " + shlex.join(arguments)


app = typer.Typer(name="cache", help="Inspect or empty a --cache directory.", no_args_is_help=True,
                  add_completion=False, context_settings={"help_option_names": ["-h", "--help"]})


def _open_existing(directory: Optional[Path]):  # type: ignore[no-untyped-def]
    from ..cache import Cache, cache_file

    if directory is None:
        raise UsageError("no cache directory given", "pass DIR, or set CODESCALER_CACHE")
    if not cache_file(directory).exists():
        raise UsageError(f"{directory} holds no codescaler cache", "a run with --cache DIR creates one")
    return Cache(directory)


@app.command("info")
@handle_errors
def info(directory: CacheDirArgument = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as one JSON object.",
                                               rich_help_panel=OUTPUT)] = False) -> None:
    """How many scores and samples a cache holds, and its size on disk."""
    cache = _open_existing(directory)
    try:
        numbers = cache.info()
    finally:
        cache.close()
    if as_json:
        print(json.dumps(numbers))
        return
    print(f"{numbers['path']}: {numbers['scores']:,} scores, {numbers['samples']:,} samples, "
          f"{numbers['bytes'] / 1e6:.1f} MB")


@app.command("clear")
@handle_errors
def clear(directory: CacheDirArgument = None,
          only: Annotated[Optional[str], typer.Option("--only", help="Clear only 'scores' or only 'samples'.",
                                                      show_default=False)] = None) -> None:
    """Delete the cached scores and samples (the directory and its database stay)."""
    if only not in (None, "scores", "samples"):
        raise UsageError(f"--only {only}: expected 'scores' or 'samples'")
    cache = _open_existing(directory)
    try:
        before = cache.info()
        cache.clear(only or "all")
    finally:
        cache.close()
    removed = [f"{before[kind]:,} {kind}" for kind in ("scores", "samples") if only in (None, kind)]
    print(f"cleared {' and '.join(removed)} from {before['path']}", file=sys.stderr)
