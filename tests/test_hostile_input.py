"""Hostile and extreme input never crashes `rank`: odd Unicode, empty and huge candidates, a 50 MB line, a group of
10,000, a broken model that returns NaN, and a large grouped file ranked in bounded memory.

Per-record problems become an `error` field, the run goes on, and the exit status says so.
"""

from __future__ import annotations

import json
import math
import tracemalloc
from pathlib import Path

from helpers import parse_jsonl, write_jsonl
from typer.testing import CliRunner

from codescaler_cli.cli import app

runner = CliRunner()


def test_odd_unicode_empty_lonely_and_overlong_candidates(reward_dir: Path, tmp_path: Path) -> None:
    long_code = "def f(x):\n" + "    x = x + 1\n" * 5000 + "    return x\n"
    records = [
        {"id": "surrogate-question", "question": "Sum \udfff the list", "code": "def f(xs):\n    return sum(xs)"},
        {"id": "surrogate-code", "question": "Q", "code": "def f():\n    return '\ud800'"},
        {"id": "nul", "question": "Q\u0000", "code": "def f():\n    return '\u0000'"},
        {"id": "rtl", "question": "\u202eQ\u200f", "code": "def f():\n    return '\u202e\u200f'"},
        {"id": "empty", "question": "Q", "code": ""},
        {"id": "empty-response", "question": "Q", "response": ""},
        {"id": "alone", "question": "Q", "code": "x = 1"},
        {"id": "long", "question": "Q", "code": long_code},
    ]
    path = write_jsonl(tmp_path / "odd.jsonl", records)
    result = runner.invoke(app, ["rank", str(path), "-r", str(reward_dir), "--max-length", "64", "-f", "jsonl"])
    assert result.exit_code == 0, result.stderr
    out = {r["id"]: r for r in parse_jsonl(result.stdout)}
    assert list(out) == [r["id"] for r in records]  # every record, once, in order
    assert out["surrogate-question"]["question"] == "Sum \udfff the list"  # passed through unchanged...
    assert out["surrogate-question"]["valid"] and math.isfinite(out["surrogate-question"]["score"])  # ...and scored
    assert out["rtl"]["valid"] and out["rtl"]["score"] is not None
    for name in ("empty", "empty-response"):
        assert out[name]["valid"] is False and out[name]["score"] is None and out[name]["rank"] == 1
    assert out["alone"]["rank"] == 1 and out["alone"]["score"] is not None
    assert out["long"]["truncated"] is True and out["long"]["code"] == long_code.rstrip("\n")


def test_a_50_megabyte_line_and_an_oversized_response(reward_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": 1, "question": "Q", "code": "x = 1", "note": "n" * 50_000_000}) + "\n")
        handle.write(json.dumps({"id": 1, "question": "Q", "response": "Words, no code. " * 150_000}) + "\n")
        handle.write(json.dumps({"id": 1, "question": "Q", "code": "x = 2"}) + "\n")
    result = runner.invoke(app, ["rank", str(path), "-r", str(reward_dir), "-f", "jsonl"])
    assert result.exit_code == 1, result.stderr  # a record failed: the status says so
    out = parse_jsonl(result.stdout)
    assert len(out) == 3
    assert [r["rank"] for r in out] == [1, 2, 3]
    assert len(next(r for r in out if "note" in r)["note"]) == 50_000_000
    oversized = next(r for r in out if "response" in r)
    assert oversized["valid"] is False and "2,400,000 characters, over the 1,000,000" in oversized["error"]
    assert f"{path}:2: the response is 2,400,000 characters" in result.stderr and "Traceback" not in result.stderr


def test_a_group_of_10000_candidates(reward_dir: Path, tmp_path: Path) -> None:
    programs = ["x = 1", "x = 2", "def (", ""]
    path = write_jsonl(tmp_path / "group.jsonl", [{"id": "g", "question": "Q", "code": programs[i % 4], "i": i}
                                                  for i in range(10_000)])
    result = runner.invoke(app, ["rank", str(path), "-r", str(reward_dir), "-f", "jsonl", "--top-k", "3"])
    assert result.exit_code == 0, result.stderr
    top = parse_jsonl(result.stdout)
    assert [r["rank"] for r in top] == [1, 2, 3]
    # Ties (the same program) break by input order.
    assert top[0]["i"] < top[1]["i"] < top[2]["i"] and top[0]["code"] == top[1]["code"]
    assert "10000 candidates in 1 problems: 5000 valid, 2 unique programs scored" in result.stderr


def test_a_broken_model_returning_nan_never_ranks_first_and_is_an_error(reward_dir: Path, tmp_path: Path) -> None:
    import shutil

    import torch
    from transformers import AutoModelForSequenceClassification

    broken = tmp_path / "broken-reward"
    model = AutoModelForSequenceClassification.from_pretrained(reward_dir)
    with torch.no_grad():
        model.score.weight.fill_(float("nan"))  # a real model with broken weights: every score is NaN
    model.save_pretrained(broken)
    for name in reward_dir.iterdir():
        if name.name.startswith(("tokenizer", "special_tokens", "vocab", "merges", "chat_template")):
            shutil.copy(name, broken / name.name)
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": 1, "question": "Q", "code": "x = 1"},
                                              {"id": 1, "question": "Q", "code": "def ("},
                                              {"id": 2, "question": "Q2", "code": "y = 2"}])
    result = runner.invoke(app, ["rank", str(path), "-r", str(broken), "-f", "jsonl"])
    assert result.exit_code == 1, result.stderr
    out = parse_jsonl(result.stdout)
    assert len(out) == 3
    for record in out:
        assert record["score"] is None and record["reward"] == 0.0
        if record["valid"]:
            assert record["error"] == "the reward model returned nan (not a finite score)"
    assert "2 of 3 candidates could not be scored" in result.stderr and "Traceback" not in result.stderr


def peak_rank_memory(path: Path) -> int:
    tracemalloc.start()
    try:
        result = runner.invoke(app, ["rank", str(path), "-r", "/nonexistent/model", "-f", "jsonl", "-q", "--top-k", "1",
                                     "-o", str(path.with_suffix(".out"))])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.stderr
    return peak


def test_a_grouped_file_is_ranked_in_bounded_memory(tmp_path: Path) -> None:
    """Invalid candidates need no model, so this measures the pipeline alone: 10x the records, not 10x the memory."""
    def grouped(name: str, records: int) -> Path:
        return write_jsonl(tmp_path / name, [{"id": i // 8, "question": f"Problem {i // 8}", "code": f"def ({i}"}
                                             for i in range(records)])

    small = peak_rank_memory(grouped("small.jsonl", 5_000))
    large = peak_rank_memory(grouped("large.jsonl", 50_000))
    assert large < 2 * small, (small, large)
    assert len(parse_jsonl((tmp_path / "large.out").read_text())) == 50_000
