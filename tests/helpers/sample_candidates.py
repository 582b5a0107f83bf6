"""A small candidates set shared by the rank and serve tests: two problems, duplicates, prose and broken code."""

from __future__ import annotations

Q1 = "Return the sum of a list of integers."
Q2 = "Return the maximum of a list of integers."
SUM_A = "def total(xs):\n    return sum(xs)"
SUM_A_COMMENTED = "# sum them\ndef total(xs):\n\n    return sum( xs )  # builtin"  # SUM_A's duplicate
SUM_B = "def total(xs):\n    t = 0\n    for x in xs:\n        t += x\n    return t"
MAX_A = "def biggest(xs):\n    return max(xs)"


def fenced(code: str) -> str:
    return f"Here you go:\n\n```python\n{code}\n```\n"


RECORDS = [
    {"question": Q1, "response": fenced(SUM_B), "meta": {"sample": 0}},
    {"question": Q2, "response": fenced(MAX_A)},
    {"question": Q1, "response": "I cannot solve this."},
    {"question": Q1, "response": fenced(SUM_A)},
    {"question": Q1, "code": SUM_A_COMMENTED},
    {"question": Q2, "response": "```python\ndef biggest(xs)\n    return max(xs)\n```"},
]

# A LeetCode program as models write it: `List` and `Counter` come from LiveCodeBench's import header.
LEETCODE_SUBARRAY_SUM = """class Solution:
    def subarraySum(self, nums: List[int], k: int) -> int:
        seen, total, count = Counter({0: 1}), 0, 0
        for x in nums:
            total += x
            count += seen[total - k]
            seen[total] += 1
        return count
"""
