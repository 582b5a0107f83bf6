"""`rank --resume` on the tiny reward model: repairing what a SIGKILL leaves, and refusing what cannot be resumed.

The subprocess interrupts are in test_signals.py; here the damaged files are made by hand, so every case is hit.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import parse_jsonl, write_jsonl
from helpers.processes import read_or_empty, reaped
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.runs.resume import settings_path

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


# ---------------------------------------------------------------------------------------------------------------
# generate --problems --resume, on the tiny coder (in-process vLLM: one engine at a time, in this process or in the
# subprocess being interrupted, never both).

GENERATE_PROBLEMS = [{"id": f"g{number}", "question": f"Write add{number}(a, b) returning a + b + {number}."}
                     for number in range(8)]


def generate_args(problems: Path, coder_dir: Path, reward_dir: Path, *extra: str) -> list[str]:
    return ["generate", "--problems", str(problems), "-m", str(coder_dir), "-r", str(reward_dir), "-n", "2",
            "--max-tokens", "32", "--max-batch-tokens", "128", "--gpu-memory-utilization", "0.05", "-f", "jsonl",
            *extra]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, coder_dir: Path, reward_dir: Path) -> dict[str, object]:
    """The bytes an uninterrupted --resume run writes, checked equal to a plain run's."""
    root = tmp_path_factory.mktemp("generate")
    problems = write_jsonl(root / "problems.jsonl", GENERATE_PROBLEMS)
    args = generate_args(problems, coder_dir, reward_dir, "--seed", "11")
    resumable = runner.invoke(app, [*args, "-o", str(root / "resumable.jsonl"), "--resume"])
    assert resumable.exit_code == 0, resumable.stderr
    plain = runner.invoke(app, [*args, "-o", str(root / "plain.jsonl")])
    assert plain.exit_code == 0, plain.stderr
    reference = (root / "resumable.jsonl").read_bytes()
    assert (root / "plain.jsonl").read_bytes() == reference
    assert len(parse_jsonl(reference.decode())) == 2 * len(GENERATE_PROBLEMS)
    assert not (root / ".resumable.jsonl.samples.jsonl").exists()  # gone once every problem is in the output
    return {"problems": problems, "reference": reference}


@pytest.mark.vllm
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_generate_interrupted_then_resumed_equals_an_uninterrupted_run(signum: int, generated: dict[str, object],
                                                                      coder_dir: Path, reward_dir: Path,
                                                                      tmp_path: Path) -> None:
    problems: Path = generated["problems"]  # type: ignore[assignment]
    reference: bytes = generated["reference"]  # type: ignore[assignment]
    output = tmp_path / "all.jsonl"
    rng = random.Random(signum)
    # SIGINT hits a plain run (no --resume) once its samples are saved in -o; the others hit a --resume run at a
    # random number of finished problems (0: as soon as the samples are saved, before any is scored).
    plain = signum == signal.SIGINT
    args = generate_args(problems, coder_dir, reward_dir, "--seed", "11", "-o", str(output),
                         *([] if plain else ["--resume"]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    samples = tmp_path / ".all.jsonl.samples.jsonl"
    with reaped(subprocess.Popen([sys.executable, "-m", "codescaler_cli", *args], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True)) as process:
        deadline = time.monotonic() + 600
        lines = rng.randrange(0, 8)
        while time.monotonic() < deadline and process.poll() is None:
            # The run may finish (and remove its samples file) between two looks: read each file once, tolerantly.
            if plain and read_or_empty(output):
                break
            if not plain and read_or_empty(samples) and read_or_empty(output).count(b"\n") >= lines:
                break
            time.sleep(0.05)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=180)
    if signum != signal.SIGKILL and output.read_bytes() != reference:
        assert process.returncode == 128 + signum, stderr
        assert "continue with: codescaler generate" in stderr and "--resume" in stderr
        assert "Traceback" not in stderr
    resumed = runner.invoke(app, [*generate_args(problems, coder_dir, reward_dir, "-o", str(output), "--resume")])
    assert resumed.exit_code == 0, resumed.stderr
    assert output.read_bytes() == reference  # the recorded seed was reused: no --seed on the resuming command


@pytest.mark.vllm
def test_generate_sample_cache_reuses_samples_and_scores(generated: dict[str, object], coder_dir: Path,
                                                         reward_dir: Path, tmp_path: Path) -> None:
    problems: Path = generated["problems"]  # type: ignore[assignment]
    args = generate_args(problems, coder_dir, reward_dir, "--seed", "11", "--cache", str(tmp_path / "cache"))
    first = runner.invoke(app, [*args, "-o", str(tmp_path / "first.jsonl")])
    assert first.exit_code == 0, first.stderr
    assert "cache: samples 0 hits, 16 misses" in first.stderr
    second = runner.invoke(app, [*args, "-o", str(tmp_path / "second.jsonl")])
    assert second.exit_code == 0, second.stderr
    assert "cache: samples 16 hits, 0 misses; scores" in second.stderr and "misses (" in second.stderr
    assert "generating" not in second.stderr  # the generator was never started
    assert (tmp_path / "second.jsonl").read_bytes() == generated["reference"]
    assert second.stdout == first.stdout


def test_generate_resume_refuses_another_seed_before_loading_anything(tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "problems.jsonl", GENERATE_PROBLEMS[:2])
    output = tmp_path / "all.jsonl"
    args = ["generate", "--problems", str(problems), "-m", "/nonexistent/generator", "-r", "/nonexistent/reward",
            "-n", "2", "-o", str(output), "--resume"]
    from codescaler_cli.generation.config import GeneratorConfig
    from codescaler_cli.runs.resume import write_settings
    from codescaler_cli.scoring import ScorerConfig

    # The settings a run records: its configs' fingerprints.
    write_settings(output, "generate", GeneratorConfig(model="/nonexistent/generator", n=2, seed=7).fingerprint()
                   | ScorerConfig(model="/nonexistent/reward").fingerprint())
    output.write_text("")
    result = runner.invoke(app, [*args, "--seed", "8", "--n", "3"])
    assert result.exit_code == 2
    assert "--n 2 then, 3 now; --seed 7 then, 8 now" in result.stderr


@pytest.mark.vllm
def test_a_plain_generate_interrupted_while_sampling_keeps_the_problems_sampled(coder_dir: Path, reward_dir: Path,
                                                                                tmp_path: Path) -> None:
    """On CPU samples are kept in small rounds (here two problems of eight samples): a plain `generate -o` stopped
    while it samples keeps every round it finished, its hint says so, and --resume starts from them."""
    problems = write_jsonl(tmp_path / "problems.jsonl", GENERATE_PROBLEMS[:6])
    output = tmp_path / "all.jsonl"
    samples = tmp_path / ".all.jsonl.samples.jsonl"
    args = ["generate", "--problems", str(problems), "-m", str(coder_dir), "-r", str(reward_dir), "-n", "8",
            "--max-tokens", "32", "--seed", "3", "-f", "jsonl", "-o", str(output)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with reaped(subprocess.Popen([sys.executable, "-m", "codescaler_cli", *args], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True)) as process:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and process.poll() is None and not read_or_empty(samples):
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=180)
    assert process.returncode == 130, stderr
    kept = len(parse_jsonl(read_or_empty(samples).decode())) // 8
    assert 0 < kept < 6, stderr  # the first rounds, not all or nothing
    assert f"the samples of {kept} are saved in {samples}" in stderr
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert f"samples of {kept} are saved" in resumed.stderr
    assert len(parse_jsonl(output.read_text())) == 6 * 8 and not samples.exists()
