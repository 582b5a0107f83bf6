"""codescaler's one progress display: a bar per phase on a terminal stderr, with tokens/s while sampling."""

from __future__ import annotations

import io
import re
import sys

import pytest

from codescaler_cli.cli import _output


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sampling_shows_tokens_per_second_over_the_last_half_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws bars on this StringIO as on a terminal
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    clock = Clock()
    monkeypatch.setattr(_output.time, "monotonic", clock)
    with _output.reporting() as phases:
        advance = phases.phase("Sampling", 8)
        scoring = phases.phase("Scoring")
        tasks = {task.description: task for task in phases._progress.tasks}

        def rate() -> str:
            return str(tasks["Sampling"].fields["rate"])

        clock.now += 5  # the model loads: not part of the rate
        advance.add_tokens(0)  # sampling starts
        assert rate() == ""  # one point says nothing about speed
        clock.now += 2
        advance(4)
        advance.add_tokens(100)
        assert rate() == "50 tokens/s"
        clock.now += 2
        advance.add_tokens(300)
        assert rate() == "100 tokens/s"
        clock.now += 2
        advance(4)
        advance.add_tokens(100)
        assert rate() == "83 tokens/s"  # 500 tokens over the 6 s since sampling started
        # Half a minute later the first points no longer count: the rate follows the current speed.
        for _ in range(40):
            clock.now += 1
            advance.add_tokens(1000)
        assert rate() == "1,000 tokens/s"
        assert tasks["Sampling"].completed == 8 and tasks["Scoring"].fields["rate"] == ""
        scoring(3)
        phases._progress.refresh()
    drawn = stderr.getvalue()
    assert re.search(r"Sampling.*8/8.*1,000 tokens/s", drawn), drawn[-2000:]


def test_without_a_terminal_nothing_is_drawn_and_tokens_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    with _output.reporting() as phases:
        advance = phases.phase("Sampling", 8)
        advance(8)
        advance.add_tokens(100)
    assert stderr.getvalue() == ""
