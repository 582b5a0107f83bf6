"""Peak memory of `codescaler rank` against the number of records: flat from 10k to 1M on a grouped file.

Writes grouped JSONL files (problems of 16 contiguous candidates, as `generate` writes them), ranks each in a
fresh process and prints the process's peak RSS. The scores come from a `--cache` warmed once on the distinct
(question, program) pairs, so the timed runs measure the pipeline itself (reading, validating, extracting,
ranking, writing) and load no model; `--no-cache-runs` runs the model too (slow past 100k records on CPU).

    .venv/bin/python bench/bench_memory.py -r /path/to/reward-model            # 10k, 100k, 1M records
    .venv/bin/python bench/bench_memory.py -r /path/to/reward-model --records 10000,100000

Without -r, a tiny local reward model is built under bench/.cache/ (tests/tiny_models.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tiny_models

QUESTIONS = 25
PROGRAMS_PER_QUESTION = 6
GROUP = 16


def candidate(index: int) -> dict[str, object]:
    """Record `index`: problem index // GROUP, one of a few questions and programs (so the cache covers them)."""
    problem = index // GROUP
    question = problem % QUESTIONS
    variant = (index * 7) % PROGRAMS_PER_QUESTION
    code = (f"def solve(values):\n    total = {variant}\n    for value in values:\n"
            f"        total += value * {question + 1}\n    return total\n")
    if variant == PROGRAMS_PER_QUESTION - 1:
        code = "def solve(values)\n    return None\n"  # a syntax error: invalid, never scored
    return {"id": f"problem-{problem}", "question": f"Problem {question}: weigh and sum the values.",
            "code": code, "sample": index % GROUP}


def write_file(path: Path, records: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(records):
            handle.write(json.dumps(candidate(index)) + "\n")


def run_rank(path: Path, model: str, cache: Path | None, output: Path) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MiB, stderr) of one `codescaler rank` process."""
    command = [sys.executable, "-m", "codescaler_cli", "rank", str(path), "-r", model, "-f", "jsonl",
               "-o", str(output), "--top-k", "1"]
    if cache is not None:
        command += ["--cache", str(cache)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    with open(os.devnull, "wb") as devnull, tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=devnull, stderr=errors, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"rank failed on {path}:\n{stderr}")
    return seconds, usage.ru_maxrss // 1024, stderr  # ru_maxrss is KiB on Linux


def default_model() -> str:
    import tiny_models

    directory = ROOT / "bench" / ".cache" / "memory-reward"
    if not (directory / "config.json").exists():
        tiny_models.build_reward_model(directory)
    return str(directory)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--reward-model", default=None, help="reward model (default: a tiny local one)")
    parser.add_argument("--records", default="10000,100000,1000000", help="comma-separated file sizes")
    parser.add_argument("--no-cache-runs", action="store_true", help="score with the model in every run")
    parser.add_argument("--workdir", type=Path, default=None, help="where the JSONL files go (default: a temp dir)")
    args = parser.parse_args(argv)
    model = args.reward_model or default_model()
    sizes = [int(size) for size in args.records.split(",")]
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        root = Path(scratch)
        cache = None
        if not args.no_cache_runs:
            # Warm the cache: every distinct (question, program) pair appears in the first QUESTIONS problems.
            cache = root / "cache"
            warm = root / "warm.jsonl"
            write_file(warm, QUESTIONS * GROUP)
            seconds, rss, _ = run_rank(warm, model, cache, root / "warm.out")
            print(f"cache warmed with the model in {seconds:.1f}s (peak RSS {rss} MiB)")
        print(f"{'records':>10}  {'problems':>9}  {'file MB':>8}  {'wall s':>7}  {'peak RSS MiB':>12}")
        for size in sizes:
            path = root / f"candidates-{size}.jsonl"
            write_file(path, size)
            seconds, rss, stderr = run_rank(path, model, cache, root / "out.jsonl")
            lines = sum(1 for _ in open(root / "out.jsonl", "rb"))
            assert lines == size, (lines, size)
            if cache is not None:
                assert "no model was loaded" in stderr, stderr
            print(f"{size:>10,}  {size // GROUP:>9,}  {path.stat().st_size / 1e6:>8.1f}  {seconds:>7.1f}  {rss:>12}",
                  flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
