"""What `--help` shows: the options most runs need, grouped in panels, and the rest (marked `hidden`, the expert
settings) behind `--help-all`; no placeholder where a type says nothing (a flag's `<bool>`).

Every command is built with `Command` (and the app with `Group`), which are Typer's own classes with that one
change to what help prints; parsing is untouched.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

HELP_ALL_FLAG = "--help-all"


def _no_placeholder(param: Any) -> None:
    """A flag takes no value: nothing to show where other options show `<int>` or a choice."""
    if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
        param.metavar = ""


class _FlagsWithoutPlaceholders:
    """Mixed into a click command: its flags, -h/--help included, show no `<bool>`."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        for param in self.params:
            _no_placeholder(param)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            _no_placeholder(option)
        return option


class Command(_FlagsWithoutPlaceholders, TyperCommand):
    """A Typer command whose flags show no `<bool>`."""


class Group(_FlagsWithoutPlaceholders, TyperGroup):
    """The app (and `cache`): its own options and -h/--help without `<bool>`."""


def _show_all(ctx: typer.Context, value: bool) -> None:
    """--help-all: the help with every option, the hidden expert ones in their panels too."""
    if not value or ctx.resilient_parsing:
        return
    hidden = [param for param in ctx.command.params if getattr(param, "hidden", False)]
    for param in hidden:
        param.hidden = False
    try:
        typer.echo(ctx.get_help(), color=ctx.color)
    finally:
        for param in hidden:
            param.hidden = True
    raise typer.Exit()


HelpAll = Annotated[bool, typer.Option(
    HELP_ALL_FLAG, callback=_show_all, is_eager=True, expose_value=False,
    help="Show every option, expert settings too.")]
