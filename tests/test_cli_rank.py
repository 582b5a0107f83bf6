"""`codescaler rank` end to end on a real tiny reward model: records, ranks, dedup, output formats and streams."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import EXAMPLES, parse_jsonl, write_jsonl
from helpers.sample_candidates import MAX_A, Q1, Q2, RECORDS, SUM_A, SUM_A_COMMENTED, SUM_B, fenced
from typer.testing import CliRunner

from codescaler_cli.cli import app

runner = CliRunner()

# Modules `--help` and `extract` must never import: each costs seconds (or is an optional extra).
HEAVY_MODULES = ("torch", "transformers", "vllm", "fastapi", "uvicorn", "matplotlib", "httpx")

@pytest.fixture()
def candidates(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "candidates.jsonl", RECORDS)


def rank(*args: str, **kwargs):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["rank", *args], **kwargs)
    assert result.exit_code == 0, result.stderr
    return result


def test_rank_records_fields_and_order(candidates: Path, reward_dir: Path) -> None:
    records = parse_jsonl(rank(str(candidates), "-r", str(reward_dir), "--format", "jsonl").stdout)
    assert len(records) == 6
    # Groups in first-seen order (Q1 first), each sorted by rank.
    assert [r["question"] for r in records] == [Q1] * 4 + [Q2] * 2
    assert [r["rank"] for r in records] == [1, 2, 3, 4, 1, 2]
    q1 = records[:4]
    assert q1[-1]["valid"] is False and q1[-1]["score"] is None and q1[-1]["reward"] == 0.0
    for record in records:
        assert set(record) >= {"code", "valid", "score", "reward", "rank", "truncated"}
        assert record["truncated"] is False
        if record["valid"]:
            assert record["reward"] == pytest.approx(math.log1p(math.exp(record["score"])), rel=1e-12)
            assert record["reward"] > 0
    valid_scores = [r["score"] for r in q1 if r["valid"]]
    assert valid_scores == sorted(valid_scores, reverse=True)
    # Unknown fields pass through unchanged.
    assert next(r for r in records if r.get("meta")) ["meta"] == {"sample": 0}
    # The invalid Q2 candidate ranks after the valid one.
    assert records[4]["code"] == MAX_A and records[5]["valid"] is False


def test_duplicates_share_one_score(candidates: Path, reward_dir: Path) -> None:
    records = parse_jsonl(rank(str(candidates), "-r", str(reward_dir), "-f", "jsonl").stdout)
    dupes = [r for r in records if r["code"] in (SUM_A, SUM_A_COMMENTED)]
    assert len(dupes) == 2 and dupes[0]["score"] == dupes[1]["score"]
    # Ties break by input order: the plain one (line 4) before the commented one (line 5).
    assert dupes[0]["code"] == SUM_A and dupes[1]["rank"] == dupes[0]["rank"] + 1


def test_scores_match_the_scorer_on_each_text_alone(candidates: Path, reward_dir: Path) -> None:
    from codescaler_cli.scoring import ScoreRequest
    from codescaler_cli.scoring.transformers_backend import TransformersScorer

    records = parse_jsonl(rank(str(candidates), "-r", str(reward_dir), "-f", "jsonl").stdout)
    scorer = TransformersScorer(str(reward_dir), device="cpu", reuse_prefix=False)
    for record in records:
        if record["valid"] and record["code"] != SUM_A_COMMENTED:
            alone = scorer.score([ScoreRequest(record["question"], record["code"])])[0].score
            assert record["score"] == pytest.approx(alone, abs=1e-4)


def test_groups_by_id_when_present(tmp_path: Path, reward_dir: Path) -> None:
    path = write_jsonl(tmp_path / "ids.jsonl", [
        {"id": "a", "question": Q1, "response": fenced(SUM_A)},
        {"id": "b", "question": Q1, "response": fenced(SUM_B)},
        {"id": "a", "question": Q1, "response": fenced(SUM_B)},
    ])
    records = parse_jsonl(rank(str(path), "-r", str(reward_dir), "-f", "jsonl").stdout)
    assert [(r["id"], r["rank"]) for r in records] == [("a", 1), ("a", 2), ("b", 1)]


def test_top_k_and_output_file(candidates: Path, reward_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ranked.jsonl"
    result = rank(str(candidates), "-r", str(reward_dir), "--top-k", "1", "-o", str(out), "-f", "jsonl")
    top = parse_jsonl(result.stdout)
    assert [r["rank"] for r in top] == [1, 1]
    # --output keeps every record, ranked, whatever --top-k shows.
    everything = parse_jsonl(out.read_text(encoding="utf-8"))
    assert [r["rank"] for r in everything] == [1, 2, 3, 4, 1, 2]
    assert [r for r in everything if r["rank"] == 1] == top
    as_table = rank(str(candidates), "-r", str(reward_dir), "--top-k", "1", "-o", str(out), "-f", "table", "-q")
    assert "rank" in as_table.stdout and parse_jsonl(out.read_text(encoding="utf-8")) == everything


def test_same_id_different_questions_are_scored_apart(tmp_path: Path, reward_dir: Path) -> None:
    # One group (same id), the same program, two questions: each score must come from its own question.
    path = write_jsonl(tmp_path / "ids.jsonl", [{"id": "p", "question": Q1, "code": SUM_A},
                                                {"id": "p", "question": Q2, "code": SUM_A}])
    records = parse_jsonl(rank(str(path), "-r", str(reward_dir), "-f", "jsonl", "-q").stdout)
    by_question = {r["question"]: r["score"] for r in records}
    from codescaler_cli.scoring import ScoreRequest
    from codescaler_cli.scoring.transformers_backend import TransformersScorer

    scorer = TransformersScorer(str(reward_dir), device="cpu")
    alone = [r.score for r in scorer.score([ScoreRequest(Q1, SUM_A), ScoreRequest(Q2, SUM_A)])]
    assert by_question[Q1] == pytest.approx(alone[0], abs=1e-4)
    assert by_question[Q2] == pytest.approx(alone[1], abs=1e-4)
    assert abs(alone[0] - alone[1]) > 1e-3  # otherwise this test could not tell


def test_stdin_pipe_with_dash(candidates: Path, reward_dir: Path) -> None:
    data = candidates.read_text(encoding="utf-8")
    via_file = parse_jsonl(rank(str(candidates), "-r", str(reward_dir), "-f", "jsonl").stdout)
    via_stdin = parse_jsonl(rank("-", "-r", str(reward_dir), "--top-k", "1", input=data).stdout)
    assert via_stdin == [r for r in via_file if r["rank"] == 1]


def test_stdout_is_jsonl_while_progress_goes_to_stderr(candidates: Path, reward_dir: Path) -> None:
    # stderr is not a terminal here: no progress bar, only the summary.
    result = rank(str(candidates), "-r", str(reward_dir))  # auto format: not a terminal, so JSONL
    assert len(parse_jsonl(result.stdout)) == 6
    assert "Scoring" not in result.stderr and "ranked 6 candidates in 2 problems" in result.stderr
    quiet = rank(str(candidates), "-r", str(reward_dir), "--quiet")
    assert quiet.stderr == "" and parse_jsonl(quiet.stdout) == parse_jsonl(result.stdout)
    # On a terminal stderr (rich honours TTY_COMPATIBLE=1) the progress shows, and stdout is still pure JSONL.
    terminal = rank(str(candidates), "-r", str(reward_dir), "-f", "jsonl", env={"TTY_COMPATIBLE": "1"})
    assert "Scoring" in terminal.stderr
    assert parse_jsonl(terminal.stdout) == parse_jsonl(result.stdout)


def test_json_and_table_formats(candidates: Path, reward_dir: Path) -> None:
    as_json = json.loads(rank(str(candidates), "-r", str(reward_dir), "-f", "json", "-q").stdout)
    assert isinstance(as_json, list) and len(as_json) == 6 and as_json[0]["rank"] == 1
    table = rank(str(candidates), "-r", str(reward_dir), "-f", "table", "-q").stdout
    assert "rank" in table and "score" in table and "def total(xs):" in table


def test_json_with_a_lone_surrogate_is_one_valid_document(tmp_path: Path, reward_dir: Path) -> None:
    path = tmp_path / "surrogate.jsonl"
    path.write_text('{"question": "q", "response": "x = 1", "note": "\\udfff"}\n', encoding="utf-8")
    for command in (["extract", str(path)], ["rank", str(path), "-r", str(reward_dir), "-q"]):
        result = runner.invoke(app, [*command, "-f", "json"])
        assert result.exit_code == 0, result.stderr
        document = json.loads(result.stdout)
        assert document[0]["note"] == "\udfff" and document[0]["code"] == "x = 1"


def test_a_failed_json_run_prints_no_document(candidates: Path) -> None:
    result = runner.invoke(app, ["rank", str(candidates), "-r", "/nonexistent/model", "-f", "json"])
    assert result.exit_code == 1 and result.stdout == ""
    assert "cannot load reward model" in result.stderr


def test_options_the_chosen_backend_ignores_are_warned_about(candidates: Path, reward_dir: Path) -> None:
    result = rank(str(candidates), "-r", str(reward_dir), "-f", "jsonl", "--timeout", "5",
                  "--gpu-memory-utilization", "0.5")
    assert "warning: --timeout is ignored without --reward-url" in result.stderr
    assert "warning: --gpu-memory-utilization is ignored with the transformers scorer" in result.stderr
    quiet = rank(str(candidates), "-r", str(reward_dir), "-f", "jsonl", env={"OPENAI_API_KEY": "set-in-env"})
    assert "warning" not in quiet.stderr  # an environment variable is not something the user typed here


def test_truncation_is_flagged_and_warned(tmp_path: Path, reward_dir: Path) -> None:
    long_code = "def f(x):\n" + "".join(f"    x = x * {i} + 1\n" for i in range(200)) + "    return x"
    path = write_jsonl(tmp_path / "long.jsonl", [{"question": Q1, "code": long_code},
                                                 {"question": Q1, "code": SUM_A}])
    result = rank(str(path), "-r", str(reward_dir), "--max-length", "256", "-f", "jsonl")
    flags = {r["code"]: r["truncated"] for r in parse_jsonl(result.stdout)}
    assert flags == {long_code: True, SUM_A: False}
    assert f"{path}:1" in result.stderr and "--max-length 256" in result.stderr


def test_all_invalid_needs_no_model(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "invalid.jsonl", [{"question": Q1, "response": "no idea"},
                                                    {"question": Q1, "response": "```python\ndef (\n```"}])
    result = runner.invoke(app, ["rank", str(path), "-r", "/nonexistent/model", "-f", "jsonl"])
    assert result.exit_code == 0, result.stderr
    assert [(r["rank"], r["score"], r["reward"]) for r in parse_jsonl(result.stdout)] == [(1, None, 0.0),
                                                                                          (2, None, 0.0)]


def test_field_mapping_human_eval_style(tmp_path: Path, reward_dir: Path) -> None:
    path = write_jsonl(tmp_path / "he.jsonl", [
        {"task_id": "HumanEval/0", "prompt": Q1, "completion": fenced(SUM_A)},
        {"task_id": "HumanEval/0", "prompt": Q1, "completion": fenced(SUM_B)},
    ])
    result = rank(str(path), "-r", str(reward_dir), "--id-field", "task_id", "--question-field", "prompt",
                  "--response-field", "completion", "-f", "jsonl")
    records = parse_jsonl(result.stdout)
    assert sorted(r["rank"] for r in records) == [1, 2]
    assert all(r["task_id"] == "HumanEval/0" and "completion" in r for r in records)


def test_env_var_names_the_reward_model(candidates: Path, reward_dir: Path) -> None:
    result = runner.invoke(app, ["rank", str(candidates), "-f", "jsonl", "-q"],
                           env={"CODESCALER_REWARD_MODEL": str(reward_dir)})
    assert result.exit_code == 0, result.stderr
    assert len(parse_jsonl(result.stdout)) == 6


def test_example_file_ranks_as_a_real_process(reward_dir: Path) -> None:
    """The console script in a real pipe: JSONL on stdout, `| head` does not break it."""
    command = [sys.executable, "-m", "codescaler_cli", "rank", str(EXAMPLES / "candidates.jsonl"),
               "-r", str(reward_dir), "--top-k", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    top = parse_jsonl(done.stdout)
    assert [r["id"] for r in top] == ["subarray-sum", "palindrome"] and all(r["valid"] for r in top)
    head = subprocess.run(" ".join(f"'{part}'" for part in command) + " | head -n 1", shell=True,
                          capture_output=True, text=True, env=env, timeout=300)
    assert head.returncode == 0 and len(head.stdout.splitlines()) == 1
    assert "Traceback" not in head.stderr


def test_help_and_extract_do_not_import_heavy_libraries(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"response": fenced(SUM_A)}])
    probe = (
        "import sys\n"
        f"HEAVY = {HEAVY_MODULES!r}\n"
        "from typer.testing import CliRunner\n"
        "from codescaler_cli.cli import app\n"
        "r = CliRunner()\n"
        "for args in (['--help'], ['rank', '--help'], ['generate', '--help'], ['extract', '--help']):\n"
        "    assert r.invoke(app, args).exit_code == 0, args\n"
        f"res = r.invoke(app, ['extract', {str(path)!r}])\n"
        "assert res.exit_code == 0, res.stderr\n"
        "heavy = sorted(m for m in HEAVY if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_a_generator_passed_as_reward_model_is_refused_before_loading(candidates: Path,
                                                                      tiny_models: dict[str, Path]) -> None:
    result = runner.invoke(app, ["rank", str(candidates), "-r", str(tiny_models["generator"]), "-f", "jsonl"])
    assert result.exit_code == 1 and result.stdout == ""
    assert "is a generator (Qwen3ForCausalLM), not a sequence-classification reward model" in result.stderr
    assert "swap -m and -r" in result.stderr
    assert "LOAD REPORT" not in result.stderr


def test_a_wrong_reward_model_leaves_earlier_results_alone(candidates: Path, reward_dir: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "ranked.jsonl"
    rank(str(candidates), "-r", str(reward_dir), "-o", str(out), "-q")
    before = out.read_bytes()
    result = runner.invoke(app, ["rank", str(candidates), "-r", str(tmp_path / "typo"), "-o", str(out), "-q"])
    assert result.exit_code == 1 and "cannot load reward model" in result.stderr
    assert out.read_bytes() == before and len(before) > 0


def test_output_that_is_the_input_is_refused(candidates: Path, reward_dir: Path) -> None:
    before = candidates.read_bytes()
    result = runner.invoke(app, ["rank", str(candidates), "-r", str(reward_dir), "-o", str(candidates)])
    assert result.exit_code == 2 and "is the input file" in result.stderr and result.stdout == ""
    assert candidates.read_bytes() == before


def test_output_file_gets_everything_when_stdout_closes_early(reward_dir: Path, tmp_path: Path) -> None:
    """`rank ... -o all.jsonl | head -n 1`: the pipe breaks after one line, -o still holds every record."""
    records = [{"id": i, "question": f"Return {i} plus x.", "code": f"def f(x):\n    return x + {i}"}
               for i in range(300)]
    path = write_jsonl(tmp_path / "many.jsonl", records)
    out = tmp_path / "all.jsonl"
    command = (f"'{sys.executable}' -m codescaler_cli rank '{path}' -r '{reward_dir}' -o '{out}' -q "
               f"--max-batch-tokens 256 | head -n 1")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1 and "Traceback" not in done.stderr
    assert sorted(r["id"] for r in parse_jsonl(out.read_text(encoding="utf-8"))) == list(range(300))
