"""One model-kind check on every path: a generator passed as the reward model, or a reward model as the generator,
is named with "swap -m and -r" by every command and backend, from the model's config, before any engine starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import EXAMPLES

from codescaler_cli.backends.loading import ARCHITECTURE, GENERATOR, NOT_FOUND, REWARD, check_model
from codescaler_cli.errors import ModelLoadError

ROOT = Path(__file__).parent.parent

# Each path, run in one fresh process (CliRunner), reports its exit status, its error, and whether an engine's
# library had been imported by then: the check must come first.
PROBE = """
import json, sys
from typer.testing import CliRunner
from codescaler_cli.cli import app
cases = json.loads(sys.argv[1])
for name, args in cases:
    result = CliRunner().invoke(app, args)
    print(json.dumps({"name": name, "status": result.exit_code, "stderr": result.stderr,
                      "vllm": "vllm" in sys.modules}))
"""


def test_wrong_kinds_are_named_on_every_path_before_any_engine(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    reward, coder = str(tiny_models["reward"]), str(tiny_models["coder"])
    candidates, problems = str(EXAMPLES / "candidates.jsonl"), str(EXAMPLES / "eval_problems.jsonl")
    cases = [
        ("rank -r generator (transformers)", ["rank", candidates, "-r", coder]),
        ("rank --scorer vllm -r generator", ["rank", candidates, "--scorer", "vllm", "-r", coder]),
        ("generate -m reward model", ["generate", "Write add(a, b)", "-m", reward, "-r", reward, "-n", "2"]),
        ("generate -r generator", ["generate", "Write add(a, b)", "-m", coder, "-r", coder, "-n", "2"]),
        ("eval -m reward model", ["eval", "--problems", problems, "-m", reward, "-r", reward, "-n", "2"]),
        ("serve -m reward model", ["serve", "-r", reward, "-m", reward, "--port", "0"]),
        ("serve -r generator", ["serve", "-r", coder, "--port", "0"]),
    ]
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(cases)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["name"] for r in results] == [name for name, _ in cases]
    for result in results:
        where = f"{result['name']}: {result['stderr']}"
        assert result["status"] == 1, where
        error, hint = result["stderr"].strip().splitlines()[-2:]
        expected = "is a generator (Qwen3ForCausalLM), not a sequence-classification reward model" \
            if "generator" in result["name"] else "is a reward model (Qwen3ForSequenceClassification), not a generator"
        assert error.startswith("error: '") and expected in error, where
        assert hint.startswith("hint: swap -m and -r"), where
        assert "internal error" not in result["stderr"] and "Traceback" not in result["stderr"], where
        assert not result["vllm"], f"{result['name']}: vLLM was imported before the check"


def test_the_check_reads_local_directories_and_the_hub_cache(tmp_path: Path, tiny_models: dict[str, Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    check_model(str(tiny_models["reward"]), None, REWARD)
    check_model(str(tiny_models["coder"]), None, GENERATOR)
    # A hub id is read from the local Hugging Face cache, as a download would have laid it out.
    from hub_fixtures import put_in_hub_cache

    config = (tiny_models["coder"] / "config.json").read_bytes()
    put_in_hub_cache(tmp_path / "hf", "someone/tiny-coder", "0" * 40, {"config.json": config}, repo_type="model")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    check_model("someone/tiny-coder", None, GENERATOR)
    with pytest.raises(ModelLoadError) as caught:
        check_model("someone/tiny-coder", None, REWARD)
    assert caught.value.cause_class == ARCHITECTURE and "swap -m and -r" in (caught.value.hint or "")
    # Not cached, offline: the load error a load would give, at once.
    with pytest.raises(ModelLoadError) as caught:
        check_model("someone/not-cached", None, REWARD)
    assert caught.value.cause_class == NOT_FOUND and "not in the local Hugging Face cache" in caught.value.message


def test_a_reward_model_with_several_labels_is_refused(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    model = tmp_path / "three-labels"
    model.mkdir()
    config = json.loads((tiny_models["reward"] / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b", "2": "c"}
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError) as caught:
        check_model(str(model), None, REWARD)
    assert "has 3 labels, expected 1" in caught.value.message
