"""The stopping rules replayed on recorded samples (`eval`'s cost report): the fast grid equals a brute-force replay
written here from the rules' words, the replay follows the pipeline's own rule check, and the calibration picks the
cheapest rule within EPS on a constructed example whose answer is worked out by hand. Then the same end to end
through `codescaler eval --calibrate` and `--plot`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from helpers import write_jsonl
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.evaluation.adaptive import calibrate, random_orders, replay, replay_grid, threshold_grid
from codescaler_cli.evaluation.strategies import Outcome
from codescaler_cli.stopping import StoppingRule

runner = CliRunner()


def brute_force(outcomes: list[Outcome], order: list[int], rule: str, threshold: float, wave: int
                ) -> tuple[bool, int, int]:
    """Draw in `order`, a wave at a time; after each wave look at everything drawn and apply the rule as worded:
    score: the best valid score reaches the threshold; margin: the best distinct program's score minus the
    second's reaches it; agreement: that many valid samples share a program. Submit the best score (earliest on
    ties; the first drawn when nothing is scored)."""
    n = len(order)
    drawn = n
    for end in list(range(wave, n, wave)) + [n]:
        prefix = [outcomes[i] for i in order[:end]]
        program_scores: dict[str, float] = {}
        for o in prefix:
            if o.program is not None and o.score is not None and o.program not in program_scores:
                program_scores[o.program] = o.score
        ranked = sorted(program_scores.values(), reverse=True)
        votes = [sum(1 for p in prefix if p.program == o.program) for o in prefix if o.program is not None]
        holds = {"score": bool(ranked) and ranked[0] >= threshold,
                 "margin": len(ranked) >= 2 and ranked[0] - ranked[1] >= threshold,
                 "agreement": bool(votes) and max(votes) >= threshold}[rule]
        if holds:
            drawn = end
            break
    taken = order[:drawn]
    scored = [i for i in taken if outcomes[i].score is not None]
    chosen = max(scored, key=lambda i: (outcomes[i].score, -taken.index(i))) if scored else taken[0]
    return outcomes[chosen].passed, drawn, sum(outcomes[i].tokens or 0 for i in taken)


def random_problem(rng: random.Random) -> list[Outcome]:
    programs = {name: (rng.random() < 0.5, round(rng.uniform(-2, 3), 1)) for name in "abcd"}
    outcomes = []
    for _ in range(rng.randint(1, 9)):
        name = rng.choice("abcd ")
        if name == " ":
            outcomes.append(Outcome(passed=False, tokens=rng.randint(1, 30)))
            continue
        passed, score = programs[name]
        # Usually a program's candidates share its score; sometimes one is unscored (a failed scoring).
        outcomes.append(Outcome(passed=passed, program=name, score=None if rng.random() < 0.1 else score,
                                reward=1.0, tokens=rng.randint(1, 30)))
    return outcomes


@pytest.mark.parametrize("wave", [1, 2, 3])
def test_replay_grid_equals_brute_force_in_sample_order_and_in_every_random_order(wave: int) -> None:
    rng = random.Random(wave)
    for trial in range(25):
        problems = [random_problem(rng) for _ in range(rng.randint(1, 4))]
        orders = 3
        report = replay_grid(problems, wave=wave, orders=orders, seed=trial)
        grid = threshold_grid(problems)
        assert [(r.rule, r.threshold) for r in report.rows] == \
            [(rule, t) for rule in ("score", "margin", "agreement") for t in grid[rule]]
        for row in report.rows:
            in_order = [brute_force(o, list(range(len(o))), row.rule, row.threshold, wave) for o in problems]
            shuffled = [brute_force(o, order, row.rule, row.threshold, wave)
                        for index, o in enumerate(problems) for order in random_orders(len(o), orders, trial, index)]
            for spent, runs in ((row.in_order, in_order), (row.shuffled, shuffled)):
                count = len(runs)
                assert spent.accuracy == pytest.approx(sum(r[0] for r in runs) / count, abs=1e-12)
                assert spent.samples == pytest.approx(sum(r[1] for r in runs) / count, abs=1e-12)
                assert spent.tokens == pytest.approx(sum(r[2] for r in runs) / count, abs=1e-12)
            # The replay's definition (the pipeline's own StoppingRule.check) agrees run by run.
            rule = StoppingRule(wave=wave, **{row.rule: row.threshold})
            for o, expected in zip(problems, in_order):
                assert replay(o, rule, list(range(len(o)))) == expected


def constructed() -> list[list[Outcome]]:
    """An easy problem (8 samples of one right program, score 5) and a hard one (8 distinct programs, one right
    with score 3, the rest wrong with score 0), 10 tokens a sample. With waves of 1, every sample drawn:

    - score >= 3: easy stops at 1 sample, hard when its right program comes (4.5 samples expected); accuracy 1.
    - score >= 5: easy 1, hard never (8): 4.5 samples a problem; accuracy 1.
    - score >= 0, or agreement 1: both stop at 1 sample; hard is right 1 time in 8: accuracy 0.5625.
    - agreement 2: easy 2, hard 8: 5 samples; margin (hard only: easy has one program): more than 6.
    So the cheapest within 0.01 of full-N (accuracy 1) is --stop-score 3; within 0.5 it is --stop-score 0 (1
    sample, tied with agreement 1, and score comes first).
    """
    easy = [Outcome(passed=True, program="right", score=5.0, reward=5.0, tokens=10) for _ in range(8)]
    hard = [Outcome(passed=j == 5, program=f"p{j}", score=3.0 if j == 5 else 0.0, reward=1.0, tokens=10)
            for j in range(8)]
    return [easy, hard]


def test_calibration_picks_the_cheapest_rule_within_eps_on_a_constructed_example() -> None:
    report = replay_grid(constructed(), wave=1, orders=400, seed=3)
    assert report.full.accuracy == 1.0 and report.full.samples == 8.0 and report.full.tokens == 80.0
    assert threshold_grid(constructed())["score"] == [0.0, 3.0, 5.0]
    tight = calibrate(report, 0.01)
    assert tight.row is not None and (tight.row.rule, tight.row.threshold) == ("score", 3.0)
    assert tight.row.shuffled.accuracy == 1.0
    assert tight.row.shuffled.samples == pytest.approx((1 + 4.5) / 2, abs=0.15)
    assert tight.flags() == "-n 8 --wave 1 --stop-score 3"
    loose = calibrate(report, 0.5)
    assert loose.row is not None and (loose.row.rule, loose.row.threshold) == ("score", 0.0)
    assert loose.row.shuffled.samples == 1.0 and loose.row.shuffled.accuracy == pytest.approx(0.5625, abs=0.05)
    by_rule = {(row.rule, row.threshold): row.shuffled for row in report.rows}
    assert by_rule[("agreement", 2)].samples == 5.0 and by_rule[("agreement", 2)].accuracy == 1.0
    assert by_rule[("score", 5.0)].samples == 4.5
    # Waves of 4: no rule can stop before 4 samples, and score >= 3 then costs more than at waves of 1.
    coarse = replay_grid(constructed(), wave=4, orders=400, seed=3)
    assert min(row.shuffled.samples for row in coarse.rows) == 4.0
    assert calibrate(coarse, 0.01).flags().startswith("-n 8 --wave 4 --stop-")


def test_eval_calibrate_prints_the_rule_to_paste_and_plots_accuracy_against_samples(tmp_path: Path) -> None:
    # The constructed example as real problems and candidates: the sandbox decides which candidates pass.
    problems = write_jsonl(tmp_path / "problems.jsonl", [
        {"id": "easy", "test_list": ["assert double(2) == 4"]},
        {"id": "hard", "test_list": ["assert double(3) == 6"]},
    ])
    records = [{"id": "easy", "code": "def double(x):\n    return 2 * x\n", "score": 5.0, "sample": j,
                "completion_tokens": 10} for j in range(8)]
    records += [{"id": "hard", "code": f"def double(x):\n    return x * {2 if j == 5 else 3 + j}\n",
                 "score": 3.0 if j == 5 else 0.0, "sample": j, "completion_tokens": 10} for j in range(8)]
    candidates = write_jsonl(tmp_path / "candidates.jsonl", records)
    plot = tmp_path / "cost.png"
    result = runner.invoke(app, ["eval", str(candidates), "--problems", str(problems), "--wave", "1",
                                 "--calibrate", "0.01", "--replay-orders", "400", "--replay-seed", "3", "--jobs", "2",
                                 "--plot", str(plot), "--json", str(tmp_path / "report.json"), "-q"])
    assert result.exit_code == 0, result.stderr
    assert "calibrated (within 1.0 points of full-N): -n 8 --wave 1 --stop-score 3" in result.stdout
    assert "accuracy 100.0% against 100.0% with every sample" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    adaptive = report["adaptive"]
    assert adaptive["calibration"]["options"] == "-n 8 --wave 1 --stop-score 3"
    assert adaptive["full_n"]["random_orders"] == {"accuracy": 1.0, "samples": 8.0, "tokens": 80.0}
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
