"""Preference files read as their projects write them: TRL's four preference shapes and RewardBench rows as the
`datasets` library writes them (JSON Lines and Parquet), RM-Bench's JSON arrays (total_dataset.json with `domain`,
per-domain files without), and the three formats `codescaler pairs` writes. Bad rows exit 2 naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_jsonl
from datasets import Dataset
from trl import maybe_extract_prompt
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.errors import InputError
from codescaler_cli.rm.data import pair_row, read_preference_data

runner = CliRunner()
QUESTION = "What color is the sky?"
USER = {"role": "user", "content": QUESTION}

# The four preference shapes of TRL's dataset-formats guide, one row each (what TRL's RewardTrainer accepts).
TRL_ROWS = {
    "standard-implicit": {"chosen": "What color is the sky? It is blue.",
                          "rejected": "What color is the sky? It is green."},
    "standard-explicit": {"prompt": QUESTION, "chosen": " It is blue.", "rejected": " It is green."},
    "conversational-implicit": {
        "chosen": [USER, {"role": "assistant", "content": "It is blue."}],
        "rejected": [USER, {"role": "assistant", "content": "It is green."}]},
    "conversational-explicit": {
        "prompt": [USER], "chosen": [{"role": "assistant", "content": "It is blue."}],
        "rejected": [{"role": "assistant", "content": "It is green."}]},
}


@pytest.mark.parametrize("shape", list(TRL_ROWS))
@pytest.mark.parametrize("writer", ["to_json", "to_parquet"])
def test_trl_rows_as_datasets_writes_them(tmp_path: Path, shape: str, writer: str) -> None:
    path = tmp_path / f"prefs.{'jsonl' if writer == 'to_json' else 'parquet'}"
    getattr(Dataset.from_list([TRL_ROWS[shape]] * 2), writer)(str(path))
    data = read_preference_data(path)
    assert data.format == "trl" and len(data.items) == 2
    item = data.items[0]
    # The prompt TRL itself finds (the shared start of chosen and rejected when the prompt is implicit).
    expected = maybe_extract_prompt(TRL_ROWS[shape])
    texts = [expected[name] if isinstance(expected[name], str) else expected[name][0]["content"]
             for name in ("prompt", "chosen", "rejected")]
    assert [item.question, *item.chosen, *item.rejected] == texts
    if shape != "standard-implicit":
        assert item.question == QUESTION and item.chosen[0].strip() == "It is blue."
    assert item.group is None and item.split is None and not item.is_code


def test_a_string_prompt_next_to_conversations_is_not_the_prompt(tmp_path: Path) -> None:
    # Some datasets carry a plain-text `prompt` beside implicit-prompt conversations; TRL extracts the prompt.
    row = {"prompt": "ignored", **TRL_ROWS["conversational-implicit"]}
    data = read_preference_data(write_jsonl(tmp_path / "rows.jsonl", [row]))
    assert data.items[0].question == QUESTION and data.items[0].chosen == ["It is blue."]


def test_rewardbench_rows_as_published(tmp_path: Path) -> None:
    # allenai/reward-bench's columns: prompt, chosen, chosen_model, rejected, rejected_model, subset, id (int64),
    # published as Parquet.
    rows = [{"prompt": f"Question {i}", "chosen": f"good {i}", "chosen_model": "GPT-4", "rejected": f"bad {i}",
             "rejected_model": "Llama", "subset": subset, "id": i}
            for i, subset in enumerate(["hep-python", "hep-python", "math-prm"])]
    path = tmp_path / "filtered-00000-of-00001.parquet"
    Dataset.from_list(rows).to_parquet(str(path))
    data = read_preference_data(path)
    assert data.format == "rewardbench"
    assert [(item.question, item.chosen, item.rejected, item.group) for item in data.items] == [
        (f"Question {i}", [f"good {i}"], [f"bad {i}"], row["subset"]) for i, row in enumerate(rows)]
    assert data.items[2].row.record["id"] == 2  # every field is kept, for -o


def rm_bench_rows(domain: str | None, count: int = 2) -> list[dict]:
    rows = []
    for i in range(count):
        row = {"id": i, "prompt": f"Write code {i}", "chosen": [f"c{i}-{k}" for k in range(3)],
               "rejected": [f"r{i}-{k}" for k in range(3)]}
        if domain is None:
            row.update({"subset": "bigcode/humanevalpack", "language": "cpp", "task_id": f"CPP/{i}"})
        else:
            row["domain"] = domain
        rows.append(row)
    return rows


def test_rm_bench_total_dataset_and_per_domain_files(tmp_path: Path) -> None:
    total = tmp_path / "total_dataset.json"
    total.write_text(json.dumps(rm_bench_rows("chat") + rm_bench_rows("safety-refuse") + rm_bench_rows("code"),
                                indent=4), encoding="utf-8")
    data = read_preference_data(total)
    assert data.format == "rm-bench" and len(data.items) == 6
    assert [item.group for item in data.items] == ["chat"] * 2 + ["safety"] * 2 + ["code"] * 2
    assert data.items[0].chosen == ["c0-0", "c0-1", "c0-2"] and data.items[0].rejected[2] == "r0-2"
    # A per-domain file (as data/code_filtered.json): rows with id, prompt, subset, language, task_id, chosen,
    # rejected and no domain; the file name is the domain.
    for name, domain in (("code_filtered.json", "code"), ("safety-response_filtered.json", "safety")):
        path = tmp_path / name
        path.write_text(json.dumps(rm_bench_rows(None), indent=4), encoding="utf-8")
        assert {item.group for item in read_preference_data(path).items} == {domain}


def test_codescaler_pair_formats_read_back(tmp_path: Path) -> None:
    for pair_format in ("codescaler", "trl", "openrlhf"):
        rows = [pair_row(pair_format, "p1", "test", "Add.", "def f(a, b):\n    return a + b\n",
                         "def f(a, b):\n    return None\n")]
        data = read_preference_data(write_jsonl(tmp_path / f"{pair_format}.jsonl", rows))
        item = data.items[0]
        assert (item.question, item.split) == ("Add.", "test")
        assert item.chosen == ["def f(a, b):\n    return a + b\n"]
        assert item.rejected == ["def f(a, b):\n    return None\n"]
        assert item.is_code == (pair_format == "codescaler")
        assert data.format == ("codescaler" if pair_format == "codescaler" else "trl")


def test_split_filter(tmp_path: Path) -> None:
    rows = [pair_row("codescaler", i, split, f"q{i}", "a = 1\n", "a = 2\n")
            for i, split in enumerate(["train", "test", "train", "test"])]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    assert [item.question for item in read_preference_data(path, split="test").items] == ["q1", "q3"]
    no_split = write_jsonl(tmp_path / "plain.jsonl", [{"chosen": "x y", "rejected": "x z"}])
    with pytest.raises(InputError, match="carry no `split`"):
        read_preference_data(no_split, split="test")


def eval_rm(*args: str) -> object:
    return runner.invoke(app, ["eval-rm", *args, "-r", "no/such-model"])


def test_a_bad_row_in_a_json_array_names_its_line(tmp_path: Path) -> None:
    rows = rm_bench_rows("chat", 3)
    rows[2]["chosen"] = ["only one"]
    path = tmp_path / "total_dataset.json"
    path.write_text(json.dumps(rows, indent=4), encoding="utf-8")
    text = path.read_text()
    line = text[:text.index('"id": 2')].count("\n")  # the line of the element's opening brace
    result = eval_rm(str(path))
    assert result.exit_code == 2, result.stderr
    assert f"{path}:{line}: field `chosen` must be a list of 3 strings" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("content", "expected"), [
    ('{"chosen": "a b", "rejected": "a c"}\n{"chosen": 1, "rejected": "x"}\n', ":2: `chosen` and `rejected` must"),
    ('{"prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "q"}], '
     '"chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}\n',
     ":1: the prompt must be one user message"),
    ('{"question_content": "q", "code_pos": "a = 1"}\n', ":1: field `code_neg` (the failing program) is missing"),
    ('{"text": "hello"}\n', ":1: not a preference row"),
    ('[{"prompt": "q", "chosen": ["a", "b", "c"], "rejected": ["d", "e", "f"], "domain": "chat"},\n  {"prompt": ]',
     ":2: malformed JSON"),
    ('{"question_content": "q", "code_pos": "a", "code_neg": "b"}\n{"chosen": "x", "rejected": "y", "prompt": "p"}\n',
     ":2: this row is in trl format, but the file's first row is codescaler"),
])
def test_bad_rows_exit_2_naming_file_and_line(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(content, encoding="utf-8")
    result = eval_rm(str(path))
    assert result.exit_code == 2, result.stderr
    assert f"{path}{expected}" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_of_the_new_commands_imports_no_heavy_library() -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from codescaler_cli.cli import app\n"
        "for args in (['pairs', '--help'], ['train', '--help'], ['eval-rm', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        "heavy = ('torch', 'transformers', 'vllm', 'httpx', 'trl', 'peft', 'datasets', 'pyarrow')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
