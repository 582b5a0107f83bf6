"""Helpers of the reward-model loop's tests: synthetic preference pairs with a learnable difference, for training
tiny reward models in seconds, and running torch on one thread.

Every problem asks for a small function; the preferred program implements it, the rejected one is a stub (returns
a constant, passes, or gives up). Held-out problems use other function names and numbers, so a model that scores
them right has learned the difference, not the problems.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TASKS = (
    ("returns {a} times x", "    return x * {a}\n"),
    ("returns x plus {a}", "    return x + {a}\n"),
    ("returns the larger of x and {a}", "    return max(x, {a})\n"),
    ("returns x modulo {a}", "    return x % {a}\n"),
    ("returns the list of the first {a} multiples of x", "    return [x * i for i in range({a})]\n"),
)
STUBS = ("    return None\n", "    pass\n", "    raise NotImplementedError\n", "    return 0\n")
NAMES = ("scale", "shift", "clamp", "wrap", "multiples", "compute", "solve", "answer", "transform", "apply")
# A long statement: questions that carry it are over a small --max-length, to exercise truncation.
LONG_TEXT = " ".join(f"Note {i}: the input is an integer." for i in range(40))


def synthetic_pairs(train_problems: int = 60, test_problems: int = 20, pairs_per_problem: int = 2, *,
                    long_questions: int = 0, seed: int = 0) -> list[dict[str, Any]]:
    """Rows in `codescaler pairs` format (id, split, question_content, code_pos, code_neg)."""
    rng = random.Random(seed)
    rows = []
    for number in range(train_problems + test_problems):
        split = "train" if number < train_problems else "test"
        description, body = TASKS[number % len(TASKS)]
        value = rng.randint(2, 97)
        name = f"{NAMES[number % len(NAMES)]}_{number}"
        question = f"Write a function {name}(x) that {description.format(a=value)}."
        if number < long_questions:
            question += "\n\n" + LONG_TEXT
        chosen = f"def {name}(x):\n{body.format(a=value)}"
        for stub in rng.sample(STUBS, pairs_per_problem):
            rows.append({"id": f"problem-{number}", "split": split, "question_content": question, "code_pos": chosen,
                         "code_neg": f"def {name}(x):\n{stub}"})
    return rows


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch on one thread while a test trains or scores in this process: a tiny model gains nothing from more, and
    on a machine busy with other work OpenMP's barriers stall two threads for seconds at every step."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
