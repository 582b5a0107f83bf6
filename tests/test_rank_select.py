"""`codescaler rank --select`: rank 1 is what eval's strategy of the same name picks, on the tiny reward model's real
scores; a resumed run must use the same selection."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import parse_jsonl, write_jsonl
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.evaluation.strategies import Outcome, strategy
from codescaler_cli.extraction import dedup_key

runner = CliRunner()
QUESTION = "Write add(a, b) returning the sum of a and b."
PROGRAMS = ["def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n",
            "def add(a, b):\n    return b + a\n", "def add(a, b):\n    return sum([a, b])\n"]
# Program 0 three times (once with a comment: the same program), the others once or twice, and no code at all.
CHOICES = [1, 0, 2, 0, 3, 0, 2, None]


@pytest.fixture(scope="module")
def candidates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = []
    for position, choice in enumerate(CHOICES):
        code = "def add(a, b:" if choice is None else PROGRAMS[choice]
        if choice == 0 and position == 3:
            code = "# the same program\n" + code
        records.append({"id": "p", "question": QUESTION, "code": code, "position": position})
    return write_jsonl(tmp_path_factory.mktemp("select") / "candidates.jsonl", records)


def rank(reward_dir: Path, candidates: Path, *extra: str) -> list[dict]:  # type: ignore[type-arg]
    result = runner.invoke(app, ["rank", str(candidates), "-r", str(reward_dir), "--device", "cpu", "-f", "jsonl",
                                 "-q", *extra])
    assert result.exit_code == 0, result.stderr
    return parse_jsonl(result.stdout)


@pytest.mark.parametrize("select", ["reward-model", "vote", "reward-weighted-vote"])
def test_rank_one_is_what_the_eval_strategy_picks(select: str, reward_dir: Path, candidates: Path) -> None:
    default = rank(reward_dir, candidates)
    records = rank(reward_dir, candidates, "--select", select)
    # The same scores whatever the selection; only the order and the ranks change.
    assert sorted((r["position"], r["score"]) for r in records) == sorted((r["position"], r["score"]) for r in default)
    assert [r["rank"] for r in records] == list(range(1, len(CHOICES) + 1))
    by_position = sorted(records, key=lambda r: r["position"])
    # Each candidate "passes" when it is the one rank put first: the strategy must pick that very candidate.
    outcomes = [Outcome(passed=r["rank"] == 1, reward=r["reward"],
                        program=dedup_key(r["code"]) if r["valid"] else None) for r in by_position]
    assert strategy(select).select(outcomes, range(len(outcomes))) == 1.0
    if select == "vote":
        assert records[0]["code"].endswith(PROGRAMS[0].rstrip("\n"))  # three votes
    if select == "reward-weighted-vote":
        sums: dict[str, float] = {}
        for r in by_position:
            if r["valid"]:
                sums[dedup_key(r["code"])] = sums.get(dedup_key(r["code"]), 0.0) + r["reward"]
        assert dedup_key(records[0]["code"]) == max(sums, key=lambda k: sums[k])
    assert records[-1]["valid"] is False


def test_resume_refuses_another_selection(reward_dir: Path, candidates: Path, tmp_path: Path) -> None:
    out = tmp_path / "ranked.jsonl"
    rank(reward_dir, candidates, "-o", str(out), "--select", "vote")
    refused = runner.invoke(app, ["rank", str(candidates), "-r", str(reward_dir), "--device", "cpu", "-o", str(out),
                                  "--resume", "-q"])
    assert refused.exit_code == 2 and "select" in refused.stderr, refused.stderr
