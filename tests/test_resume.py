"""`rank --resume` on the tiny reward model: repairing what a SIGKILL leaves, and refusing what cannot be resumed.

The subprocess interrupts are in test_signals.py; here the damaged files are made by hand, so every case is hit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import parse_jsonl, write_jsonl
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.resume import settings_path

runner = CliRunner()


def records() -> list[dict[str, object]]:
    out = []
    for problem in range(4):
        for variant in range(3):
            out.append({"id": problem, "question": f"Problem {problem}: add one to x.",
                        "code": f"def f(x):\n    return x + {variant + problem}\n"})
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, reward_dir: Path) -> dict[str, object]:
    root = tmp_path_factory.mktemp("resume")
    candidates = write_jsonl(root / "candidates.jsonl", records())
    reference = root / "reference.jsonl"
    args = ["rank", str(candidates), "-r", str(reward_dir), "--max-batch-tokens", "256", "-f", "jsonl"]
    result = runner.invoke(app, [*args, "-o", str(reference)])
    assert result.exit_code == 0, result.stderr
    return {"candidates": candidates, "args": args, "reference": reference.read_bytes(),
            "settings": settings_path(reference).read_bytes()}


def resumable_copy(run: dict[str, object], directory: Path, content: bytes) -> Path:
    """An output file holding `content`, with the settings sidecar of the reference run."""
    output = directory / "out.jsonl"
    output.write_bytes(content)
    settings_path(output).write_bytes(run["settings"])  # type: ignore[arg-type]
    return output


def test_a_partial_last_line_and_an_unfinished_problem_are_cut_and_redone(run: dict[str, object],
                                                                         tmp_path: Path) -> None:
    reference: bytes = run["reference"]  # type: ignore[assignment]
    lines = reference.splitlines(keepends=True)
    # Problem 1 complete, problem 2 with one whole record and half of the next: what a SIGKILL mid-write leaves.
    damaged = b"".join(lines[:7]) + lines[7][: len(lines[7]) // 2]
    output = resumable_copy(run, tmp_path, damaged)
    result = runner.invoke(app, [*run["args"], "-o", str(output), "--resume"])  # type: ignore[misc]
    assert result.exit_code == 0, result.stderr
    assert output.read_bytes() == reference
    assert "resuming: 2 of 4 problems are complete" in result.stderr
    assert "cut off a partial last line and 1 records of an unfinished problem" in result.stderr
    # stdout: the two problems this run added, each once.
    assert [r["id"] for r in parse_jsonl(result.stdout)] == [2, 2, 2, 3, 3, 3]


def test_resume_without_an_output_file_yet_starts_fresh(run: dict[str, object], tmp_path: Path) -> None:
    output = tmp_path / "new.jsonl"
    result = runner.invoke(app, [*run["args"], "-o", str(output), "--resume", "-q"])  # type: ignore[misc]
    assert result.exit_code == 0, result.stderr
    assert output.read_bytes() == run["reference"]


def test_different_settings_are_refused_naming_the_difference(run: dict[str, object], tmp_path: Path) -> None:
    reference: bytes = run["reference"]  # type: ignore[assignment]
    half = b"".join(reference.splitlines(keepends=True)[:6])
    output = resumable_copy(run, tmp_path, half)
    result = runner.invoke(app, [*run["args"], "-o", str(output), "--resume", "--max-length", "512",  # type: ignore[misc]
                                 "--id-field", "question"])
    assert result.exit_code == 2
    assert f"cannot resume {output}: it was written with different settings" in result.stderr
    assert "--max-length 4096 then, 512 now" in result.stderr and '--id-field "id" then, "question" now' in result.stderr
    assert output.read_bytes() == half  # refused before touching anything


def test_an_output_of_another_input_is_refused(run: dict[str, object], tmp_path: Path) -> None:
    other = [{**record, "id": f"other-{record['id']}"} for record in parse_jsonl(run["reference"].decode())]  # type: ignore[union-attr]
    output = resumable_copy(run, tmp_path, b"")
    write_jsonl(output, other[:3])
    result = runner.invoke(app, [*run["args"], "-o", str(output), "--resume"])  # type: ignore[misc]
    assert result.exit_code == 2
    assert f"{output}:1: this record belongs to another problem than the input's problem 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_resume_needs_an_output_and_a_settings_file(run: dict[str, object], tmp_path: Path) -> None:
    no_output = runner.invoke(app, [*run["args"], "--resume"])  # type: ignore[misc]
    assert no_output.exit_code == 2 and "--resume continues the file given with --output" in no_output.stderr
    stray = tmp_path / "stray.jsonl"
    stray.write_bytes(run["reference"])  # type: ignore[arg-type]
    no_settings = runner.invoke(app, [*run["args"], "-o", str(stray), "--resume"])  # type: ignore[misc]
    assert no_settings.exit_code == 2 and "its settings file is missing" in no_settings.stderr
