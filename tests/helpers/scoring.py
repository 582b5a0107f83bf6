"""Scoring shared by the scorer tests: requests with a real spread of scores, and the model card's recipe written
out independently of the library (what every backend's scores are checked against)."""

from __future__ import annotations

from pathlib import Path

import torch

from codescaler_cli.scoring import ScoreRequest

SUBARRAY_QUESTION = ("Given an array of integers nums and an integer k, return the total number of subarrays "
                     "whose sum equals to k.")
SUBARRAY_CORRECT = """def subarraySum(nums, k):
    count = 0
    prefix = 0
    seen = {0: 1}
    for x in nums:
        prefix += x
        count += seen.get(prefix - k, 0)
        seen[prefix] = seen.get(prefix, 0) + 1
    return count"""
SUBARRAY_WRONG = """def subarraySum(nums, k):
    count = 0
    for i in range(len(nums)):
        if nums[i] == k:
            count += 1
    return count"""
LONG_QUESTION = "Write a function that parses a CSV line into fields. " * 12

REQUESTS = [
    ScoreRequest(SUBARRAY_QUESTION, SUBARRAY_CORRECT),
    ScoreRequest(SUBARRAY_QUESTION, SUBARRAY_WRONG),
    ScoreRequest(SUBARRAY_QUESTION, "def f():\n    return 1"),
    # Leading whitespace lets byte-level BPE merge across the prefix boundary: the exactness fallback path.
    ScoreRequest(SUBARRAY_QUESTION, "\n    x = 1\ny = 2"),
    ScoreRequest(LONG_QUESTION, "import csv\n\ndef parse(line):\n    return next(csv.reader([line]))"),
    ScoreRequest(LONG_QUESTION, "def parse(line):\n    return line.split(',')\n" * 8),
    ScoreRequest("Short?", "print(1)"),
]


def card_recipe(model_dir: Path, pairs: list[tuple[str, str]], *, max_length: int = 4096,
                padding_side: str = "right") -> list[float]:
    """The model card's scoring code, written out independently of the library."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = padding_side
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": c}],
                                           tokenize=False) for q, c in pairs]
    inputs = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
    with torch.no_grad():
        return model(**inputs).logits.squeeze(-1).tolist()
