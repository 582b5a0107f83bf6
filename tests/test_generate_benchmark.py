"""`codescaler generate --benchmark NAME`: a built-in benchmark's selected problems, sampled under the benchmark's ids,
so that `codescaler eval OUTPUT --benchmark NAME` grades them as they are. The benchmark comes from a local hub cache
(tests/hub_fixtures.py, offline); the generator is the tiny coder model, in-process vLLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import parse_jsonl, write_jsonl
from hub_fixtures import GENVERSE_ROWS, fill_hub_cache
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.evaluation import STATUSES

runner = CliRunner()
BENCHMARK = "genverse-codecontests"


@pytest.mark.vllm
def test_generate_benchmark_feeds_eval_and_resumes(hf_home: Path, coder_dir: Path, reward_dir: Path,
                                                    tmp_path: Path) -> None:
    fill_hub_cache(hf_home, [BENCHMARK])
    output = tmp_path / "all.jsonl"
    args = ["generate", "--benchmark", BENCHMARK, "-n", "2", "-m", str(coder_dir), "-r",
            str(reward_dir), "--max-tokens", "48", "--seed", "0", "-q", "-o", str(output)]
    first = runner.invoke(app, [*args, "--limit", "2"])
    assert first.exit_code == 0, first.stderr
    records = parse_jsonl(output.read_text(encoding="utf-8"))
    # Exactly the first two problems of the benchmark, under its ids, N samples each; stdout: the best of each.
    assert sorted((r["id"], r["sample"]) for r in records) == [("cc_0", 0), ("cc_0", 1), ("cc_1", 0), ("cc_1", 1)]
    assert {r["id"]: r["question"] for r in records} == {"cc_0": GENVERSE_ROWS[0]["question"],
                                                         "cc_1": GENVERSE_ROWS[1]["question"]}
    assert [r["id"] for r in parse_jsonl(first.stdout)] == ["cc_0", "cc_1"]

    # eval grades the output as it is, against the same selection of the benchmark.
    verdicts = tmp_path / "verdicts.jsonl"
    graded = runner.invoke(app, ["eval", str(output), "--benchmark", BENCHMARK, "--limit", "2", "--jobs", "2", "-q",
                                 "-o", str(verdicts), "--json", "-"])
    assert graded.exit_code == 0, graded.stderr
    graded_records = parse_jsonl(verdicts.read_text(encoding="utf-8"))
    assert sorted((r["id"], r["sample"]) for r in graded_records) == sorted((r["id"], r["sample"]) for r in records)
    assert all(r["status"] in STATUSES for r in graded_records), graded_records
    assert json.loads(graded.stdout)["problems"] == 2

    # --resume of the finished run writes nothing more (no engine starts); another selection is refused, named.
    before = output.read_bytes()
    again = runner.invoke(app, [*args, "--limit", "2", "--resume"])
    assert again.exit_code == 0, again.stderr
    assert output.read_bytes() == before
    for changed, flag in ((["--limit", "3"], "--limit"), (["--sample", "2"], "--sample")):
        refused = runner.invoke(app, [*args, *changed, "--resume"])
        assert refused.exit_code == 2, refused.stderr
        assert "different settings" in refused.stderr and flag in refused.stderr, refused.stderr
        assert output.read_bytes() == before


def test_benchmark_excludes_a_question_or_a_problems_file(hf_home: Path, tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "problems.jsonl", [{"id": "a", "question": "Write add(a, b)"}])
    for extra in (["Write add(a, b)"], ["--problems", str(problems)]):
        result = runner.invoke(app, ["generate", *extra, "--benchmark", "humaneval", "-m", "/nonexistent"])
        assert result.exit_code == 2, result.stderr
        assert "give one of a QUESTION, --problems FILE or --benchmark NAME, not several" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("arguments", "message"), [
    (["Write add(a, b)", "--limit", "2"], "--limit, --sample and the LiveCodeBench window select among problems"),
    (["--benchmark", "no-such-bench"], "unknown benchmark 'no-such-bench'"),
    (["--benchmark", BENCHMARK, "--since", "2025-01-01"], "--release, --since and --until apply to livecodebench"),
    (["--benchmark", "livecodebench", "--limit", "2", "--sample", "2"], "give --limit N"),
])
def test_bad_selection_is_a_usage_error(hf_home: Path, arguments: list[str], message: str) -> None:
    fill_hub_cache(hf_home, [BENCHMARK])
    result = runner.invoke(app, ["generate", *arguments, "-m", "/nonexistent"])
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_problems_file_has_no_contest_window(hf_home: Path, tmp_path: Path) -> None:
    """--problems takes --limit and --sample as eval does; a LiveCodeBench window needs the benchmark."""
    problems = write_jsonl(tmp_path / "problems.jsonl", [{"id": i, "question": f"Q{i}"} for i in range(3)])
    windowed = runner.invoke(app, ["generate", "--problems", str(problems), "--since", "2025-01-01", "-m", "/none"])
    assert windowed.exit_code == 2 and "use them with --benchmark livecodebench" in windowed.stderr
