"""How `codescaler train` shows a training run on stderr: a progress bar on a terminal, a line per log entry
otherwise, and notes about the data (truncated, skipped or identical pairs); nothing with --quiet."""

from __future__ import annotations

from typing import Any

from ..rm.training import TokenizedPairs, TrainingProgress
from ._output import info, stderr_console


class StderrTrainingProgress(TrainingProgress):
    """Training progress on stderr: a bar on a terminal, a line per log entry otherwise; nothing with --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.console = stderr_console()
        self.bar: Any = None
        self.task: Any = None

    def note(self, message: str) -> None:
        if not self.quiet:
            info(f"note: {message}")

    def prepared(self, train: TokenizedPairs, test: TokenizedPairs) -> None:
        if self.quiet:
            return
        info(f"{len(train)} training pairs, {len(test)} test pairs")
        cut = train.truncated + test.truncated
        if cut:
            info(f"note: {cut} pairs are longer than --max-length and were cut on the right, as the scorer cuts them")
        if train.skipped + test.skipped:
            info(f"note: {train.skipped + test.skipped} pairs longer than --max-length were left out (--overlong skip)")
        if train.identical + test.identical:
            info(f"note: {train.identical + test.identical} pairs have the same tokens on both sides and teach nothing")

    def started(self, total_steps: int, done_steps: int) -> None:
        if self.quiet:
            return
        if done_steps:
            info(f"resuming at step {done_steps} of {total_steps}")
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("Training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("{task.fields[loss]}"), console=self.console, transient=True,
                                redirect_stdout=False, redirect_stderr=False)
            self.bar.start()
            self.task = self.bar.add_task("train", total=total_steps, completed=done_steps, loss="")

    def step(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step)

    def logged(self, step: int, logs: dict[str, float]) -> None:
        if self.quiet or "loss" not in logs:
            return
        line = f"loss {logs['loss']:.4f}" + (f", accuracy {logs['accuracy']:.2f}" if "accuracy" in logs else "")
        if self.bar is not None:
            self.bar.update(self.task, loss=line)
        else:
            info(f"step {step} (epoch {logs.get('epoch', 0):.2f}): {line}")

    def evaluated(self, entry: dict[str, float]) -> None:
        if self.quiet:
            return
        line = (f"epoch {entry['epoch']:g}: test accuracy {100 * entry['test_accuracy']:.1f}%, loss "
                f"{entry['test_loss']:.4f}, mean margin {entry['test_margin']:.3f}")
        if self.bar is not None:
            self.bar.console.print(line, highlight=False)
        else:
            info(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

