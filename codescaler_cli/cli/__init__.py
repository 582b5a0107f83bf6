"""The command-line interface: a thin layer over the library. This module only wires the commands together."""

from __future__ import annotations

import inspect
import os
import signal
import sys
from typing import Annotated, Optional

import typer

from .. import __version__
from ..errors import debug_enabled, set_debug
from ..runs.signals import Interrupted
from ._errors import report
from ._help import Command, Group
from .benchmarks import benchmarks
from .cache import app as cache_app
from .env import env
from .eval import evaluate
from .eval_rm import eval_rm
from .extract import extract
from .generate import generate
from .pairs import pairs
from .rank import rank
from .serve import serve
from .train import train

app = typer.Typer(
    cls=Group,
    name="codescaler",
    help="Best-of-N test-time scaling for code generation with an execution-free reward model (CodeScaler).\n\n"
    "Extract code from model responses, score candidates with a reward model, and keep the best.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"codescaler {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (also CODESCALER_DEBUG=1).")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    set_debug(debug)  # tracebacks, and vLLM's own logs and bars (off again for the next command in this process)


def _help(command: object) -> str:
    """A command's docstring as help text: prose lines joined into paragraphs, indented example lines kept."""
    doc = inspect.getdoc(command) or ""
    paragraphs = []
    for block in doc.split("\n\n"):
        lines = block.splitlines()
        paragraphs.append(block if lines and lines[0].startswith(" ") else " ".join(lines))
    return "\n\n".join(paragraphs)


for _name, _command in (("extract", extract), ("rank", rank), ("generate", generate), ("eval", evaluate),
                         ("pairs", pairs), ("train", train), ("eval-rm", eval_rm), ("serve", serve), ("env", env),
                         ("benchmarks", benchmarks)):
    app.command(_name, help=_help(_command), cls=Command)(_command)
app.add_typer(cache_app, name="cache")


def main() -> None:
    """Console-script entry point."""
    if not debug_enabled():
        # torch's C++ side prints warnings (e.g. NUMA binding) straight to fd 2 unless told otherwise before torch
        # is first imported, whichever command imports it.
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    try:
        app()
    except KeyboardInterrupt as exc:  # outside a command (e.g. while parsing options): no hint to give
        report("interrupted")
        sys.exit(exc.exit_code if isinstance(exc, Interrupted) else 130)
    finally:
        # The command is over and its output complete: a signal arriving during interpreter teardown must not
        # turn a finished run into a crash (SIGKILL still ends a teardown that hangs).
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)
