"""Model-load failures get a cause and a hint that match what went wrong, produced with real transformers, vLLM and
huggingface_hub on damaged copies of the tiny models (and, for gated models, a local stand-in for the hub)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codescaler_cli.backends.loading import (ARCHITECTURE, CORRUPT, GATED, MEMORY, NO_NETWORK, NOT_FOUND, VERSION,
                                             load_error)
from codescaler_cli.cli import app
from codescaler_cli.errors import ModelLoadError
from codescaler_cli.scoring.transformers_backend import TransformersScorer

ROOT = Path(__file__).parent.parent
runner = CliRunner()


def _copy(model: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(model, target)
    return target


def _edit_config(model: Path, **changes: object) -> None:
    path = model / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(changes)
    path.write_text(json.dumps(config), encoding="utf-8")


def _load_failure(model: str) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as caught:
        TransformersScorer(model)
    return caught.value


def test_missing_directory_is_not_found(tmp_path: Path) -> None:
    # The second: relative, no ./ in front (and not models/tiny/..., which `make tiny-models` may have built).
    for model in (str(tmp_path / "nowhere"), "models/no-such-model/generator"):
        error = _load_failure(model)
        assert error.cause_class == NOT_FOUND, error.message
        assert error.message.endswith("no such directory") and "check the path" in (error.hint or "")


def test_directory_without_config_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    error = _load_failure(str(tmp_path / "empty"))
    assert error.cause_class == NOT_FOUND and "no config.json" in error.message


def test_uncached_hub_id_offline_names_hf_hub_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    error = _load_failure("nobody-here/no-such-reward-model")
    assert error.cause_class == NOT_FOUND, error.message
    assert "not in the local Hugging Face cache" in error.message
    assert "HF_HUB_OFFLINE" in (error.hint or "") and "hf download nobody-here/no-such-reward-model" in error.hint


def test_truncated_weights_are_corrupt(reward_dir: Path, tmp_path: Path) -> None:
    model = _copy(reward_dir, tmp_path, "truncated")
    weights = model / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    error = _load_failure(str(model))
    assert error.cause_class == CORRUPT, error.message
    assert "damaged or incomplete" in (error.hint or "") and "copy the directory again" in error.hint


def test_broken_config_json_is_corrupt(reward_dir: Path, tmp_path: Path) -> None:
    model = _copy(reward_dir, tmp_path, "halfconfig")
    text = (model / "config.json").read_text(encoding="utf-8")
    (model / "config.json").write_text(text[: len(text) // 2], encoding="utf-8")
    assert _load_failure(str(model)).cause_class == CORRUPT


def test_unknown_model_type_from_a_newer_transformers_is_a_version_problem(reward_dir: Path, tmp_path: Path) -> None:
    model = _copy(reward_dir, tmp_path, "future")
    _edit_config(model, model_type="qwen9", transformers_version="9.1.0")
    error = _load_failure(str(model))
    assert error.cause_class == VERSION, error.message
    assert "saved with transformers 9.1.0" in (error.hint or "") and "pip install -U transformers" in error.hint


def test_wrong_kind_of_model_for_transformers(reward_dir: Path, tmp_path: Path) -> None:
    # A vision config: transformers knows it, but it has no sequence-classification head.
    model = tmp_path / "vision"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "sam", "architectures": ["SamModel"]}))
    with pytest.raises(ModelLoadError) as caught:
        from transformers import AutoModelForSequenceClassification

        try:
            AutoModelForSequenceClassification.from_pretrained(str(model))
        except Exception as exc:
            raise load_error("reward model", str(model), exc) from exc
    assert caught.value.cause_class == ARCHITECTURE, caught.value.message
    assert "-r" in (caught.value.hint or "")


def test_cli_exit_1_one_line_cause_and_the_matching_hint(reward_dir: Path, tmp_path: Path) -> None:
    model = _copy(reward_dir, tmp_path, "cli-truncated")
    os.truncate(model / "model.safetensors", 100)
    result = runner.invoke(app, ["rank", "-r", str(model), "-q"],
                           input=json.dumps({"question": "q", "code": "x = 1"}) + "\n")
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-2].startswith("error: cannot load reward model") and lines[-1].startswith("hint: the model files")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_gated_model_from_the_hub(tmp_path: Path) -> None:
    # A stand-in for the hub on localhost answers like huggingface.co does for a gated repo (401 with
    # X-Error-Code: GatedRepo); the real huggingface_hub client and transformers do the rest. A subprocess, since
    # huggingface_hub reads HF_ENDPOINT when it is imported.
    script = textwrap.dedent("""
        import os, threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        class Hub(BaseHTTPRequestHandler):
            def _reply(self):
                self.send_response(401)
                self.send_header("X-Error-Code", "GatedRepo")
                self.send_header("X-Error-Message", "Access to model owner/gated is restricted.")
                self.send_header("Content-Length", "0")
                self.end_headers()
            do_GET = do_HEAD = _reply
            def log_message(self, *args):
                pass

        server = HTTPServer(("127.0.0.1", 0), Hub)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{server.server_port}"
        from codescaler_cli.errors import ModelLoadError
        from codescaler_cli.scoring.transformers_backend import TransformersScorer
        try:
            TransformersScorer("owner/gated")
        except ModelLoadError as error:
            print(error.cause_class)
            print(error.hint)
    """)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_OFFLINE", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    cause_class, hint = (done.stdout.splitlines() + ["", ""])[:2]
    assert cause_class == GATED, done.stdout + done.stderr
    assert "hf auth login" in hint and "owner/gated" in hint


def test_unreachable_hub_is_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    # A real refused connection under the exception huggingface_hub raises for it. (End to end the hub client
    # retries a refused connection for ~25 s before giving up, too slow for the suite; the chain is the same.)
    import httpx
    from huggingface_hub.errors import LocalEntryNotFoundError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    try:
        try:
            httpx.get("http://127.0.0.1:9/owner/model/resolve/main/config.json", timeout=5)
        except httpx.ConnectError as refused:
            raise LocalEntryNotFoundError("cannot find the requested files in the local cache") from refused
    except LocalEntryNotFoundError as exc:
        failure: BaseException = exc
    error = load_error("reward model", "owner/model", failure)
    assert error.cause_class == NO_NETWORK and "HTTPS_PROXY" in (error.hint or "")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # downloads switched off: the model may exist, it is just not here
    assert load_error("reward model", "owner/model", failure).cause_class == NOT_FOUND


def test_out_of_memory_from_torch_names_the_batch_option() -> None:
    import torch

    error = load_error("reward model", "owner/model", torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert error.cause_class == MEMORY and "--max-batch-tokens" in (error.hint or "")


@pytest.mark.vllm
def test_architecture_vllm_cannot_run(reward_dir: Path, tmp_path: Path) -> None:
    # Fails while vLLM checks the config, before any engine state exists: safe in-process.
    pytest.importorskip("vllm")
    from codescaler_cli.scoring.vllm_backend import VllmScorer

    model = _copy(reward_dir, tmp_path, "unknown-arch")
    _edit_config(model, architectures=["FrobnicatorForSequenceClassification"])
    with pytest.raises(ModelLoadError) as caught:
        VllmScorer(str(model))
    error = caught.value
    assert error.cause_class == ARCHITECTURE, error.message
    assert "FrobnicatorForSequenceClassification" in error.message and "Supported architectures" not in error.message
    assert "--scorer transformers" in (error.hint or "") and len(error.message) < 300


def test_the_failure_raised_wins_over_misses_handled_on_the_way(reward_dir: Path) -> None:
    # vLLM looks optional files up on the hub and swallows the misses; an error raised later carries such a miss
    # in __context__. The message is the one a user got from `codescaler generate` on a busy 9 GiB machine.
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        try:
            raise LocalEntryNotFoundError("cannot find the requested files in the local cache")
        except LocalEntryNotFoundError:
            raise ValueError("Available memory on node 0 (6.55/8.96 GiB) on startup is less than desired CPU memory "
                             "utilization (0.9, 8.07 GiB). On the CPU backend, the `--gpu-memory-utilization` flag "
                             "controls the fraction of CPU memory reserved (despite its name).")
    except ValueError as exc:
        assert isinstance(exc.__context__, LocalEntryNotFoundError)
        error = load_error("generator model (vLLM)", str(reward_dir), exc)
    assert error.cause_class == MEMORY, error.message
    assert error.message.endswith("is less than desired CPU memory utilization (0.9, 8.07 GiB).")
    assert "--gpu-memory-utilization" in (error.hint or "") and "download" not in error.hint
