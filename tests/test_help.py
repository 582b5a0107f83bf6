"""Help that fits: `--help` shows the options most runs need, in panels, within a screen or two; the expert
settings wait behind `--help-all`; every value shows a name or its choices, never a placeholder that says nothing."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from codescaler_cli.cli import app

runner = CliRunner()
COMMANDS = [["extract"], ["rank"], ["generate"], ["eval"], ["pairs"], ["train"], ["eval-rm"], ["serve"], ["env"],
            ["benchmarks"], ["cache", "info"], ["cache", "clear"], []]
WITH_EXPERT_OPTIONS = ["rank", "generate", "eval", "eval-rm", "serve"]
SCREEN = 60  # lines of an 80-column terminal


def _help(*args: str) -> str:
    result = runner.invoke(app, [*args], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _panels(text: str) -> dict[str, list[str]]:
    """Each panel's title and the options (long names) it lists."""
    panels: dict[str, list[str]] = {}
    title = None
    for line in text.splitlines():
        opening = re.match(r"╭─ (.+?) ─", line)
        if opening:
            title = opening.group(1)
            panels[title] = []
        elif line.startswith("╰"):
            title = None
        elif title is not None:
            panels[title] += re.findall(r"^│ (?:\*\s+)?(--[\w-]+)", line)
    return panels


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "codescaler")
def test_no_placeholder_that_says_nothing(command: list[str]) -> None:
    for flag in ("--help", "--help-all") if command and command[0] in WITH_EXPERT_OPTIONS else ("--help",):
        text = _help(*command, flag)
        assert "<bool>" not in text and "<list[" not in text, text
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        assert "[[" not in usage, usage
        options = _panels(text).get("Options")
        assert options is None or set(options) - {"--help"}, f"an Options panel with --help alone:\n{text}"


@pytest.mark.parametrize("command", WITH_EXPERT_OPTIONS)
def test_help_fits_and_help_all_shows_the_rest(command: str) -> None:
    short, full = _help(command, "--help"), _help(command, "--help-all")
    assert len(short.splitlines()) <= 2 * SCREEN, f"{command} --help: {len(short.splitlines())} lines"
    shown = {name for names in _panels(short).values() for name in names}
    everything = {name for names in _panels(full).values() for name in names}
    assert shown < everything and len(everything - shown) >= 5, (command, sorted(everything - shown))
    assert "--help-all" in shown
    assert max(len(line) for line in short.splitlines()) <= 80


def test_the_common_options_are_in_the_short_help() -> None:
    shown = {name for names in _panels(_help("generate", "--help")).values() for name in names}
    assert {"--problems", "--model", "--n", "--max-tokens", "--seed", "--reward-model", "--base-url", "--reward-url",
            "--output", "--format", "--resume"} <= shown
    assert {"--gpu-memory-utilization", "--top-p", "--prompt-template", "--reward-timeout"}.isdisjoint(shown)


def test_choices_instead_of_free_text() -> None:
    text = _help("eval", "--help")
    assert "<v1|v2|v3|v4|v5|v6|latest>" in text
    bad = runner.invoke(app, ["eval", "x.jsonl", "--benchmark", "livecodebench", "--release", "v9"])
    assert bad.exit_code == 2 and "v9" in bad.stderr


def test_an_option_speaks_of_its_own_command() -> None:
    output_help = _help("extract", "--help")
    assert "--top-k" not in output_help and "ranked" not in output_help
