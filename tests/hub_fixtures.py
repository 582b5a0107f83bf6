"""Small benchmark files in each publisher's real format, field for field as the hub holds them, placed in a local
Hugging Face cache laid out as huggingface_hub lays it out (blobs, snapshots/<commit>/ links, refs/main).

Nothing here downloads: tests point HF_HOME at a temporary directory filled by `fill_hub_cache`, with
HF_HUB_OFFLINE=1, and load the benchmarks through the same code users run.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import pickle
import zlib
from pathlib import Path
from typing import Any

from codescaler_cli.evaluation.benchmarks import BENCHMARKS_BY_NAME
from codescaler_cli.evaluation.grading import MBPP_PLUS_SET_EQUAL_TASKS


def put_in_hub_cache(hf_home: Path, repo_id: str, revision: str, files: dict[str, bytes],
                     repo_type: str = "dataset") -> Path:
    """Write files into the cache as a download would: content-addressed blobs, linked from the commit's snapshot."""
    repo = hf_home / "hub" / f"{repo_type}s--{repo_id.replace('/', '--')}"
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / revision / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return repo / "snapshots" / revision


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow
    import pyarrow.parquet as parquet

    buffer = io.BytesIO()
    parquet.write_table(pyarrow.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def lcb_compressed(tests: list[dict[str, str]]) -> str:
    """LiveCodeBench's private tests: base64(zlib(pickle(JSON string)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


# ---------------------------------------------------------------------------------------------------------------
# LiveCodeBench: livecodebench/code_generation_lite, test.jsonl .. test6.jsonl


def lcb_row(question_id: str, contest_date: str, public: list[dict[str, str]], private: list[dict[str, str]], *,
            func_name: str | None = None, starter_code: str = "", platform: str = "atcoder") -> dict[str, Any]:
    return {
        "question_title": question_id.replace("_", " "), "question_content": f"Problem {question_id}.",
        "platform": platform, "question_id": question_id, "contest_id": question_id.split("_")[0],
        "contest_date": contest_date, "starter_code": starter_code, "difficulty": "easy",
        "public_test_cases": json.dumps(public), "private_test_cases": lcb_compressed(private),
        "metadata": json.dumps({"func_name": func_name} if func_name else {}),
    }


def _stdin(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"input": i, "output": o, "testtype": "stdin"} for i, o in pairs]


SUM_TESTS = ([("1 2\n", "3\n")], [("10 -4\n", "6\n"), ("0 0\n", "0\n")])
DOUBLE_TESTS = ([("4\n", "8\n")], [("0\n", "0\n"), ("21\n", "42\n")])

# One release per file, as LiveCodeBench publishes them; test6.jsonl holds the two newest problems.
LCB_FILES = {
    "test.jsonl": [lcb_row("abc301_a", "2023-06-01T00:00:00", _stdin(SUM_TESTS[0]), _stdin(SUM_TESTS[1]))],
    "test2.jsonl": [lcb_row("3000", "2024-03-02T00:00:00",
                            [{"input": "[1, 2, 3]", "output": "6", "testtype": "functional"}],
                            [{"input": "[5]", "output": "5", "testtype": "functional"}], func_name="total",
                            starter_code="class Solution:\n    def total(self, nums: List[int]) -> int:\n        ",
                            platform="leetcode")],
    "test3.jsonl": [lcb_row("abc360_a", "2024-06-30T00:00:00", _stdin(DOUBLE_TESTS[0]), _stdin(DOUBLE_TESTS[1]))],
    "test4.jsonl": [lcb_row("abc370_a", "2024-09-07T00:00:00", _stdin(SUM_TESTS[0]), _stdin(SUM_TESTS[1]))],
    "test5.jsonl": [lcb_row("abc388_a", "2025-01-11T00:00:00", _stdin(DOUBLE_TESTS[0]), _stdin(DOUBLE_TESTS[1]))],
    "test6.jsonl": [lcb_row("abc392_a", "2025-02-01T00:00:00", _stdin(SUM_TESTS[0]), _stdin(SUM_TESTS[1])),
                    lcb_row("abc396_a", "2025-03-08T12:00:00", _stdin(DOUBLE_TESTS[0]), _stdin(DOUBLE_TESTS[1]))],
}

# ---------------------------------------------------------------------------------------------------------------
# EvalPlus on the hub (evalplus/humanevalplus, evalplus/mbppplus): the original-format rows its converter writes,
# with EvalPlus's own assertion function (numpy allclose within atol).

EVALPLUS_IS_FLOATS = '''def is_floats(x) -> bool:
    # check if it is float; List[float]; Tuple[float]
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    if isinstance(x, np.ndarray):
        return x.dtype == np.float64 or x.dtype == np.float32
    return False
'''
EVALPLUS_ASSERTION = f'''import numpy as np

{EVALPLUS_IS_FLOATS}

def assertion(out, exp, atol):
    exact_match = out == exp

    if atol == 0 and is_floats(exp):
        atol = 1e-6
    if not exact_match and atol != 0:
        assert np.allclose(out, exp, rtol=1e-07, atol=atol)
    else:
        assert exact_match
'''
# MBPP+ tasks whose outputs compare as sets get this assertion from the converter instead.
EVALPLUS_SET_ASSERTION = f'''{EVALPLUS_IS_FLOATS}

def assertion(out, exp, atol):
    if atol == 0 and is_floats(exp):
        atol = 1e-6
    out = set(out)
    exp = set(exp)
    if out != exp and atol != 0:
        assert np.allclose(out, exp, rtol=1e-07, atol=atol)
    else:
        assert out == exp, f"out: {{out}}, exp: {{exp}}"
'''


def evalplus_humaneval_test(inputs: list[Any], results: list[Any], atol: float) -> str:
    """HumanEval+'s `test` as EvalPlus's converter writes it (tools/humaneval/to_original_fmt.py)."""
    return (f"\n\n{EVALPLUS_ASSERTION}\n\ndef check(candidate):\n    inputs = {inputs!r}\n    results = {results!r}\n"
            "    for i, (inp, exp) in enumerate(zip(inputs, results)):\n"
            f"        assertion(candidate(*inp), exp, {atol})\n")


def evalplus_mbpp_test(entry_point: str, inputs: list[Any], results: list[Any], atol: float) -> str:
    """MBPP+'s `test` as EvalPlus's converter writes it (tools/mbpp/to_original_fmt.py), set-equal tasks included."""
    assertion = EVALPLUS_SET_ASSERTION if entry_point in MBPP_PLUS_SET_EQUAL_TASKS else EVALPLUS_ASSERTION
    return (f"import numpy as np\nfrom math import inf\n\n{assertion}\n\ninputs = {inputs!r}\n"
            f"results = {results!r}\nfor i, (inp, exp) in enumerate(zip(inputs, results)):\n"
            f"    assertion({entry_point}(*inp), exp, {atol})\n")


MEAN_INPUTS = [[[1.0, 2.0, 3.0]], [[0.1, 0.2]], [[1e-3, 1e5, 3.3]]]
MEAN_PROMPT = ('from typing import List\n\n\ndef mean(numbers: List[float]) -> float:\n    """ The average of the '
               'numbers.\n    >>> mean([1.0, 2.0, 3.0])\n    2.0\n    """\n')
HUMANEVAL_PLUS_ROWS = [
    {"task_id": "HumanEval/0", "prompt": MEAN_PROMPT, "canonical_solution": "    return sum(numbers) / len(numbers)\n",
     "entry_point": "mean",
     # The canonical solution's outputs, as EvalPlus computes them.
     "test": evalplus_humaneval_test(MEAN_INPUTS, [sum(xs) / len(xs) for [xs] in MEAN_INPUTS], 0)},
    {"task_id": "HumanEval/1", "prompt": 'def double(x: int) -> int:\n    """ Twice x.\n    >>> double(2)\n    4\n'
     '    """\n', "canonical_solution": "    return 2 * x\n", "entry_point": "double",
     "test": evalplus_humaneval_test([[2], [0], [-7]], [4, 0, -14], 0)},
]
MBPP_PLUS_ROWS = [
    {"task_id": 2, "code": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n",
     "prompt": "Write a function to find the shared elements from the given two lists.",
     "source_file": "Benchmark Questions Verification V2.ipynb", "test_imports": [],
     "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"],
     "test": evalplus_mbpp_test("similar_elements", [[(3, 4, 5, 6), (5, 7, 4, 10)]], [(4, 5)], 0)},
]

# MBPP (google-research-datasets/mbpp, full config, test split).
MBPP_ROWS = [
    {"task_id": 11, "text": "Write a python function to remove first and last occurrence of a given character.",
     "code": "def remove_Occ(s, ch):\n    return s.replace(ch, '', 1)[::-1].replace(ch, '', 1)[::-1]\n",
     "test_list": ['assert remove_Occ("hello","l") == "heo"', 'assert remove_Occ("abcda","a") == "bcd"',
                   'assert remove_Occ("PHP","P") == "H"'], "test_setup_code": "", "challenge_test_list": []},
    {"task_id": 12, "text": "Write a function to sort a matrix by the sum of its rows.",
     "code": "def sort_matrix(M):\n    return sorted(M, key=sum)\n",
     "test_list": ["assert sort_matrix([[1, 2, 3], [2, 4, 5], [1, 1, 1]])==[[1, 1, 1], [1, 2, 3], [2, 4, 5]]"],
     "test_setup_code": "", "challenge_test_list": []},
]

# ---------------------------------------------------------------------------------------------------------------
# The CodeScaler paper's sets (Gen-Verse/{CodeContests,CodeForces,LiveBench,MBPP}: test/{name}.json, a JSON array).


def genverse_row(question: str, tests: list[tuple[str, str]], examples: list[tuple[str, str]],
                 task_id: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "question": question, "test_time_limit": 1, "exe_method": "stdin", "solutions": [],
        "example_input": [i for i, _ in examples], "example_output": [o for _, o in examples],
        "test_input": [i for i, _ in tests], "test_output": [o for _, o in tests],
    }
    if task_id is not None:
        row["task_id"] = task_id
    return row


GENVERSE_ROWS = [
    genverse_row("Read two integers and print their sum.", [("1 2\n", "3\n"), ("5 5\n", "10\n")], [("1 2\n", "3\n")],
                 task_id="cc_0"),
    genverse_row("Read n and print 2n.", [("4\n", "8\n"), ("0\n", "0\n"), ("21\n", "42\n")], [("4\n", "8\n")],
                 task_id="cc_1"),
    genverse_row("Print the largest of three integers.", [("1 9 3\n", "9\n")], [], task_id="cc_2"),
]

# ---------------------------------------------------------------------------------------------------------------
# DeepCoder (agentica-org/DeepCoder-Preview-Dataset, lcbv5 and codeforces configs, test split, parquet).


def deepcoder_row(problem: str, tests: list[dict[str, str]], func_name: str | None = None,
                  starter_code: str = "") -> dict[str, Any]:
    return {"problem": problem, "tests": json.dumps(tests), "metadata": {"func_name": func_name},
            "starter_code": starter_code}


DEEPCODER_LCB_SHARDS = [
    [deepcoder_row("Read two integers and print their sum.", _stdin(SUM_TESTS[0] + SUM_TESTS[1]))],
    [deepcoder_row("Return the total of nums.", [{"input": "[1, 2, 3]", "output": "6", "testtype": "functional"}],
                   func_name="total", starter_code="class Solution:\n    def total(self, nums: List[int]) -> int:\n"),
     deepcoder_row("Read n and print 2n.", _stdin(DOUBLE_TESTS[0] + DOUBLE_TESTS[1]))],
]
DEEPCODER_CODEFORCES = [deepcoder_row("Read n and print 2n.", _stdin(DOUBLE_TESTS[0]))]


def benchmark_files() -> dict[str, dict[str, bytes]]:
    """The files of every hub benchmark, by benchmark name."""
    return {
        "humaneval-plus": {"data/test-00000-of-00001-5973903632b82d40.parquet": parquet_bytes(HUMANEVAL_PLUS_ROWS)},
        "mbpp-plus": {"data/test-00000-of-00001-d5781c9c51e02795.parquet": parquet_bytes(MBPP_PLUS_ROWS)},
        "mbpp": {"full/test-00000-of-00001.parquet": parquet_bytes(MBPP_ROWS)},
        "livecodebench": {name: jsonl_bytes(rows) for name, rows in LCB_FILES.items()},
        "genverse-codecontests": {"test/CodeContests.json": json.dumps(GENVERSE_ROWS).encode()},
        "genverse-codeforces": {"test/CodeForces.json": json.dumps(GENVERSE_ROWS[:2]).encode()},
        "genverse-livebench": {"test/LiveBench.json": json.dumps(GENVERSE_ROWS[1:]).encode()},
        "genverse-mbpp": {"test/MBPP.json": json.dumps(GENVERSE_ROWS[:1]).encode()},
        "deepcoder-lcbv5": {f"lcbv5/test-0000{i}-of-00002.parquet": parquet_bytes(rows)
                            for i, rows in enumerate(DEEPCODER_LCB_SHARDS)},
        "deepcoder-codeforces": {"codeforces/test-00000-of-00001.parquet": parquet_bytes(DEEPCODER_CODEFORCES)},
    }


def fill_hub_cache(hf_home: Path, names: list[str] | None = None) -> None:
    """Put the fixture files of these benchmarks (all by default) in the cache, at each one's pinned revision."""
    for name, files in benchmark_files().items():
        if names is not None and name not in names:
            continue
        source = BENCHMARKS_BY_NAME[name].files
        assert source is not None
        put_in_hub_cache(hf_home, source.repo_id, source.revision, files)


def put_benchmark_rows(hf_home: Path, name: str, rows: list[dict[str, Any]]) -> None:
    """Put `rows` in the cache as the benchmark's first file, in its publisher's container (LiveCodeBench's first
    release file, test.jsonl: select it with --release v1)."""
    source = BENCHMARKS_BY_NAME[name].files
    assert source is not None
    path = source.patterns[0].replace("*", "00000-of-00001")
    data = jsonl_bytes(rows) if path.endswith(".jsonl") else json.dumps(rows).encode() if path.endswith(".json") \
        else parquet_bytes(rows)
    put_in_hub_cache(hf_home, source.repo_id, source.revision, {path: data})


def eval_benchmark(tmp_path: Path, candidates: list[dict[str, Any]], *arguments: str) -> list[dict[str, Any]]:
    """`codescaler eval CANDIDATES ARGUMENTS...` (e.g. --benchmark NAME) as a user runs it: each candidate's output
    record, in input order."""
    from helpers import parse_jsonl, write_jsonl
    from typer.testing import CliRunner

    from codescaler_cli.cli import app

    samples = write_jsonl(tmp_path / "samples.jsonl", [{**c, "n": n} for n, c in enumerate(candidates)])
    verdicts = tmp_path / "verdicts.jsonl"
    verdicts.unlink(missing_ok=True)
    result = CliRunner().invoke(app, ["eval", str(samples), *arguments, "-o", str(verdicts), "-q", "--jobs", "2"])
    assert result.exit_code == 0, result.stderr
    records = sorted(parse_jsonl(verdicts.read_text()), key=lambda record: record["n"])
    assert [record["n"] for record in records] == list(range(len(candidates))), "a candidate was not graded"
    return records
