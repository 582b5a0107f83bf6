"""The walkthrough of docs/reward-models.md runs as written, on the tiny models, and its output says what the page
quotes: eval -> pairs -> train -> eval-rm on the held-out problems -> rank and eval with the trained model next to
the untrained one.

The page's blocks for this test are the ones whose docs-test marker names this file. They run in order in a fresh
directory holding examples/ and the tiny models as models/tiny/: `codescaler` lines in this process with Typer's
CliRunner (the libraries load once), `python` lines as subprocesses, `> FILE` redirecting stdout; Python blocks
run in this process. Then the numbers the page quotes are checked against what the commands printed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rm_helpers import one_torch_thread
from typer.testing import CliRunner

from codescaler_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reward-models.md"
MARKER = re.compile(r"^<!-- docs-test: skip .*tests/test_rm_walkthrough\.py.* -->$")
FENCE = re.compile(r"^```(sh|python)$")


def walkthrough_blocks() -> list[tuple[str, str]]:
    """(language, text) of the blocks marked for this test, in page order."""
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    found = []
    for number, line in enumerate(lines[:-1]):
        fence = FENCE.match(lines[number + 1])
        if MARKER.match(line) and fence:
            end = lines.index("```", number + 2)
            found.append((fence.group(1), "\n".join(lines[number + 2:end]) + "\n"))
    return found


def run_line(line: str, directory: Path) -> tuple[str, str]:
    """Run one command line of the page; returns its stdout and stderr."""
    words = shlex.split(line)
    target = None
    if len(words) >= 2 and words[-2] == ">":
        words, target = words[:-2], words[-1]
    if words[0] == "codescaler":
        result = CliRunner().invoke(app, words[1:])
        assert result.exit_code == 0, f"{line}\n{result.stderr}"
        stdout, stderr = result.stdout, result.stderr
    elif words[0] == "python":
        done = subprocess.run([sys.executable, *words[1:]], cwd=directory, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        stdout, stderr = done.stdout, done.stderr
    else:
        raise AssertionError(f"the walkthrough runs only codescaler and python lines, not: {line}")
    if target is not None:
        (directory / target).write_text(stdout, encoding="utf-8")
        stdout = ""
    return stdout, stderr


def test_the_walkthrough_runs_and_prints_the_numbers_the_page_quotes(tmp_path: Path, tiny_models: dict[str, Path],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny").symlink_to(tiny_models["reward"].parent)
    monkeypatch.chdir(tmp_path)
    blocks = walkthrough_blocks()
    assert [language for language, _ in blocks].count("sh") >= 6
    outputs: dict[str, tuple[str, str]] = {}
    with one_torch_thread():
        for language, text in blocks:
            if language == "python":
                exec(compile(text, str(PAGE), "exec"), {"__name__": "walkthrough"})
                continue
            for line in text.splitlines():
                if line.strip():
                    started = time.perf_counter()
                    outputs[line] = run_line(line, tmp_path)
                    print(f"{time.perf_counter() - started:6.1f}s  {line}")  # pytest -s shows each line's time
    with open(tmp_path / "walkthrough-output.txt", "w", encoding="utf-8") as log:  # to update the page from
        for line, (stdout, stderr) in outputs.items():
            log.write(f"$ {line}\n{stdout}{stderr}\n")
    page = PAGE.read_text(encoding="utf-8")

    def output(prefix: str) -> str:
        line = next(line for line in outputs if line.startswith(prefix))
        return "".join(outputs[line])

    # pairs: the summary the page quotes.
    pairs_summary = output("codescaler pairs").strip().splitlines()
    assert pairs_summary and all(summary_line in page for summary_line in pairs_summary), pairs_summary
    # train: held-out accuracy after each epoch, as quoted, and at least 90% in the end.
    report = json.loads((tmp_path / "tiny-rm" / "codescaler-train.json").read_text())
    assert report["history"][-1]["test_accuracy"] >= 0.9
    for entry in report["history"]:
        assert (f"epoch {entry['epoch']:g}: test accuracy {100 * entry['test_accuracy']:.1f}%, loss "
                f"{entry['test_loss']:.4f}, mean margin {entry['test_margin']:.3f}") in page
    # eval-rm: the trained model beats the one it started from on the held-out pairs, by the quoted numbers.
    trained = output("codescaler eval-rm pairs.jsonl -r tiny-rm")
    untrained = output("codescaler eval-rm pairs.jsonl -r models/tiny/reward")
    accuracy = [float(re.search(r"^overall\s+\d+\s+([\d.]+)$", text, re.M).group(1)) for text in (trained, untrained)]
    assert accuracy[0] >= 90.0 and accuracy[0] > accuracy[1]
    for text in (trained, untrained):
        assert re.search(r"^overall.*$", text, re.M).group(0) in page
    # rank and eval on the held-out problems: the reward-model strategy of each model, random and oracle as quoted.
    rows = {}
    for name, prefix in (("trained", "codescaler eval heldout-candidates.jsonl --benchmark humaneval -r tiny-rm"),
                         ("untrained", "codescaler eval heldout-candidates.jsonl --benchmark humaneval -r models")):
        table = output(prefix)
        rows[name] = {strategy: float(value) for strategy, value in
                      re.findall(r"^(reward-model|random|oracle)\s+([\d.]+)", table, re.M)}
    assert rows["trained"]["reward-model"] > rows["untrained"]["reward-model"]
    trained_row, untrained_row = rows["trained"], rows["untrained"]
    assert (f"| reward-model (the candidate the reward model ranks first) | **{trained_row['reward-model']:.1f}%** "
            f"| {untrained_row['reward-model']:.1f}% |") in page
    assert f"| random (expected pass@1) | {trained_row['random']:.1f}% | {untrained_row['random']:.1f}% |" in page
    assert f"| oracle (some candidate passes) | {trained_row['oracle']:.1f}% | {untrained_row['oracle']:.1f}% |" in page
    assert "reward scores came from the cache" in output("codescaler eval heldout-candidates.jsonl --benchmark "
                                                         "humaneval -r tiny-rm")
