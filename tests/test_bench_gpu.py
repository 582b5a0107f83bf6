"""bench/bench_gpu.py's CPU smoke run: every row of the GPU table is printed with numbers, and its checks hold.

The script measures the GPU path (speed, bf16 fidelity, out-of-memory halving, serve's batching) on a device
machine; `--device cpu --tiny` runs the same code paths on tiny models, so the script cannot rot between GPU runs.
The run is a real one (real tiny models, the library's scorer and batcher), started as the docs say to start it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "bench_gpu.py"
MODELS = ("4B", "1.7B")
SPEED = ("(a) card recipe", "(b) codescaler rank", "(c) rank, --max-batch-tokens", "(d) rank, flex attention",
         "(e) packed, position ids", "(f) packed + shared prefix (SDPA", "(g) packed + shared prefix (flex")
FIDELITY = ("bf16 vs float32", "alone vs in batch", "variants vs (b), float32")
OTHERS = ("OOM halving under a memory cap", "serve: dynamic batching", "serve: one request at a time")
NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:e-?\d+)?"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    results = tmp_path_factory.mktemp("bench-gpu") / "results.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--json", str(results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout, json.loads(results.read_text(encoding="utf-8"))


def table_row(stdout: str, model: str, label: str) -> list[str]:
    """The cells of the one table line of `model` whose row name starts with `label` (cells: 2+ spaces apart)."""
    lines = [line for line in stdout.splitlines() if re.match(rf"{re.escape(model)}\s+{re.escape(label)}", line)]
    assert len(lines) == 1, f"{model} / {label}: {len(lines)} lines in\n{stdout}"
    cells = re.split(r"\s{2,}", lines[0].strip(), maxsplit=7)
    assert len(cells) == 8, lines[0]
    return cells


def test_every_row_is_printed_with_numbers(smoke: tuple[str, dict[str, Any]]) -> None:
    stdout, _ = smoke
    assert "failed" not in stdout and "skipped" not in stdout, stdout
    ceiling = table_row(stdout, "-", "matmul ceiling")
    assert float(ceiling[5]) > 0
    for model in MODELS:
        for label in SPEED + OTHERS:
            _, _, wall, per_second, run, tflops, share, result = table_row(stdout, model, label)
            assert float(wall) > 0 and float(per_second.replace(",", "")) > 0 and int(run.replace(",", "")) > 0
            assert float(tflops) > 0 and float(share) > 0
            assert re.search(NUMBER, result), result
        for label in FIDELITY:
            _, _, wall, *_, result = table_row(stdout, model, label)
            assert float(wall) > 0
            assert re.search(rf"max\|d\| (?:\([a-g]\) )?{NUMBER}", result), result
        for label in FIDELITY[:2]:
            assert re.search(r"top-1 changed \d+/\d+", table_row(stdout, model, label)[7])


def test_the_checks_behind_the_rows_hold(smoke: tuple[str, dict[str, Any]]) -> None:
    _, results = smoke
    rows = {(row["model"], row["key"]): row for row in results["rows"]}
    assert results["machine"]["vllm_imported"] is False
    for model in MODELS:
        assert all(rows[model, key]["status"] == "ok" for key in "abcdefg")
        # Every variant scores what rank's scorer scores: in float32 the packing and attention variants are exact.
        exact = rows[model, "exact"]["values"]["max_abs_diff"]
        assert set(exact) == {"d", "e", "f", "g"} and max(exact.values()) < 1e-4, exact
        for key in "cdefg":
            assert rows[model, key]["values"]["max_abs_diff_vs_b"] < 1e-4
        assert all(0 < rows[model, key]["values"]["busy_share"] <= 1 for key in "abcdefg")
        assert rows[model, "a"]["tokens_run"] > rows[model, "b"]["tokens_run"]  # dedup and the shared prefix save
        # The fault injection forced out-of-memory errors, and halving still produced every score.
        oom = rows[model, "oom"]["values"]
        assert oom["ooms"] > 0 and oom["every_score_produced"] and oom["scored"] == oom["valid"] > 0
        assert oom["cap"] < oom["full_run_peak"]
        batched, single = rows[model, "serve_batched"]["values"], rows[model, "serve_single"]["values"]
        assert batched["unscored"] == single["unscored"] == 0
        assert batched["candidates"] == single["candidates"] > 0
        assert single["requests_per_batch"] == 1.0
        assert rows[model, "alone_vs_batch"]["values"]["max_abs_diff"] < 1e-4  # float32 on CPU


def test_serve_constants_match_serve_defaults() -> None:
    """The serve rows use `codescaler serve`'s batching defaults (the device machine cannot import the server)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_gpu
    finally:
        sys.path.remove(str(ROOT / "bench"))
    from codescaler_cli import ScorerConfig
    from codescaler_cli.serving.server import ServeConfig

    config = ServeConfig()
    assert (bench_gpu.SERVE_BATCH_WAIT_MS, bench_gpu.SERVE_MAX_BATCH_REQUESTS, bench_gpu.SERVE_REUSE_PREFIX) == (
        config.batch_wait_ms, config.max_batch_requests, config.reuse_prefix)
    assert bench_gpu.RANK_BUDGET == config.scorer.max_batch_tokens == ScorerConfig().max_batch_tokens
    assert bench_gpu.MAX_LENGTH == config.scorer.max_length
