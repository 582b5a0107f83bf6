"""`codescaler eval-rm` with a real (tiny) reward model: RM-Bench rows give RM-Bench's numbers from the scores it
writes, every score is the scorer's own, the three extraction modes pick what is scored, RewardBench rows are
reported per subset, the cache is shared with `rank`, and the vLLM and server scorers give the same results."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import parse_jsonl, write_jsonl
from rm_helpers import one_torch_thread
from test_rm_metrics import brute_force_rm_bench
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.extraction import extract_code
from codescaler_cli.scoring import ScoreRequest, ScorerConfig, open_scorer

runner = CliRunner()

PROSE = "Here is how to do it.\n\n```python\n{code}```\n\nThis runs in linear time."


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def invoke(*args: str, code: int = 0, stdin: str | None = None) -> Any:
    result = runner.invoke(app, list(args), input=stdin)
    assert result.exit_code == code, result.stderr
    return result


def rm_bench_file(path: Path) -> Path:
    """An RM-Bench-shaped total_dataset.json: prose answers in three styles per side, four domains (safety split
    into two sub-domains), as a JSON array with `domain` on every row."""
    rows = []
    domains = ["chat", "code", "math", "safety-refuse", "safety-response"]
    for number in range(15):
        domain = domains[number % len(domains)]
        prompt = f"Question {number}: write add{number}(a, b)."
        good = f"def add{number}(a, b):\n    return a + b\n"
        bad = f"def add{number}(a, b):\n    return a - b\n"
        styles = ["{} ", "Here is a detailed answer. {} It adds.", "## Answer\n\n{}\n\n- it adds"]
        rows.append({"id": number, "prompt": prompt, "domain": domain,
                     "chosen": [style.format(good) for style in styles],
                     "rejected": [style.format(bad) for style in styles]})
    path.write_text(json.dumps(rows, indent=4), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def rm_bench_run(tmp_path_factory: pytest.TempPathFactory, reward_dir: Path) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("rmbench")
    data = rm_bench_file(tmp / "total_dataset.json")
    scored, report = tmp / "scored.jsonl", tmp / "report.json"
    result = invoke("eval-rm", str(data), "-r", str(reward_dir), "-o", str(scored), "--json", str(report))
    return {"data": data, "rows": parse_jsonl(scored.read_text()), "report": json.loads(report.read_text()),
            "stdout": result.stdout}


def test_rm_bench_report_equals_the_definition_on_the_written_scores(rm_bench_run: dict[str, Any]) -> None:
    rows, report = rm_bench_run["rows"], rm_bench_run["report"]
    assert report["format"] == "rm-bench" and report["extraction"] == "none"  # prose: scored whole by default
    assert list(report["domains"]) == ["chat", "math", "code", "safety"]
    by_domain: dict[str, list] = {}
    for row in rows:
        assert len(row["chosen_scores"]) == len(row["rejected_scores"]) == 3
        domain = "safety" if row["domain"].startswith("safety") else row["domain"]
        by_domain.setdefault(domain, []).append((row["chosen_scores"], row["rejected_scores"]))
    for domain, domain_rows in by_domain.items():
        expected = brute_force_rm_bench(domain_rows)
        got = report["domains"][domain]
        assert got["rows"] == len(domain_rows)
        for kind in ("easy", "normal", "hard"):
            assert got[kind] == pytest.approx(expected[kind])
        assert got["mean"] == pytest.approx(sum(expected.values()) / 3)
    for kind in ("easy", "normal", "hard", "mean"):
        assert report["overall"][kind] == pytest.approx(sum(d[kind] for d in report["domains"].values()) / 4)
    assert report["overall"]["rows"] == 15
    # The table (stdout is a pipe here: plain text) has a row per domain and the overall row.
    lines = rm_bench_run["stdout"].splitlines()
    overall = next(line for line in lines if line.startswith("overall")).split()
    assert overall == ["overall", "15", *(f"{100 * report['overall'][k]:.1f}" for k in ("easy", "normal", "hard",
                                                                                          "mean"))]


def test_every_score_is_the_scorers_own(rm_bench_run: dict[str, Any], reward_dir: Path) -> None:
    rows = rm_bench_run["rows"]
    scorer = open_scorer(ScorerConfig(model=str(reward_dir)))
    try:
        requests = [ScoreRequest(row["prompt"], text) for row in rows for text in row["chosen"] + row["rejected"]]
        expected = [result.score for result in scorer.score(requests)]
    finally:
        scorer.close()
    got = [score for row in rows for score in row["chosen_scores"] + row["rejected_scores"]]
    assert got == pytest.approx(expected, abs=1e-4)
    # -o keeps every input field.
    assert {"id", "prompt", "domain", "chosen", "rejected"} <= set(rows[0])


def test_extraction_modes_choose_the_assistant_turn(tmp_path: Path, reward_dir: Path) -> None:
    good, bad = "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n"
    two_blocks = PROSE.format(code=bad) + "\n```python\nprint(add(1, 2))\n```\n"
    rows = [{"prompt": "Write add(a, b).", "chosen": PROSE.format(code=good), "rejected": PROSE.format(code=bad)},
            {"prompt": "Write add(a, b).", "chosen": PROSE.format(code=good), "rejected": two_blocks},
            {"prompt": "Write add(a, b).", "chosen": "I cannot help with that.", "rejected": PROSE.format(code=bad)}]
    data = write_jsonl(tmp_path / "prose.jsonl", rows)
    scores = {}
    for mode in ("none", "syntax", "upstream"):
        out = tmp_path / f"{mode}.jsonl"
        result = invoke("eval-rm", str(data), "-r", str(reward_dir), "--extraction", mode, "-o", str(out))
        scores[mode] = [(r["chosen_scores"][0], r["rejected_scores"][0]) for r in parse_jsonl(out.read_text())]
        if mode != "none":
            assert "no valid code" in result.stdout
    scorer = open_scorer(ScorerConfig(model=str(reward_dir)))
    try:
        def score(code: str) -> float:
            return scorer.score([ScoreRequest("Write add(a, b).", code)])[0].score
        # none: the whole response is the assistant turn.
        assert scores["none"][0] == pytest.approx((score(rows[0]["chosen"]), score(rows[0]["rejected"])), abs=1e-4)
        # syntax: the code alone (as rank extracts it); with two blocks, the one defining add(); prose without
        # code is not scored.
        extracted = {text: extract_code(text, question="Write add(a, b).").code
                     for text in (rows[0]["chosen"], rows[0]["rejected"], two_blocks)}
        assert extracted[two_blocks] == extracted[rows[0]["rejected"]] == bad.strip()
        assert scores["syntax"][0] == pytest.approx((score(extracted[rows[0]["chosen"]]),
                                                     score(extracted[rows[0]["rejected"]])), abs=1e-4)
        assert scores["syntax"][1][1] == pytest.approx(score(extracted[two_blocks]), abs=1e-4)
        assert scores["syntax"][2][0] is None
        # upstream: exactly one fenced block, else nothing.
        assert scores["upstream"][0] == pytest.approx((score(good.strip()), score(bad.strip())), abs=1e-4)
        assert scores["upstream"][1][1] is None and scores["upstream"][2][0] is None
    finally:
        scorer.close()


def test_rewardbench_rows_are_reported_per_subset(tmp_path: Path, reward_dir: Path) -> None:
    rows = [{"prompt": f"Write f{i}.", "chosen": f"def f{i}():\n    return {i}\n", "chosen_model": "a",
             "rejected": f"def f{i}():\n    pass\n", "rejected_model": "b", "subset": subset, "id": i}
            for i, subset in enumerate(["hep-python"] * 3 + ["math-prm"] * 2)]
    data = write_jsonl(tmp_path / "rewardbench.jsonl", rows)
    result = invoke("eval-rm", str(data), "-r", str(reward_dir), "--json", "-", "-o", str(tmp_path / "out.jsonl"))
    report = json.loads(result.stdout)  # --json - replaces the table on stdout
    scored = parse_jsonl((tmp_path / "out.jsonl").read_text())
    assert report["format"] == "rewardbench" and list(report["subsets"]) == ["hep-python", "math-prm"]
    for subset, size in (("hep-python", 3), ("math-prm", 2)):
        mine = [r for r in scored if r["subset"] == subset]
        wins = sum(r["chosen_scores"][0] > r["rejected_scores"][0] for r in mine)
        assert report["subsets"][subset] == {"pairs": size, "accuracy": pytest.approx(wins / size)}
    assert report["overall"]["pairs"] == 5
    assert report["overall"]["accuracy"] == pytest.approx(
        sum(r["chosen_scores"][0] > r["rejected_scores"][0] for r in scored) / 5)


def test_the_cache_is_shared_with_rank(tmp_path: Path, reward_dir: Path) -> None:
    rows = [{"id": i, "split": "test", "question_content": f"Write g{i}.", "code_pos": f"def g{i}():\n    return 1\n",
             "code_neg": f"def g{i}():\n    return None\n"} for i in range(4)]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    cache = tmp_path / "cache"
    out = tmp_path / "scored.jsonl"
    invoke("eval-rm", str(data), "-r", str(reward_dir), "--cache", str(cache), "-o", str(out))
    scored = parse_jsonl(out.read_text())
    candidates = [{"id": row["id"], "question": row["question_content"], "code": code}
                  for row in rows for code in (row["code_pos"], row["code_neg"])]
    ranked = invoke("rank", str(write_jsonl(tmp_path / "candidates.jsonl", candidates)), "-r", str(reward_dir),
                    "--cache", str(cache), "--format", "jsonl")
    assert "cache: 8 hits, 0 misses (no model was loaded)" in ranked.stderr
    by_code = {(r["id"], r["code"]): r["score"] for r in parse_jsonl(ranked.stdout)}  # rank's tidied code
    for row in scored:
        assert by_code[(row["id"], row["code_pos"].strip())] == row["chosen_scores"][0]
        assert by_code[(row["id"], row["code_neg"].strip())] == row["rejected_scores"][0]


def test_split_and_standard_input(tmp_path: Path, reward_dir: Path) -> None:
    rows = [{"id": i, "split": "test" if i % 2 else "train", "question_content": f"Write h{i}.",
             "code_pos": f"def h{i}():\n    return {i}\n", "code_neg": f"def h{i}():\n    pass\n"} for i in range(6)]
    text = "".join(json.dumps(row) + "\n" for row in rows)
    result = invoke("eval-rm", "-", "-r", str(reward_dir), "--split", "test", "--json", "-", stdin=text)
    report = json.loads(result.stdout)
    assert report["split"] == "test" and report["rows"] == 3 and report["overall"]["pairs"] == 3


@pytest.mark.vllm
def test_vllm_scorer_gives_the_same_report(rm_bench_run: dict[str, Any], reward_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "vllm.json"
    invoke("eval-rm", str(rm_bench_run["data"]), "-r", str(reward_dir), "--scorer", "vllm", "--json", str(report))
    with_vllm = json.loads(report.read_text())
    for kind in ("easy", "normal", "hard", "mean"):
        assert with_vllm["overall"][kind] == pytest.approx(rm_bench_run["report"]["overall"][kind])


def test_reward_server_gives_the_same_scores(rm_bench_run: dict[str, Any], reward_dir: Path, tmp_path: Path) -> None:
    from serve_helpers import serving

    out = tmp_path / "remote.jsonl"
    with serving(reward_dir, log=tmp_path / "serve.log") as served:
        invoke("eval-rm", str(rm_bench_run["data"]), "-r", str(reward_dir), "--reward-url", served.url, "-o",
               str(out))
    remote = parse_jsonl(out.read_text())
    for mine, local in zip(remote, rm_bench_run["rows"]):
        assert mine["chosen_scores"] == pytest.approx(local["chosen_scores"], abs=1e-4)
        assert mine["rejected_scores"] == pytest.approx(local["rejected_scores"], abs=1e-4)
