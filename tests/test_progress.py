"""codescaler's one progress display: a bar per phase on a terminal stderr, with tokens/s while sampling."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest
from helpers import EXAMPLES

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


def test_a_phase_shows_what_it_waits_for_until_its_work_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with _output.reporting() as phases:
        sampling = phases.phase("Sampling", 8, waiting="Loading the generator")
        scoring = phases.phase("Scoring", waiting="Loading the reward model")  # its total comes once sampling ends
        progress = phases._progress
        task = {t.id: t for t in progress.tasks}
        sampling_task, scoring_task = task[0], task[1]
        assert sampling_task.description == "Loading the generator" and sampling_task.total is None
        assert not scoring_task.visible
        sampling(0)  # nothing sampled yet (e.g. no sample cached): still loading
        assert sampling_task.description == "Loading the generator"
        sampling.add_tokens(0)  # the engine is up: sampling starts
        assert sampling_task.description == "Sampling" and sampling_task.total == 8
        sampling(8)
        phases.set_total("Scoring", 3)
        assert scoring_task.visible and scoring_task.description == "Loading the reward model"
        scoring.start()  # the reward model is loaded
        assert scoring_task.description == "Scoring" and scoring_task.total == 3


def test_rank_shows_the_model_loading_then_scoring(monkeypatch: pytest.MonkeyPatch, reward_dir: Path) -> None:
    from typer.testing import CliRunner

    from codescaler_cli.cli import app

    result = CliRunner().invoke(app, ["rank", str(EXAMPLES / "candidates.jsonl"), "-r", str(reward_dir), "-f",
                                      "jsonl"], env={"TTY_COMPATIBLE": "1"})
    assert result.exit_code == 0, result.stderr
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stderr)
    first = re.search(r"Loading the reward model|Scoring", drawn)
    assert first is not None and first.group(0) == "Loading the reward model", drawn[:2000]
    assert re.search(r"Scoring [━ ]+ 9/9", drawn), drawn[-2000:]


@pytest.mark.vllm
def test_in_process_sampling_counts_every_sample_and_draws_what_n_samples_draw(coder_dir: Path) -> None:
    """One engine request per sample, seed s + j: the count moves sample by sample, and the samples are the ones
    vLLM draws for one request of n samples with seed s."""
    from codescaler_cli.generation import GenerationRequest, SamplingSettings
    from codescaler_cli.generation.vllm_engine import VllmGenerator

    class Counted(list):  # type: ignore[type-arg]
        """Counts as codescaler's bar does: samples, and tokens for the rate."""

        tokens = 0

        def __call__(self, count: int) -> None:
            self.append(count)

        def add_tokens(self, count: int) -> None:
            self.tokens += count

    generator = VllmGenerator(str(coder_dir), max_model_len=512)
    try:
        messages = [{"role": "user", "content": "Write add(a, b)"}]
        settings = SamplingSettings(n=6, temperature=0.6, top_p=0.95, max_tokens=48)
        counted = Counted()
        samples = generator.generate([GenerationRequest(messages, 6, 5)], settings, counted)[0]
        vllm = generator._vllm
        whole = generator.llm.generate([{"prompt_token_ids": generator.prompt_ids(messages)}],
                                       [vllm.SamplingParams(n=6, seed=5, temperature=0.6, top_p=0.95, max_tokens=48)],
                                       use_tqdm=False)[0]
    finally:
        generator.close()
    assert [s.text for s in samples] == [o.text for o in whole.outputs]
    assert counted == [1] * 6  # not one step of 6 when the last sample finishes
    assert counted.tokens == sum(s.tokens for s in samples)  # for the rate, relayed as the samples finish

