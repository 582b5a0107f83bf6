"""`--cache DIR`: a second rank of the same candidates loads no model and writes the same bytes; `cache info|clear`.

"No model loaded" is checked where it shows: in a fresh process, torch and transformers are never imported.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from helpers import parse_jsonl, write_jsonl
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.runs.cache import Cache, CachedScorer, cache_file, model_fingerprint
from codescaler_cli.scoring import ScoreRequest

runner = CliRunner()


def candidates(path: Path) -> Path:
    return write_jsonl(path, [{"id": p, "question": f"Problem {p}: double x.", "code": f"def f(x):\n    return 2 * x + {v}"}
                              for p in range(5) for v in range(3)]
                       + [{"id": 9, "question": "Problem 9", "response": "no code here"}])


def test_second_rank_hits_the_cache_loads_no_model_and_writes_the_same(reward_dir: Path, tmp_path: Path) -> None:
    path = candidates(tmp_path / "candidates.jsonl")
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "codescaler_cli", "rank", str(path), "-r", str(reward_dir), "--cache",
               str(cache_dir), "-f", "jsonl"]
    started = time.perf_counter()
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    first_seconds = time.perf_counter() - started
    assert first.returncode == 0, first.stderr
    assert "cache: 0 hits, 15 misses (the reward model was loaded)" in first.stderr
    # The second run, as a probe that reports which heavy modules it imported.
    probe = ("import runpy, sys\n"
             "sys.argv = ['codescaler', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('codescaler_cli', run_name='__main__')\n"
             "finally:\n    print('heavy modules:', ','.join(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules), "
             "file=sys.stderr)\n")
    started = time.perf_counter()
    second = subprocess.run([sys.executable, "-c", probe, *command[3:]], capture_output=True, text=True, env=env,
                            timeout=600)
    second_seconds = time.perf_counter() - started
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert "cache: 15 hits, 0 misses (no model was loaded)" in second.stderr
    assert "15 unique programs scored (15 from the cache)" in second.stderr
    assert second.stderr.splitlines()[-1] == "heavy modules: "  # none of torch, transformers, vllm imported
    assert second_seconds * 2 < first_seconds, (first_seconds, second_seconds)


def test_cached_scores_depend_on_model_max_length_and_exact_text(reward_dir: Path, tmp_path: Path) -> None:
    path = candidates(tmp_path / "candidates.jsonl")
    cache_dir = tmp_path / "cache"
    base = ["rank", str(path), "-r", str(reward_dir), "--cache", str(cache_dir), "-f", "jsonl", "-q"]
    plain = runner.invoke(app, base)
    assert plain.exit_code == 0, plain.stderr
    shorter = runner.invoke(app, [*base, "--max-length", "24"])
    assert shorter.exit_code == 0, shorter.stderr
    # Another --max-length is another score: the cut ones are recomputed (and flagged), not served stale.
    assert all(r["truncated"] for r in parse_jsonl(shorter.stdout) if r["valid"])
    cache = Cache(cache_dir)
    try:
        assert cache.info()["scores"] == 30
        # A comment changes the tokens the model reads, so it is another key (and another score).
        keyed = CachedScorer(None, cache, ["identity"])  # type: ignore[arg-type]
        assert keyed.key(ScoreRequest("q", "x = 1")) != keyed.key(ScoreRequest("q", "x = 1  # one"))
    finally:
        cache.close()
    assert model_fingerprint(str(reward_dir)).startswith("dir:")


def test_cache_info_and_clear(reward_dir: Path, tmp_path: Path) -> None:
    path = candidates(tmp_path / "candidates.jsonl")
    cache_dir = tmp_path / "cache"
    ranked = runner.invoke(app, ["rank", str(path), "-r", str(reward_dir), "-f", "jsonl", "-q"],
                           env={"CODESCALER_CACHE": str(cache_dir)})
    assert ranked.exit_code == 0, ranked.stderr
    info = runner.invoke(app, ["cache", "info", str(cache_dir), "--json"])
    assert info.exit_code == 0, info.stderr
    assert json.loads(info.stdout)["scores"] == 15
    human = runner.invoke(app, ["cache", "info"], env={"CODESCALER_CACHE": str(cache_dir)})
    assert "15 scores, 0 samples" in human.stdout
    cleared = runner.invoke(app, ["cache", "clear", str(cache_dir)])
    assert cleared.exit_code == 0 and "cleared 15 scores and 0 samples" in cleared.stderr
    assert json.loads(runner.invoke(app, ["cache", "info", str(cache_dir), "--json"]).stdout)["scores"] == 0
    missing = runner.invoke(app, ["cache", "info", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "holds no codescaler cache" in missing.stderr
    no_cache = runner.invoke(app, ["rank", str(path), "-r", str(reward_dir), "-f", "jsonl", "--no-cache"],
                             env={"CODESCALER_CACHE": str(cache_dir)})
    assert no_cache.exit_code == 0 and "cache:" not in no_cache.stderr


WRITER = """
import sys, time
from pathlib import Path
from codescaler_cli.runs.cache import Cache

directory, worker, workers, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
while not go.exists():
    time.sleep(0.002)
cache = Cache(directory)  # every process creates the tables and switches to WAL at the same moment
other = (worker + 1) % workers
for batch in range(20):
    cache.put_scores([(f"{worker}-{batch}-{i}".encode(), float(i), False) for i in range(50)])
    mine = f"{worker}-{batch}-7".encode()
    assert cache.get_scores([mine]) == {mine: (7.0, False)}
    cache.get_scores([f"{other}-{b}-{i}".encode() for b in range(20) for i in range(50)])  # reads while others write
cache.close()
"""


def test_concurrent_runs_share_one_cache(tmp_path: Path) -> None:
    """Four processes open one new cache at once, then write and read it together: WAL and the busy timeout
    serialise them, and no write is lost."""
    directory, go, workers = tmp_path / "cache", tmp_path / "go", 4
    processes = [subprocess.Popen([sys.executable, "-c", WRITER, str(directory), str(worker), str(workers), str(go)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for worker in range(workers)]
    time.sleep(0.5)  # every process is waiting (importing takes a moment); a late one still meets the others' writes
    go.touch()
    outcomes = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * workers, [err for _, err in outcomes]
    with sqlite3.connect(cache_file(directory)) as db:
        assert db.execute("SELECT count(*) FROM scores").fetchone()[0] == workers * 20 * 50
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_scores_from_servers_are_keyed_by_the_servers(reward_dir: Path) -> None:
    from codescaler_cli.runs.cache import scorer_identity
    from codescaler_cli.scoring import ScorerConfig

    def identity(*urls: str) -> list[object]:
        return scorer_identity(ScorerConfig(model=str(reward_dir), urls=list(urls)))

    local = identity()
    one = identity("http://a:8001", "http://b:8001/v1")
    same = identity("http://b:8001", "http://a:8001/v1/")
    other = identity("http://c:8001")
    assert one == same and one != other and one != local


OPENER = """
import fcntl, sys
from pathlib import Path
from codescaler_cli.runs.cache import Cache

root, worker, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for number in range(rounds):
    print(f"ready {number}", flush=True)
    with open(root / f"go-{number}", "rb") as gate:
        fcntl.flock(gate, fcntl.LOCK_SH)  # released for every process at once: they all open the new cache together
    with Cache(root / f"cache-{number}") as cache:
        key = f"{worker}".encode()
        cache.put_scores([(key, float(worker), False)])
        assert cache.get_scores([key]) == {key: (float(worker), False)}
"""


def test_a_new_cache_opened_by_eight_processes_at_once_never_fails(tmp_path: Path) -> None:
    """SQLite answers SQLITE_BUSY to a switch into WAL mode that races another, without waiting: eight processes
    opening one new cache at the same instant, twenty times over, must all succeed (each round a new cache)."""
    import fcntl

    workers, rounds = 8, 20
    gates = []
    for number in range(rounds):
        gate = open(tmp_path / f"go-{number}", "wb")
        fcntl.flock(gate, fcntl.LOCK_EX)  # held until every process waits on it
        gates.append(gate)
    processes = [subprocess.Popen([sys.executable, "-c", OPENER, str(tmp_path), str(worker), str(rounds)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for worker in range(workers)]
    try:
        for number in range(rounds):
            for process in processes:
                assert process.stdout is not None
                line = process.stdout.readline()
                assert line == f"ready {number}\n", process.communicate(timeout=60)[1]
            fcntl.flock(gates[number], fcntl.LOCK_UN)
        outcomes = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
        for gate in gates:
            gate.close()
    assert [process.returncode for process in processes] == [0] * workers, [err for _, err in outcomes]
    for number in range(rounds):
        with sqlite3.connect(cache_file(tmp_path / f"cache-{number}")) as db:
            assert db.execute("SELECT count(*) FROM scores").fetchone()[0] == workers
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
