"""`codescaler cache info|clear DIR`: inspect or empty a `--cache` directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ._errors import handle_errors
from ._help import Command, Group
from ._options import OUTPUT

CacheDirArgument = Annotated[Optional[Path], typer.Argument(
    help="The cache directory (default: $CODESCALER_CACHE).", envvar="CODESCALER_CACHE", file_okay=False,
    show_default=False)]

app = typer.Typer(cls=Group, name="cache", help="Inspect or empty a --cache directory.", no_args_is_help=True,
                  add_completion=False, context_settings={"help_option_names": ["-h", "--help"]})


def _open_existing(directory: Optional[Path]):  # type: ignore[no-untyped-def]
    from ..runs.cache import Cache, cache_file

    if directory is None:
        raise UsageError("no cache directory given", "pass DIR, or set CODESCALER_CACHE")
    if not cache_file(directory).exists():
        raise UsageError(f"{directory} holds no codescaler cache", "a run with --cache DIR creates one")
    return Cache(directory)


@app.command("info", cls=Command)
@handle_errors
def info(directory: CacheDirArgument = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as one JSON object.",
                                               rich_help_panel=OUTPUT)] = False) -> None:
    """How many scores and samples a cache holds, and its size on disk."""
    with _open_existing(directory) as cache:
        numbers = cache.info()
    if as_json:
        print(json.dumps(numbers))
        return
    print(f"{numbers['path']}: {numbers['scores']:,} scores, {numbers['samples']:,} samples, "
          f"{numbers['bytes'] / 1e6:.1f} MB")


@app.command("clear", cls=Command)
@handle_errors
def clear(directory: CacheDirArgument = None,
          only: Annotated[Optional[str], typer.Option("--only", help="Clear only 'scores' or only 'samples'.",
                                                      show_default=False)] = None) -> None:
    """Delete the cached scores and samples (the directory and its database stay; a corrupt database goes)."""
    from ..runs.cache import CacheCorrupt, remove_cache

    if only not in (None, "scores", "samples"):
        raise UsageError(f"--only {only}: expected 'scores' or 'samples'")
    try:
        with _open_existing(directory) as cache:
            before = cache.info()
            cache.clear(only or "all")
    except CacheCorrupt as exc:
        # Nothing in a damaged database can be trusted, whatever --only asked: the file goes (the next run that
        # uses the directory starts a new one).
        assert directory is not None
        freed = remove_cache(directory)
        print(f"{exc.message}: removed it ({freed / 1e6:.1f} MB)", file=sys.stderr)
        return
    removed = [f"{before[kind]:,} {kind}" for kind in ("scores", "samples") if only in (None, kind)]
    print(f"cleared {' and '.join(removed)} from {before['path']}", file=sys.stderr)
