"""Really interrupting `codescaler rank`: a subprocess on the tiny reward model gets SIGINT, SIGTERM or SIGKILL at a
random point, then `--resume` must finish the file so it equals an uninterrupted run's, byte for byte.

The run cannot end before the signal arrives: its records are larger than a pipe holds, and the test reads the
run's stdout only up to a random record (0 = none: the signal lands while the model loads or the first chunk is
scored), so the run waits on its next write until the test has sent the signal. Some runs are cut before
scoring, some between problems, some in the middle of writing one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import parse_jsonl, write_jsonl
from helpers.processes import read_or_empty, reaped, wait_for_file
from typer.testing import CliRunner

from codescaler_cli.cli import app

runner = CliRunner()
PROBLEMS = 10
PER_PROBLEM = 3
# A small batch budget: one text per forward pass and chunks of 4 programs, so problems reach the file one after
# another.
SLOW = ["--max-batch-tokens", "128"]
# Characters of a field every record carries through: two records are more than a pipe holds (64 KiB).
PADDING = 100_000


def candidate_records() -> list[dict[str, object]]:
    records = []
    for problem in range(PROBLEMS):
        for variant in range(PER_PROBLEM):
            code = (f"def solve(xs):\n    total = {variant}\n    for x in xs:\n"
                    f"        total += x * {problem + 1}\n    return total\n")
            records.append({"id": f"p{problem}", "question": f"Problem {problem}: weighted sum of a list.",
                            "code": code, "variant": variant, "padding": "x" * PADDING})
    # One invalid candidate and a duplicate program: they must survive interruption like the others.
    records.append({"id": "p9", "question": "Problem 9: weighted sum of a list.", "code": "def broken(:",
                    "padding": "x" * PADDING})
    return records


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory, reward_dir: Path) -> tuple[Path, bytes]:
    """The candidates file and the bytes an uninterrupted run writes to -o."""
    root = tmp_path_factory.mktemp("signals")
    candidates = write_jsonl(root / "candidates.jsonl", candidate_records())
    reference = root / "reference.jsonl"
    result = runner.invoke(app, ["rank", str(candidates), "-r", str(reward_dir), *SLOW, "-o", str(reference),
                                 "-f", "jsonl", "-q"])
    assert result.exit_code == 0, result.stderr
    data = reference.read_bytes()
    assert len(parse_jsonl(data.decode())) == PROBLEMS * PER_PROBLEM + 1
    return candidates, data


def start_rank(candidates: Path, reward_dir: Path, output: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "codescaler_cli", "rank", str(candidates), "-r", str(reward_dir),
                             *SLOW, "-o", str(output), "-f", "jsonl"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_interrupt_then_resume_equals_an_uninterrupted_run(signum: int, seed: int, workload: tuple[Path, bytes],
                                                           reward_dir: Path, tmp_path: Path) -> None:
    candidates, reference = workload
    rng = random.Random(seed * 31 + signum)
    output = tmp_path / "ranked.jsonl"
    with reaped(start_rank(candidates, reward_dir, output)) as process:
        assert process.stdout is not None and process.stderr is not None
        # At least two records stay unread: the run is still writing (or scoring) when the signal comes.
        read = [process.stdout.readline() for _ in range(rng.randrange(0, reference.count(b"\n") - 2))]
        assert all(line.endswith("\n") for line in read), process.stderr.read()
        wait_for_file(process, output)  # the run has begun (its input checked, its output opened)
        time.sleep(rng.uniform(0.0, 0.3))
        assert process.poll() is None, process.stderr.read()
        process.send_signal(signum)
        stdout = "".join(read) + process.stdout.read()
        stderr = process.stderr.read()
        process.wait(timeout=120)
    written = read_or_empty(output)
    if signum == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
        assert reference.startswith(written[: written.rfind(b"\n") + 1])
    else:
        assert process.returncode == 128 + signum, stderr
        assert "Traceback" not in stderr
        assert ("interrupted" if signum == signal.SIGINT else "terminated") in stderr
        assert f"problems are complete in {output}; continue with: codescaler rank" in stderr
        assert "--resume" in stderr
        # Both streams end with whole lines and hold whole problems: a prefix of the uninterrupted output.
        assert reference.startswith(written) and written.endswith(b"\n") or written == b""
        assert stdout.encode() == written
        problems = [r["id"] for r in parse_jsonl(stdout)]
        assert all(problems.count(p) == (PER_PROBLEM + (p == "p9")) for p in set(problems))
    resumed = runner.invoke(app, ["rank", str(candidates), "-r", str(reward_dir), *SLOW, "-o", str(output),
                                  "--resume", "-f", "jsonl"])
    assert resumed.exit_code == 0, resumed.stderr
    assert output.read_bytes() == reference
    # stdout of the resumed run: exactly the problems the interrupted one had not finished, none twice.
    expected = parse_jsonl(reference.decode())
    kept = complete_problem_records(expected, written[: written.rfind(b"\n") + 1].count(b"\n"))
    assert parse_jsonl(resumed.stdout) == expected[kept:]


def complete_problem_records(records: list[dict[str, object]], lines: int) -> int:
    """How many of the first `lines` records belong to problems that are complete within them."""
    boundary = 0
    for position in range(1, len(records) + 1):
        if position <= lines and (position == len(records) or records[position]["id"] != records[position - 1]["id"]):
            boundary = position
    return boundary


def test_resuming_a_complete_file_does_nothing(workload: tuple[Path, bytes], tmp_path: Path) -> None:
    candidates, reference = workload
    output = tmp_path / "done.jsonl"
    output.write_bytes(reference)
    settings = json.loads((Path(str(workload[0].parent)) / ".reference.jsonl.codescaler.json").read_text())
    (tmp_path / ".done.jsonl.codescaler.json").write_text(json.dumps(settings))
    result = runner.invoke(app, ["rank", str(candidates), "-r", settings["settings"]["reward_model"], *SLOW,
                                 "-o", str(output), "--resume", "-f", "jsonl"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and output.read_bytes() == reference
    assert f"resuming: {PROBLEMS} of {PROBLEMS} problems are complete" in result.stderr


@pytest.mark.vllm
def test_a_reward_server_that_dies_mid_run_stops_the_run_and_resume_finishes_it(
        workload: tuple[Path, bytes], reward_dir: Path, pooling_server: str, tmp_path: Path) -> None:
    """A real vLLM pooling server behind a proxy that starts dropping every connection (the server 'dies') after the
    first chunk: the run stops with exit 1 and the finished problems written; once it is back, --resume finishes
    the file exactly as an uninterrupted run against the server writes it."""
    from helpers.servers import FaultProxy

    candidates, _ = workload
    state = {"dead": False}
    proxy = FaultProxy(pooling_server.removesuffix("/v1"), lambda n, path, body: "drop" if state["dead"] else None)
    try:
        args = ["rank", str(candidates), "-r", str(reward_dir), "--reward-url", proxy.url, "--concurrency", "1",
                "--max-retries", "1", "-f", "jsonl"]
        reference = tmp_path / "reference.jsonl"
        uninterrupted = runner.invoke(app, [*args, "-o", str(reference)])
        assert uninterrupted.exit_code == 0, uninterrupted.stderr
        output = tmp_path / "ranked.jsonl"
        # Chunks of at least 16 texts (the first: 6 problems, 18 texts, 2 requests of up to 16): the first
        # chunk goes through, then the server is gone.
        proxy.fault = lambda n, path, body: state.__setitem__("dead", state["dead"] or n > 2) or (
            "drop" if state["dead"] else None)
        proxy.count = 0
        died = runner.invoke(app, [*args, "-o", str(output)])
        assert died.exit_code == 1, died.stderr
        assert "the reward model failed on all" in died.stderr and "scoring request failed" in died.stderr
        assert "continue with:" in died.stderr and "Traceback" not in died.stderr
        written = output.read_bytes()
        assert 0 < len(written) < len(reference.read_bytes())
        assert reference.read_bytes().startswith(written)
        assert all("error" not in record for record in parse_jsonl(written.decode()))
        state["dead"] = False
        proxy.fault = lambda n, path, body: None
        resumed = runner.invoke(app, [*args, "-o", str(output), "--resume"])
        assert resumed.exit_code == 0, resumed.stderr
        assert output.read_bytes() == reference.read_bytes()
    finally:
        proxy.close()
