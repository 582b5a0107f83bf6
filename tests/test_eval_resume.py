"""`codescaler eval -o FILE --resume`: a real subprocess, testing real programs in the sandbox, is killed (SIGKILL)
or interrupted (SIGINT, SIGTERM) after its first chunk of problems reached -o; `--resume` then finishes the file
so it holds exactly the records of an uninterrupted run, and prints the same report.

The records carry a `seconds` field (how long the candidate's tests took), which differs from run to run: files
are compared without it, and the part of the file the interrupted run wrote must stay byte for byte as it was.
The tests use `--isolation fallback` (real processes under rlimits, a fresh uid and directory each): on machines
whose PID 1 reaps orphans lazily, the zombies bwrap leaves count against the slot's process limit and a long
series of quick programs can fail to fork, which would make verdicts (not this feature) flaky.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import parse_jsonl, write_jsonl
from helpers.processes import reaped, wait_for_lines
from typer.testing import CliRunner

from codescaler_cli.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = 12
PER_PROBLEM = 2
# --jobs 1: chunks of 8 candidates, so 4 problems, and -o grows in three steps of 8 lines.
CHUNK_LINES = 8
SANDBOX = ["--jobs", "1", "--isolation", "fallback", "--test-timeout", "3"]


def problem_records() -> list[dict[str, Any]]:
    return [{"id": f"p{i}", "question": f"Read an integer, print it plus {i}.",
             "tests": [{"input": "1\n", "output": f"{1 + i}\n", "public": True},
                       {"input": "5\n", "output": f"{5 + i}\n"}]}
            for i in range(PROBLEMS)]


def candidate_records() -> list[dict[str, Any]]:
    records = []
    for i in range(PROBLEMS):
        # Right, then wrong every third problem (else a duplicate of the right one); the scores disagree with the
        # tests on some problems, so the reward-model strategies differ from the oracle. After the first chunk the
        # programs take a moment each, so that a signal sent when the first chunk is written comes seconds before
        # the run could end, however quickly programs start.
        pause = "import time\ntime.sleep(0.25)\n" if i >= CHUNK_LINES // PER_PROBLEM else ""
        records.append({"id": f"p{i}", "code": f"{pause}print(int(input()) + {i})", "score": 1.0})
        wrong = i + 1 if i % 3 == 0 else i
        records.append({"id": f"p{i}", "code": f"{pause}print(int(input()) + {wrong})",
                        "score": 2.0 if i % 2 else 0.5})
    records.append({"id": "p11", "code": "def broken(:", "score": None})  # invalid: no process, error verdict
    return records


def without_seconds(data: bytes) -> list[dict[str, Any]]:
    records = parse_jsonl(data.decode())
    for record in records:
        record.pop("seconds")
    return records


def report_lines(stdout: str) -> list[str]:
    """The table without what is about time: the latency line, the strategies' latency column and the note on how
    a resumed run's seconds add up."""
    return [re.sub(r"(?<=\]|-)  +(-|\d+\.\d\d)(?=  )", "", line) for line in stdout.splitlines()
            if not line.startswith("selection latency") and not line.startswith("note: resumed")]


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    kept = {key: value for key, value in report.items() if key not in ("seconds", "notes")}
    kept["strategies"] = [{k: v for k, v in row.items() if k != "latency_seconds"} for row in kept["strategies"]]
    return kept


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The problems and candidates, and what an uninterrupted run writes to -o, stdout and --json."""
    root = tmp_path_factory.mktemp("eval-resume")
    problems = write_jsonl(root / "problems.jsonl", problem_records())
    candidates = write_jsonl(root / "candidates.jsonl", candidate_records())
    reference = root / "reference.jsonl"
    report = root / "reference.json"
    result = runner.invoke(app, ["eval", str(candidates), "--problems", str(problems), *SANDBOX, "-o", str(reference),
                                 "--json", str(report), "-q"])
    assert result.exit_code == 0, result.stderr
    data = reference.read_bytes()
    assert data.count(b"\n") == PROBLEMS * PER_PROBLEM + 1
    return {"root": root, "problems": problems, "candidates": candidates, "reference": data,
            "stdout": result.stdout, "report": json.loads(report.read_text())}


def eval_args(inputs: dict[str, Any], output: Path, *extra: str) -> list[str]:
    return ["eval", str(inputs["candidates"]), "--problems", str(inputs["problems"]), *SANDBOX, "-o", str(output),
            *extra]


def start_eval(inputs: dict[str, Any], output: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "codescaler_cli", *eval_args(inputs, output)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})


def interrupt(inputs: dict[str, Any], output: Path, signum: int) -> tuple[subprocess.Popen[str], str, str, bytes]:
    with reaped(start_eval(inputs, output)) as process:
        wait_for_lines(process, output, CHUNK_LINES)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
    written = output.read_bytes()
    # The other chunks take seconds more: the signal came long before the run could finish.
    assert written.count(b"\n") < inputs["reference"].count(b"\n"), stderr
    return process, stdout, stderr, written


def resume_and_compare(inputs: dict[str, Any], output: Path, kept: bytes) -> Any:
    report = output.with_suffix(".report.json")
    result = runner.invoke(app, eval_args(inputs, output, "--resume", "--json", str(report)))
    assert result.exit_code == 0, result.stderr
    data = output.read_bytes()
    assert data.startswith(kept)  # what the interrupted run finished is kept as it was, not rewritten
    assert without_seconds(data) == without_seconds(inputs["reference"])
    assert report_lines(result.stdout) == report_lines(inputs["stdout"])
    resumed = json.loads(report.read_text())
    assert comparable(resumed) == comparable(inputs["report"])  # accuracies, intervals, pass@k, curves, statuses
    assert set(resumed["seconds"]) == set(inputs["report"]["seconds"])
    return result


def test_sigkill_then_resume_writes_what_an_uninterrupted_run_writes(inputs: dict[str, Any], tmp_path: Path) -> None:
    output = tmp_path / "verdicts.jsonl"
    process, _, _, written = interrupt(inputs, output, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    kept = written[: written.rfind(b"\n") + 1]
    lines = kept.count(b"\n")
    assert lines >= CHUNK_LINES and without_seconds(kept) == without_seconds(inputs["reference"])[:lines]
    # What a SIGKILL in the middle of a write leaves: half of the next line, without its newline.
    next_line = inputs["reference"].split(b"\n")[lines]
    output.write_bytes(kept + next_line[: len(next_line) // 2])
    result = resume_and_compare(inputs, output, kept)
    assert f"resuming: {lines // PER_PROBLEM} of {PROBLEMS} problems are complete" in result.stderr
    assert "cut off a partial last line" in result.stderr
    notes = json.loads(output.with_suffix(".report.json").read_text())["notes"]
    assert any(note.startswith(f"resumed: {lines // PER_PROBLEM} of {PROBLEMS} problems") for note in notes)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_after_whole_problems_with_the_resume_hint(signum: int, inputs: dict[str, Any],
                                                                   tmp_path: Path) -> None:
    output = tmp_path / "verdicts.jsonl"
    process, stdout, stderr, written = interrupt(inputs, output, signum)
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert ("interrupted" if signum == signal.SIGINT else "terminated") in stderr
    lines = written.count(b"\n")
    assert written.endswith(b"\n") and lines % CHUNK_LINES == 0  # whole chunks, so whole problems
    assert f"hint: {lines // PER_PROBLEM} of {PROBLEMS} problems are complete in {output}; continue with: " \
           f"codescaler eval {inputs['candidates']}" in stderr
    assert "--resume" in stderr
    assert stdout == ""  # the table comes only when the run is complete
    resume_and_compare(inputs, output, written)


def test_resuming_a_complete_file_runs_nothing_and_reads_stdin_again(inputs: dict[str, Any], tmp_path: Path) -> None:
    output = tmp_path / "verdicts.jsonl"
    output.write_bytes(inputs["reference"])
    sidecar = inputs["root"] / ".reference.jsonl.codescaler.json"
    shutil.copy(sidecar, tmp_path / ".verdicts.jsonl.codescaler.json")
    args = ["eval", "-", "--problems", str(inputs["problems"]), *SANDBOX, "-o", str(output), "--resume"]
    result = runner.invoke(app, args, input=inputs["candidates"].read_bytes())
    assert result.exit_code == 0, result.stderr
    assert f"resuming: {PROBLEMS} of {PROBLEMS} problems are complete" in result.stderr
    assert output.read_bytes() == inputs["reference"]
    assert report_lines(result.stdout) == report_lines(inputs["stdout"])
    # The seconds are the first run's, kept in the settings file.
    first = json.loads(sidecar.read_text())["state"]["seconds"]
    assert f"all tests {first['all_tests']:.2f}s" in result.stdout


def changed_settings(inputs: dict[str, Any], directory: Path) -> list[tuple[list[str], str]]:
    directory.mkdir()
    other_problems = problem_records()
    other_problems[-1]["tests"][-1]["output"] = "0\n"
    problems = write_jsonl(directory / "problems.jsonl", other_problems)
    candidates = write_jsonl(directory / "candidates.jsonl", candidate_records()[:-1] + [
        {"id": "p11", "code": "def broken(:", "score": 0.0}])
    return [
        (["--test-timeout", "2"], "--test-timeout 3.0 then, 2.0 now"),
        (["--memory", "512"], "--memory 2048 then, 512 now"),
        (["--problems", str(problems)], f"--problems \"{inputs['problems']}\" then, \"{problems}\" now"),
        (["--problems", str(problems)], "problems sha256"),
        (["CANDIDATES", str(candidates)], "candidates sha256"),
    ]


def test_resuming_with_other_settings_is_refused_naming_the_difference(inputs: dict[str, Any],
                                                                       tmp_path: Path) -> None:
    output = tmp_path / "verdicts.jsonl"
    partial = b"".join(line + b"\n" for line in inputs["reference"].split(b"\n")[:CHUNK_LINES])
    output.write_bytes(partial)
    shutil.copy(inputs["root"] / ".reference.jsonl.codescaler.json", tmp_path / ".verdicts.jsonl.codescaler.json")
    for change, named in changed_settings(inputs, tmp_path / "other"):
        args = eval_args(inputs, output, "--resume")
        if change[0] == "CANDIDATES":
            args[1] = change[1]
        else:
            at = args.index(change[0]) if change[0] in args else len(args)
            args[at: at + 2] = change
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (change, result.stderr)
        assert f"cannot resume {output}: it was written with different settings" in result.stderr
        assert named in result.stderr, (change, result.stderr)
        assert "Traceback" not in result.stderr
        assert output.read_bytes() == partial  # a refused resume touches nothing


def test_resume_needs_an_output_and_candidates_it_does_not_generate(inputs: dict[str, Any], tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", str(inputs["candidates"]), "--problems", str(inputs["problems"]),
                                 "--resume"])
    assert result.exit_code == 2
    assert "--resume continues the file given with --output" in result.stderr and "add -o FILE" in result.stderr
    output = tmp_path / "all.jsonl"
    result = runner.invoke(app, ["eval", "--problems", str(inputs["problems"]), "-m", str(tmp_path / "no-model"),
                                 "-n", "4", "-o", str(output), "--resume"])
    assert result.exit_code == 2, result.stderr
    assert "--resume cannot continue a run that generates its candidates" in result.stderr
    assert "codescaler generate --problems" in result.stderr and "-n 4 -o samples.jsonl --resume" in result.stderr
    assert f"codescaler eval samples.jsonl --problems {inputs['problems']} -o {output} --resume" in result.stderr
    assert not output.exists()


def test_resume_with_a_reward_model_scoring_here_restores_scores_and_ranks(inputs: dict[str, Any], reward_dir: Path,
                                                                           tmp_path: Path) -> None:
    """Unscored candidates and -r: the complete problems' scores and ranks come back from -o, the rest are scored
    in the chunks an uninterrupted run scores them in, so the file and the reward-model rows come out the same."""
    unscored = [{key: value for key, value in record.items() if key != "score"} for record in candidate_records()]
    candidates = write_jsonl(tmp_path / "unscored.jsonl", unscored)
    scored = ["-r", str(reward_dir), "--max-length", "256"]
    reference = tmp_path / "reference.jsonl"
    args = ["eval", str(candidates), "--problems", str(inputs["problems"]), *SANDBOX, *scored]
    first = runner.invoke(app, [*args, "-o", str(reference), "-q"])
    assert first.exit_code == 0, first.stderr
    whole = reference.read_bytes()
    assert all(isinstance(r["rank"], int) for r in parse_jsonl(whole.decode()))
    output = tmp_path / "verdicts.jsonl"
    kept = b"".join(line + b"\n" for line in whole.split(b"\n")[:CHUNK_LINES])
    output.write_bytes(kept)
    shutil.copy(tmp_path / ".reference.jsonl.codescaler.json", tmp_path / ".verdicts.jsonl.codescaler.json")
    refused = runner.invoke(app, [*args, "--max-length", "512", "-o", str(output), "--resume"])
    assert refused.exit_code == 2 and "--max-length 256 then, 512 now" in refused.stderr, refused.stderr
    resumed = runner.invoke(app, [*args, "-o", str(output), "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    data = output.read_bytes()
    assert data.startswith(kept) and without_seconds(data) == without_seconds(whole)
    assert report_lines(resumed.stdout) == report_lines(first.stdout)
    scoring = json.loads((tmp_path / ".verdicts.jsonl.codescaler.json").read_text())["state"]["seconds"]["scoring"]
    assert f"reward model {scoring:.2f}s scoring" in first.stdout and f"reward model {scoring:.2f}s" in resumed.stdout


def test_cache_serves_the_reward_scores_of_a_second_eval_without_loading_the_model(inputs: dict[str, Any],
                                                                                 reward_dir: Path,
                                                                                 tmp_path: Path) -> None:
    unscored = [{key: value for key, value in record.items() if key != "score"} for record in candidate_records()]
    candidates = write_jsonl(tmp_path / "unscored.jsonl", unscored)
    args = ["eval", str(candidates), "--problems", str(inputs["problems"]), *SANDBOX, "-r", str(reward_dir),
            "--max-length", "256", "--cache", str(tmp_path / "cache")]
    first = runner.invoke(app, [*args, "-o", str(tmp_path / "first.jsonl")])
    assert first.exit_code == 0, first.stderr
    assert "scores 0 hits, " in first.stderr and "from the cache" not in first.stdout
    second = runner.invoke(app, [*args, "-o", str(tmp_path / "second.jsonl"), "--json", str(tmp_path / "second.json")])
    assert second.exit_code == 0, second.stderr
    seconds = json.loads((tmp_path / "second.json").read_text())["seconds"]
    assert seconds["scoring_load"] == 0.0 and seconds["scoring"] == 0.0  # the model never loaded
    misses = int(first.stderr.split("scores 0 hits, ")[1].split(" misses")[0])
    assert misses > 0 and f"scores {misses} hits, 0 misses" in second.stderr
    assert without_seconds((tmp_path / "second.jsonl").read_bytes()) == \
        without_seconds((tmp_path / "first.jsonl").read_bytes())
    assert f"note: {misses} of {misses} reward scores came from the cache" in second.stdout
    assert [line for line in report_lines(second.stdout) if not line.startswith("note:")] == \
        [line for line in report_lines(first.stdout) if not line.startswith("note:")]
