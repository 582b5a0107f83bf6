"""A deterministic, realistic best-of-N workload for benchmarking reward scoring (used by bench_scoring.py).

Everything is synthesised from templates with a seeded `random.Random`, no download, no model:

* problem statements in LiveCodeBench / LeetCode style (title, story, examples, constraints, a "### Format:"
  section with a starter-code fence, "### Answer:"), a few hundred tokens each;
* N candidate responses per problem, written the way a chat LLM answers: optional <think> reasoning, prose,
  a ```python fence, then an explanation. Program length has a long tail: most 10-60 lines, some 60-120, a
  few 150-300 lines (past 2,000 tokens; about one problem in six is sure to have one);
* about a quarter of the candidates are duplicates: an earlier candidate of the same problem re-emitted with
  added comments, blank lines and different spacing (same program by `dedup_key`), wrapped in new prose;
* about a tenth have no valid code: prose only, a syntax error in the fence, or a truncated answer.

`build_workload` checks every candidate against `codescaler_cli.extraction` (valid or not as intended; a
duplicate has its original's dedup key) so the workload is what it claims to be.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from codescaler_cli.extraction import dedup_key, extract_code

# --------------------------------------------------------------------------------------------- problem statements

_TOPICS = [
    # (title, method name, parameters, return type, what it asks)
    ("Maximum Score of a Balanced Window", "maxBalancedScore", "nums: List[int], k: int", "int",
     "the maximum score of any contiguous window of nums whose length is at most k, where the score of a window "
     "is the sum of its elements minus the difference between its largest and smallest element"),
    ("Count Harmonious Pairs", "countHarmoniousPairs", "nums: List[int], target: int", "int",
     "the number of index pairs (i, j) with i < j such that nums[i] + nums[j] is divisible by target and "
     "nums[i] <= nums[j]"),
    ("Minimum Cost to Merge Stones in a Row", "minMergeCost", "stones: List[int], k: int", "int",
     "the minimum total cost to merge all piles into one pile, where a move merges exactly k consecutive piles "
     "and costs the total number of stones in them, or -1 if it is impossible"),
    ("Longest Alternating Subsequence With Gaps", "longestAlternating", "nums: List[int], gap: int", "int",
     "the length of the longest subsequence whose consecutive differences alternate in sign and are at least gap "
     "in absolute value"),
    ("Shortest Path Through Checkpoints", "shortestCheckpointPath", "n: int, edges: List[List[int]], checkpoints: List[int]",
     "int", "the length of the shortest walk from node 0 to node n - 1 that visits every checkpoint at least once, "
     "or -1 when no such walk exists"),
    ("Partition Array Into Equal-XOR Blocks", "countXorPartitions", "nums: List[int]", "int",
     "the number of ways to cut nums into two or more non-empty contiguous blocks that all have the same bitwise "
     "XOR, modulo 10^9 + 7"),
    ("Smallest Lexicographic Rotation After Swaps", "smallestRotation", "s: str, swaps: List[List[int]]", "str",
     "the lexicographically smallest string obtainable by any number of the allowed swaps followed by a single "
     "rotation of the whole string"),
    ("Number of Islands After Flooding", "islandsAfterFlood", "grid: List[List[int]], level: int", "int",
     "the number of islands that remain after every cell with height at most level is flooded, where an island is "
     "a maximal group of dry cells connected horizontally or vertically"),
    ("Schedule Tasks With Cooldown Windows", "minScheduleTime", "tasks: List[str], cooldown: int", "int",
     "the minimum number of time units needed to run every task when two runs of the same task must be at least "
     "cooldown units apart"),
    ("Maximum Product of Non-Overlapping Palindromes", "maxPalindromeProduct", "s: str", "int",
     "the maximum product of the lengths of two non-overlapping palindromic substrings of odd length"),
    ("Distinct Subarrays With Bounded Sum", "countBoundedSubarrays", "nums: List[int], lo: int, hi: int", "int",
     "the number of distinct subarrays (as sequences of values) whose sum lies between lo and hi inclusive"),
    ("Reorder Routes to Reach the Capital", "minReorder", "n: int, connections: List[List[int]]", "int",
     "the minimum number of directed roads that must be reversed so that every city can reach city 0"),
]

_STORY = [
    "You are given {inputs}. Your task is to compute {asks}.",
    "A sequence of operations is performed on the input, and you must report the final answer efficiently, because "
    "the input can be large and a brute-force enumeration of every possibility will exceed the time limit.",
    "Note that the answer must be computed exactly; approximate answers are not accepted, and the order in which "
    "equal elements appear does not matter unless stated otherwise.",
    "Return the answer as described below. If several answers are possible, any of them is accepted only when the "
    "problem says so explicitly; otherwise the answer is unique.",
    "Two configurations are considered different if there is at least one position where they differ.",
]

_STOPWORDS = ["the", "each", "every", "a", "one", "an", "all", "some", "this", "that"]


def _example_value(rng: random.Random, param: str) -> str:
    name, _, kind = param.partition(": ")
    if kind == "int":
        return f"{name} = {rng.randint(1, 12)}"
    if kind == "str":
        return f'{name} = "{"".join(rng.choice("abcde") for _ in range(rng.randint(4, 9)))}"'
    if kind == "List[int]":
        return f"{name} = [{', '.join(str(rng.randint(-9, 30)) for _ in range(rng.randint(4, 9)))}]"
    if kind == "List[str]":
        return f"{name} = [{', '.join(repr(rng.choice('ABCD')) for _ in range(rng.randint(4, 8)))}]"
    rows = [f"[{', '.join(str(rng.randint(0, 9)) for _ in range(rng.randint(2, 3)))}]" for _ in range(rng.randint(2, 4))]
    return f"{name} = [{', '.join(rows)}]"


def make_question(rng: random.Random, index: int) -> tuple[str, str, str]:
    """A LeetCode-like problem statement in LiveCodeBench's prompt format; returns (question, method, params)."""
    title, method, params, returns, asks = _TOPICS[index % len(_TOPICS)]
    if index >= len(_TOPICS):
        title = f"{title} {['II', 'III', 'IV', 'V'][(index // len(_TOPICS) - 1) % 4]}"
    param_list = [p.strip() for p in params.split(", ") if p.strip()]
    inputs = " and ".join(f"{'an integer' if p.endswith(': int') else 'a value'} {p.partition(':')[0]}" for p in param_list)
    story = [_STORY[0].format(inputs=inputs, asks=asks)] + rng.sample(_STORY[1:], rng.randint(0, 2))
    lines = [f"### Question: {title}", "", " ".join(story), ""]
    for number in range(1, 3):
        values = ", ".join(_example_value(rng, p) for p in param_list)
        answer = rng.randint(0, 60) if returns == "int" else '"' + "".join(rng.choice("abcde") for _ in range(6)) + '"'
        lines += [f"Example {number}:", "", f"Input: {values}", f"Output: {answer}",
                  f"Explanation: {rng.choice(_STOPWORDS).capitalize()} valid choice gives at most {answer}.", ""]
    lines += ["Constraints:", ""]
    for p in param_list:
        name = p.partition(":")[0]
        bound = rng.choice(["10^5", "2 * 10^5", "10^4", "5 * 10^4"])
        lines.append(f"1 <= {name}.length <= {bound}" if "List" in p or "str" in p else f"1 <= {name} <= {bound}")
    lines += [f"-10^9 <= values <= 10^9", "The answer fits in a signed 64-bit integer.", ""]
    if rng.random() < 0.5:
        lines += ["Follow-up: can you solve it in O(n log n) time and O(n) extra space?", ""]
    lines += ["### Format: You will use the following starter code to write the solution to the problem and enclose "
              "your code within delimiters.", "```python", "class Solution:",
              f"    def {method}(self, {params}) -> {returns}:", "        ", "```", "",
              "### Answer: (use the provided format with backticks)", ""]
    return "\n".join(lines), method, params


# --------------------------------------------------------------------------------------------- programs

_VARS = ["best", "lo", "cur", "result", "value", "key", "index", "start", "end", "size", "ans", "pos", "width"]
_COMMENTS = ["keep the running total", "shrink the window from the left", "update the best answer so far",
             "this handles the edge case", "move both pointers", "memoise the intermediate result",
             "invariant: lo <= end", "standard two-pointer trick", "accumulate modulo the prime", "early exit"]
_INIT = ["best = lo = cur = result = value = key = index = start = end = size = ans = pos = width = 0",
         "seen, out, prefix = {}, [], [0] * (n + 1)"]


@dataclass
class _Writer:
    rng: random.Random
    lines: list[str] = field(default_factory=list)

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def expr(self, loop: str | None) -> str:
        r = self.rng
        a, b = r.choice(_VARS), r.choice(_VARS)
        k = r.randint(1, 97)
        return r.choice([
            f"{a} + {k}", f"{a} * {k} % MOD", f"abs({a} - {b})", f"min({a}, {b})", f"max({a}, {b})",
            f"data[{loop}]" if loop else f"data[{a} % n]", f"{a} + data[{loop}]" if loop else f"{a} - {b}",
            "len(out)", f"seen.get({a}, 0)", f"{a} ^ {b}", f"{a} << 1", f"prefix[{loop}]" if loop else "prefix[-1]",
        ])

    def block(self, depth: int, budget: int, loop: str | None, nesting: int) -> None:
        """Emit statements at `depth` until about `budget` lines were written (at least one)."""
        start = len(self.lines)
        while len(self.lines) - start < max(1, budget):
            left = budget - (len(self.lines) - start)
            self.statement(depth, left, loop, nesting)

    def statement(self, depth: int, left: int, loop: str | None, nesting: int) -> None:
        r = self.rng
        kinds = ["assign", "assign", "aug", "append", "count", "comprehension", "comment"]
        if nesting < 2 and left >= 3:
            kinds += ["for", "if", "while", "for", "if"]
        kind = r.choice(kinds)
        v = r.choice(_VARS)
        if kind == "assign":
            self.emit(depth, f"{v} = {self.expr(loop)}")
        elif kind == "aug":
            self.emit(depth, f"{v} += {self.expr(loop)}")
        elif kind == "append":
            self.emit(depth, f"out.append({self.expr(loop)})")
        elif kind == "count":
            self.emit(depth, f"seen[{v}] = seen.get({v}, 0) + 1")
        elif kind == "comprehension":
            self.emit(depth, f"{v} = sum(1 for x in data if x % {r.randint(2, 9)} == {r.randint(0, 1)})")
        elif kind == "comment":
            self.emit(depth, f"# {r.choice(_COMMENTS)}")
        else:
            inner = min(left - 1, r.randint(2, 8))
            var = "ij"[nesting]
            if kind == "for":
                self.emit(depth, r.choice([f"for {var} in range(n):", f"for {var} in range({v}, n):",
                                           f"for {var}, x in enumerate(data):"]))
                self.block(depth + 1, inner, var, nesting + 1)
            elif kind == "if":
                self.emit(depth, f"if {v} {r.choice(['<', '>', '<=', '==', '!='])} {self.expr(loop)}:")
                self.block(depth + 1, inner // 2 + 1, loop, nesting + 1)
                if r.random() < 0.5:
                    self.emit(depth, "else:")
                    self.block(depth + 1, inner // 2, loop, nesting + 1)
            else:
                self.emit(depth, f"while {v} < n and pos < {r.randint(10, 99)}:")
                self.emit(depth + 1, "pos += 1")
                self.block(depth + 1, inner - 1, loop, nesting + 1)
                self.emit(depth + 1, f"{v} += 1")


def make_program(rng: random.Random, method: str, params: str, lines: int) -> str:
    """A syntactically valid Solution class of about `lines` lines: helpers plus the starter method."""
    names = [p.partition(":")[0].strip() for p in params.split(", ")]
    first = names[0]
    w = _Writer(rng)
    imports = rng.sample(["from typing import List", "import heapq", "from collections import defaultdict, deque",
                          "import bisect", "from functools import lru_cache", "import math"], rng.randint(1, 3))
    w.lines += sorted(imports) + ["", "MOD = 10**9 + 7", "", ""]
    helpers = max(0, (lines - 40) // 45)  # long programs split their work into helper methods
    w.lines.append("class Solution:")
    for h in range(helpers):
        w.emit(1, f"def _phase_{h}(self, data, n, {_VARS[h % len(_VARS)]}):")
        w.emit(2, f'"""Phase {h}: {rng.choice(_COMMENTS)}."""')
        for init in _INIT:
            w.emit(2, init)
        w.block(2, rng.randint(30, 45), None, 0)
        w.emit(2, f"return {rng.choice(_VARS)}")
        w.lines.append("")
    w.emit(1, f"def {method}(self, {params}) -> int:")
    if rng.random() < 0.5:
        w.emit(2, f'"""{rng.choice(_COMMENTS).capitalize()}."""')
    w.emit(2, f"data = list({first}) if not isinstance({first}, int) else list(range({first}))")
    w.emit(2, "n = len(data)")
    for init in _INIT:
        w.emit(2, init)
    for h in range(helpers):
        w.emit(2, f"ans += self._phase_{h}(data, n, {rng.choice(_VARS)})")
    body = lines - len(w.lines) - 1
    w.block(2, max(3, body), None, 0)
    w.emit(2, f"return {rng.choice(_VARS)}")
    return "\n".join(w.lines) + "\n"


def program_lines(rng: random.Random) -> int:
    """Long-tailed program length: most (90%) 10-60 lines, some (9%) 60-120, a few (1%) 150-300."""
    x = rng.random()
    if x < 0.90:
        return rng.randint(10, 60)
    if x < 0.99:
        return rng.randint(60, 120)
    return rng.randint(150, 300)


def restyle(rng: random.Random, code: str) -> str:
    """The same program (same dedup key) with added comments, blank lines and different spacing."""
    out: list[str] = []
    for line in code.split("\n"):
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if stripped and not stripped.startswith(('"""', "#")) and rng.random() < 0.12:
            out.append(f"{indent}# {rng.choice(_COMMENTS)}")
        if stripped and not stripped.startswith('"""'):
            if rng.random() < 0.3:
                line = line.replace(", ", ",")
            if rng.random() < 0.3:
                line = line.replace(" = ", "  =  ", 1)
            if rng.random() < 0.2:
                line = line.replace(" + ", "+")
            if rng.random() < 0.1:
                line += f"  # {rng.choice(_COMMENTS)}"
        out.append(line)
        if stripped and rng.random() < 0.08:
            out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- responses

_INTROS = [
    "To solve this problem efficiently, we can use a sliding window combined with a hash map of counts.",
    "Here is a solution based on dynamic programming over prefixes of the input.",
    "We can approach this greedily: process the elements in order and maintain the best answer seen so far.",
    "The key observation is that the answer only changes at a few positions, so we can scan once and update it.",
    "Let me write a straightforward implementation first and then make sure it handles the edge cases.",
]
_OUTROS = [
    "**Explanation:**\n\n- We precompute prefix sums so each window sum is O(1).\n- A stack keeps the candidates in "
    "monotonic order.\n- The answer is updated whenever a better window is found.\n\n**Complexity:** O(n log n) time, "
    "O(n) space.",
    "This runs in O(n) time because each element is pushed and popped at most once, and it uses O(n) extra memory "
    "for the hash map.",
    "### Complexity Analysis\n\n- Time: O(n * k) in the worst case.\n- Space: O(n).\n\nThe solution passes all the "
    "examples above.",
    "The helper phases split the work so each one can be tested separately; the main method combines their results "
    "modulo 10^9 + 7.",
]
_THINKING = ("<think>\nOkay, let me think about this. The constraints are up to 10^5, so an O(n^2) scan is too "
             "slow. Maybe a sliding window works. Let me check the examples: the first one gives the expected output "
             "if we keep a running total and reset it when it goes negative. I'll also handle the empty case.\n"
             "</think>\n\n")
_PROSE_ONLY = [
    "This problem asks for an optimal value over all windows. One approach is to sort the values and use two "
    "pointers, keeping track of the best answer. However, I am not completely sure about the edge cases when all "
    "values are negative, so I would need more information about the expected behaviour before writing the code.",
    "I think the answer can be found with a breadth-first search from the starting node, visiting each state once. "
    "The state has to include which checkpoints were already visited, which makes it exponential in their number. "
    "Without tighter constraints it is hard to say more.",
]


def wrap_response(rng: random.Random, code: str, *, thinking: bool, open_fence: bool = False) -> str:
    parts = [_THINKING if thinking else "", rng.choice(_INTROS), "\n\n```python\n", code.rstrip("\n"), "\n"]
    if not open_fence:
        parts += ["```\n\n", rng.choice(_OUTROS), "\n"]
    return "".join(parts)


def break_code(rng: random.Random, code: str) -> str:
    """A syntax error an LLM might make: a missing colon, an unclosed bracket or a stray token."""
    lines = code.split("\n")
    defs = [i for i, line in enumerate(lines) if line.rstrip().endswith(":") and not line.strip().startswith("#")]
    how = rng.choice(["colon", "bracket", "token"])
    if how == "colon" and defs:
        i = rng.choice(defs)
        lines[i] = lines[i].rstrip()[:-1]
    elif how == "bracket":
        i = rng.randrange(len(lines))
        lines[i] = lines[i] + " (data[0"
    else:
        i = rng.randrange(len(lines))
        lines[i] = lines[i] + " else then"
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- the workload

@dataclass
class WorkloadSummary:
    problems: int = 0
    candidates: int = 0
    fresh: int = 0
    duplicates: int = 0
    invalid: int = 0
    code_lines: list[int] = field(default_factory=list)


def build_workload(path: Path, *, problems: int, n: int, seed: int) -> WorkloadSummary:
    """Write `problems * n` candidate records (JSONL: id, question, response, kind) to `path`."""
    rng = random.Random(seed)
    summary = WorkloadSummary(problems=problems)
    # The tail is rare, so make sure some programs pass 2,000 tokens: in about one problem in six, one fresh
    # candidate (not the first) is 200-300 lines long.
    forced_long = set(rng.sample(range(problems), k=max(1, round(problems / 6))))
    with open(path, "w", encoding="utf-8") as out:
        for p in range(problems):
            question, method, params = make_question(rng, p)
            n_dup = max(0, round(n * 0.25 + rng.uniform(-1, 1)))
            n_bad = max(0, round(n * 0.10 + rng.uniform(-0.6, 0.6)))
            kinds = ["dup"] * n_dup + ["bad"] * n_bad
            kinds += ["fresh"] * max(1, n - len(kinds))
            kinds = kinds[:n]
            rng.shuffle(kinds)
            first_fresh = kinds.index("fresh")
            kinds.insert(0, kinds.pop(first_fresh))  # a duplicate needs an earlier original
            originals: list[tuple[str, str]] = []  # (code, dedup key)
            keys: set[str] = set()
            long_slot = next((j for j, kind in enumerate(kinds) if j > 0 and kind == "fresh"), 0) \
                if p in forced_long else -1
            for j, kind in enumerate(kinds):
                thinking = rng.random() < 0.3
                if kind == "fresh":
                    while True:
                        lines = rng.randint(200, 300) if j == long_slot else program_lines(rng)
                        code = make_program(rng, method, params, lines)
                        response = wrap_response(rng, code, thinking=thinking)
                        got = extract_code(response)
                        key = dedup_key(got.code)
                        if got.valid and key not in keys:
                            break
                    keys.add(key)
                    originals.append((code, key))
                    summary.code_lines.append(code.count("\n"))
                elif kind == "dup":
                    code, key = rng.choice(originals)
                    response = wrap_response(rng, restyle(rng, code), thinking=thinking)
                    got = extract_code(response)
                    if not got.valid or dedup_key(got.code) != key:
                        raise AssertionError(f"problem {p} candidate {j}: restyled duplicate is not the same program")
                    summary.code_lines.append(got.code.count("\n") + 1)
                else:
                    style = rng.choice(["prose", "syntax", "syntax", "truncated"])
                    while True:
                        if style == "prose":
                            response = rng.choice(_PROSE_ONLY)
                        else:
                            code = make_program(rng, method, params, program_lines(rng))
                            if style == "syntax":
                                response = wrap_response(rng, break_code(rng, code), thinking=thinking)
                            else:  # the answer was cut off mid-expression, inside the fence
                                cut = rng.randint(len(code) // 3, max(len(code) // 3 + 1, len(code) - 20))
                                cut = code.rfind(" + ", 0, cut) if " + " in code[:cut] else cut
                                response = wrap_response(rng, code[: cut + 3], thinking=thinking, open_fence=True)
                        if not extract_code(response).valid:
                            break
                        style = "syntax"
                    summary.code_lines.append(extract_code(response).code.count("\n"))
                record = {"id": f"bench/{p}", "question": question, "response": response, "kind": kind}
                out.write(json.dumps(record) + "\n")
                summary.candidates += 1
                summary.fresh += kind == "fresh"
                summary.duplicates += kind == "dup"
                summary.invalid += kind == "bad"
    return summary


if __name__ == "__main__":  # python bench/workload.py OUT.jsonl [problems n seed]
    import sys

    args = sys.argv[1:]
    s = build_workload(Path(args[0]), problems=int(args[1]) if len(args) > 1 else 16,
                       n=int(args[2]) if len(args) > 2 else 16, seed=int(args[3]) if len(args) > 3 else 0)
    print(s.problems, s.candidates, s.fresh, s.duplicates, s.invalid, sorted(s.code_lines))
