"""`codescaler env`: what matters when something does not work, for people or (with --json) for bug reports."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from ._errors import handle_errors


@handle_errors
def env(
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON (for bug reports).")] = False,
) -> None:
    """Show versions (codescaler, Python, torch, transformers, vLLM and its CPU or GPU build), CUDA devices and
    memory, whether bubblewrap works, the Hugging Face cache and offline settings, and whether the default models
    are cached.

    Attach `codescaler env --json` to a bug report.

        codescaler env
        codescaler env --json > env.json
    """
    from ..diagnostics import collect_environment, format_environment

    report = collect_environment()
    if json_output:
        json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(format_environment(report))
