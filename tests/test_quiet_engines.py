"""vLLM on CPU out of the box: the engine's memory is sized for what the machine can give, and vLLM's own bars and
logs stay off while codescaler's progress callback still counts every sample.

Every engine runs in its own subprocess: in-process engines share global state, and vLLM writes its bars and C++
warnings straight to file descriptor 2, which only a subprocess's captured stderr sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


from codescaler_cli.backends.vllm import GiB, plan_cpu_memory  # noqa: E402

pytestmark = pytest.mark.vllm
ROOT = Path(__file__).parent.parent
# vLLM's own progress bars and logs: none of them may reach the user's terminal unless asked for.
VLLM_NOISE = ("Loading safetensors checkpoint shards", "Processed prompts", "Rendering prompts", "Adding requests",
              "Triton", "NUMA binding", "INFO", "WARNING", "it/s]")
PROBLEMS, N = 3, 4

CHILD = """
import json, sys
from codescaler_cli.errors import ModelLoadError
from codescaler_cli.generation import Problem, SamplingSettings
from codescaler_cli.generation.problems import sample_candidates
from codescaler_cli.generation.vllm_engine import VllmGenerator

if __name__ == "__main__":
    model, share, problems, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    held = b""
    if len(sys.argv) > 5:
        # Hold memory (written, so it is really taken) until less than 0.9 of RAM is free, as when other
        # programs run: measured here, right before the engine starts, since free memory keeps changing.
        from codescaler_cli.backends.vllm import import_vllm, memory_status
        import_vllm()  # first, as the engine does: it sets up quiet logging before torch is imported
        total, available = memory_status()
        held = bytearray(b"x") * max(0, int(available - 0.9 * total + float(sys.argv[5])))
    try:
        generator = VllmGenerator(model, max_model_len=512, gpu_memory_utilization=share)
    except ModelLoadError as error:
        print(json.dumps({"error": error.message, "hint": error.hint, "cause_class": error.cause_class}))
        sys.exit(1)
    class Progress(list):  # counts samples, and tokens as codescaler's progress bar does
        tokens = 0

        def __call__(self, n):
            self.append(n)

        def add_tokens(self, k):
            self.tokens += k

    advanced = Progress()
    candidates = sample_candidates([Problem(id=i, question="Write add(a, b)") for i in range(problems)], generator,
                                   SamplingSettings(n=n, max_tokens=48), seed=0, progress=advanced)
    print(json.dumps({"progress": advanced, "tokens": advanced.tokens, "samples": len(candidates),
                      "errors": [c.error for c in candidates if c.error],
                      "completion_tokens": generator.stats.completion_tokens,
                      "kv_cache_bytes": generator.llm.llm_engine.vllm_config.cache_config.kv_cache_memory_bytes}))
    generator.close()
"""


def _run(model: Path, share: float | None, hold_margin: int | None = None,
         **env: str) -> tuple[int, dict[str, Any], str, str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    environment.pop("VLLM_CPU_KVCACHE_SPACE", None)  # conftest sets it; a first-time user has not
    environment.pop("VLLM_LOGGING_LEVEL", None)
    environment.pop("TORCH_CPP_LOG_LEVEL", None)
    done = subprocess.run([sys.executable, "-c", CHILD, str(model), json.dumps(share), str(PROBLEMS), str(N),
                           *([str(hold_margin)] if hold_margin is not None else [])],
                          env=environment, capture_output=True, text=True, timeout=600)
    lines = done.stdout.strip().splitlines()
    return done.returncode, json.loads(lines[-1]) if lines else {}, done.stderr, done.stdout


def test_default_memory_share_starts_where_0_9_does_not(coder_dir: Path) -> None:
    # Memory held until 0.9 of RAM is not free (the first-run failure): vLLM's default share cannot start...
    status, failed, stderr, _ = _run(coder_dir, 0.9, hold_margin=GiB)
    assert status == 1 and failed.get("cause_class") == "memory", (failed, stderr[-2000:])
    assert "less than desired CPU memory utilization" in failed["error"]
    assert "--gpu-memory-utilization" in failed["hint"] and "leave the option unset" in failed["hint"]
    assert "Traceback" not in stderr
    # ...and codescaler's default, under the same pressure, does.
    status, ran, stderr, stdout = _run(coder_dir, None, hold_margin=GiB)
    assert status == 0, stderr[-3000:]
    assert ran["samples"] == PROBLEMS * N and not ran["errors"]
    assert ran["kv_cache_bytes"] == GiB  # the default plan: a 1 GiB KV cache, not a share of all RAM
    # One progress display: the callback reached N x problems, vLLM printed nothing at all.
    assert sum(ran["progress"]) == PROBLEMS * N and all(step > 0 for step in ran["progress"])
    assert ran["completion_tokens"] > 0
    assert ran["tokens"] == ran["completion_tokens"]  # relayed from vLLM's loop as requests finish, for tokens/s
    assert not [noise for noise in VLLM_NOISE if noise in stderr], stderr[-3000:]
    assert stderr.strip() == "" and len(stdout.strip().splitlines()) == 1, stderr[-3000:] + stdout[-3000:]


def test_debug_brings_vllm_bars_and_logs_back(coder_dir: Path) -> None:
    status, ran, stderr, stdout = _run(coder_dir, None, CODESCALER_DEBUG="1")
    assert status == 0, stderr[-3000:]
    assert "Loading safetensors checkpoint shards" in stderr and "INFO" in stderr
    assert "INFO" not in stdout  # vLLM logs to stdout by default; codescaler's stdout is for data
    assert sum(ran["progress"]) == PROBLEMS * N


def test_cpu_plan_follows_the_environment_and_the_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        coder_dir: Path) -> None:
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    plan = plan_cpu_memory(str(coder_dir), revision=None, dtype="auto", max_model_len=None,
                           gpu_memory_utilization=None)
    assert plan.kv_cache_bytes == GiB and plan.gpu_memory_utilization <= 0.9
    # The user's choices win: a share given on the command line, or VLLM_CPU_KVCACHE_SPACE (which vLLM reads).
    assert plan_cpu_memory(str(coder_dir), revision=None, dtype="auto", max_model_len=None,
                           gpu_memory_utilization=0.5).kv_cache_bytes is None
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    assert plan_cpu_memory(str(coder_dir), revision=None, dtype="auto", max_model_len=None,
                           gpu_memory_utilization=None).kv_cache_bytes is None
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE")
    # A big model's full context does not fit in 1 GiB: the cache grows to one full sequence, within the free memory.
    big = tmp_path / "big"
    big.mkdir()
    (big / "config.json").write_text(json.dumps({
        "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "hidden_size": 4096, "num_attention_heads": 32,
        "num_key_value_heads": 8, "head_dim": 128, "num_hidden_layers": 36, "max_position_embeddings": 40960,
        "vocab_size": 151936, "intermediate_size": 12288}))
    per_token = 2 * 36 * 8 * 128 * 2  # keys and values, bfloat16
    from codescaler_cli.backends import vllm as vllm_support

    for available, expected in ((8 * GiB, per_token * 8192), (2 * GiB, GiB)):  # ...or half the free memory
        monkeypatch.setattr(vllm_support, "memory_status", lambda: (16 * GiB, available))
        plan = plan_cpu_memory(str(big), revision=None, dtype="bfloat16", max_model_len=8192,
                               gpu_memory_utilization=None)
        assert plan.kv_cache_bytes == expected


CLI_UNDER_MEMORY_PRESSURE = """
import sys
from codescaler_cli.backends.vllm import import_vllm, memory_status

if __name__ == "__main__":
    import_vllm()
    total, available = memory_status()
    held = bytearray(b"x") * max(0, int(available - 0.9 * total + 2 ** 30))  # others hold memory
    from codescaler_cli.cli import main
    sys.argv = ["codescaler", *sys.argv[1:]]
    main()
"""


def test_cli_names_the_option_that_fixes_the_cpu_memory_failure(coder_dir: Path, reward_dir: Path,
                                                                 tmp_path: Path) -> None:
    # The first-run report: `codescaler generate ... -m models/tiny/generator -r models/tiny/reward` on a machine
    # where less than 0.9 of the RAM was free failed with a hint about downloads. vLLM's 0.9, asked for explicitly.
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    environment.pop("VLLM_CPU_KVCACHE_SPACE", None)
    done = subprocess.run([sys.executable, "-c", CLI_UNDER_MEMORY_PRESSURE, "generate", "Write add(a, b)",
                           "-m", str(coder_dir), "-r", str(reward_dir), "--n", "2", "--max-tokens", "16",
                           "--gpu-memory-utilization", "0.9"],
                          env=environment, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == "", done.stderr[-3000:]
    error, hint = done.stderr.strip().splitlines()[-2:]
    assert error.startswith("error: cannot load generator model") and "less than desired CPU memory" in error
    assert hint.startswith("hint: on CPU, --gpu-memory-utilization is the share") and "unset" in hint
    assert "Traceback" not in done.stderr
