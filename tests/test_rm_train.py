"""`codescaler train` with TRL's real RewardTrainer on a tiny model and synthetic pairs with a learnable difference:
held-out accuracy of at least 90%, a model directory that `rank -r DIR` loads and that scores there exactly as in
`eval-rm`, over-long pairs truncated as the scorer truncates (or skipped) and counted, never dropped silently,
progress on stderr only, LoRA merged on save, and an interrupted run that continues with --resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import parse_jsonl, write_jsonl
from rm_helpers import one_torch_thread, synthetic_pairs
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.rm.training import TrainConfig, TrainingProgress, train_reward_model

runner = CliRunner()
MAX_LENGTH = 256
LONG_QUESTIONS = 3
TRAIN_ARGS = ["--epochs", "1", "--lr", "1e-3", "--batch-size", "8", "--device", "cpu", "--max-length",
              str(MAX_LENGTH)]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def invoke(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.stderr
    return result


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = synthetic_pairs(train_problems=60, test_problems=20, long_questions=LONG_QUESTIONS)
    return write_jsonl(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", rows)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, pairs_file: Path, reward_dir: Path) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("train") / "tiny-rm"
    result = invoke("train", str(pairs_file), "-r", str(reward_dir), "-o", str(output), *TRAIN_ARGS)
    return {"dir": output, "stdout": result.stdout, "stderr": result.stderr,
            "report": json.loads((output / "codescaler-train.json").read_text())}


def test_training_reaches_90_percent_on_held_out_problems(trained: dict[str, Any], pairs_file: Path) -> None:
    report = trained["report"]
    assert report["data"]["train_pairs"] == 120 and report["data"]["test_pairs"] == 40
    assert report["data"]["train_problems"] == 60 and report["data"]["test_problems"] == 20
    final = report["history"][-1]
    assert final["epoch"] == 1.0 and final["test_accuracy"] >= 0.9, report["history"]
    assert report["steps"] == 15  # 120 pairs, 8 a step: every training pair was used (TRL dropped none)
    assert trained["stdout"] == ""  # progress and the summary go to stderr
    assert "epoch 1: test accuracy" in trained["stderr"]
    assert f"test accuracy {100 * final['test_accuracy']:.1f}% on 40 held-out pairs" in trained["stderr"]
    assert not (trained["dir"] / "checkpoints").exists()


def test_the_model_card_says_base_data_settings_and_results(trained: dict[str, Any], reward_dir: Path) -> None:
    card = (trained["dir"] / "README.md").read_text()
    assert card.startswith("---\nbase_model: ")
    assert str(reward_dir) in card
    assert "Training: 120 pairs from 60 problems" in card and "Test: 40 pairs from 20 problems" in card
    assert "| learning_rate | 0.001 |" in card and f"| max_length | {MAX_LENGTH} |" in card
    accuracy = trained["report"]["history"][-1]["test_accuracy"]
    assert f"| 1 | 15 | {100 * accuracy:.1f}% |" in card
    assert (trained["dir"] / "chat_template.jinja").exists() or "chat_template" in \
        (trained["dir"] / "tokenizer_config.json").read_text()


def test_over_long_pairs_are_truncated_as_the_scorer_truncates_and_counted(trained: dict[str, Any],
                                                                          pairs_file: Path, reward_dir: Path) -> None:
    from transformers import AutoTokenizer

    from codescaler_cli.scoring.texts import RewardTexts

    texts = RewardTexts(AutoTokenizer.from_pretrained(reward_dir), MAX_LENGTH)
    rows = parse_jsonl(pairs_file.read_text())
    over = sum(1 for row in rows if texts.tokenize(row["question_content"], row["code_pos"])[1]
               or texts.tokenize(row["question_content"], row["code_neg"])[1])
    assert over == 2 * LONG_QUESTIONS
    assert trained["report"]["data"]["truncated"] == over and trained["report"]["data"]["skipped"] == 0
    assert f"note: {over} pairs are longer than --max-length and were cut on the right" in trained["stderr"]


def test_the_trained_directory_ranks_and_scores_as_in_eval_rm(trained: dict[str, Any], pairs_file: Path,
                                                              tmp_path: Path) -> None:
    model = str(trained["dir"])
    scored_path, report_path = tmp_path / "scored.jsonl", tmp_path / "report.json"
    invoke("eval-rm", str(pairs_file), "-r", model, "--split", "test", "-o", str(scored_path), "--json",
           str(report_path))
    report = json.loads(report_path.read_text())
    final = trained["report"]["history"][-1]
    assert report["overall"]["pairs"] == 40
    assert report["overall"]["accuracy"] == pytest.approx(final["test_accuracy"]) and final["test_accuracy"] >= 0.9
    scored = parse_jsonl(scored_path.read_text())
    margins = [row["chosen_scores"][0] - row["rejected_scores"][0] for row in scored]
    assert sum(margins) / len(margins) == pytest.approx(final["test_margin"], abs=1e-3)
    # The same programs as candidates, ranked with the trained directory: the same scores.
    candidates = []
    for row in scored:
        for code, score in ((row["code_pos"], row["chosen_scores"][0]), (row["code_neg"], row["rejected_scores"][0])):
            candidates.append({"id": row["id"], "question": row["question_content"], "code": code, "expected": score})
    ranked = parse_jsonl(invoke("rank", str(write_jsonl(tmp_path / "candidates.jsonl", candidates)), "-r", model,
                                "--format", "jsonl").stdout)
    assert len(ranked) == len(candidates)
    for record in ranked:
        assert record["score"] == pytest.approx(record["expected"], abs=1e-4)


def test_the_base_model_is_worse_on_the_same_pairs(trained: dict[str, Any], pairs_file: Path, reward_dir: Path,
                                                   tmp_path: Path) -> None:
    report_path = tmp_path / "base.json"
    invoke("eval-rm", str(pairs_file), "-r", str(reward_dir), "--split", "test", "--json", str(report_path))
    base = json.loads(report_path.read_text())["overall"]["accuracy"]
    assert base < trained["report"]["history"][-1]["test_accuracy"] - 0.2


def test_skipping_over_long_pairs_is_counted(tmp_path: Path, reward_dir: Path) -> None:
    rows = synthetic_pairs(train_problems=6, test_problems=2, long_questions=LONG_QUESTIONS)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", rows)
    output = tmp_path / "rm"
    result = invoke("train", str(pairs), "-r", str(reward_dir), "-o", str(output), *TRAIN_ARGS, "--overlong", "skip")
    data = json.loads((output / "codescaler-train.json").read_text())["data"]
    assert data["skipped"] == 2 * LONG_QUESTIONS and data["truncated"] == 0
    assert data["train_pairs"] == 12 - 2 * LONG_QUESTIONS and data["test_pairs"] == 4
    assert f"{2 * LONG_QUESTIONS} pairs longer than --max-length were left out" in result.stderr


def test_lora_adapters_are_merged_into_the_saved_model(tmp_path: Path, reward_dir: Path) -> None:
    pairs_file = write_jsonl(tmp_path / "pairs.jsonl", synthetic_pairs(train_problems=20, test_problems=5))
    output = tmp_path / "lora-rm"
    invoke("train", str(pairs_file), "-r", str(reward_dir), "-o", str(output), *TRAIN_ARGS, "--lora",
           "--lora-rank", "8")
    report = json.loads((output / "codescaler-train.json").read_text())
    assert report["settings"]["lora"] is True and report["settings"]["lora_rank"] == 8
    assert not (output / "adapter_config.json").exists()  # a plain model directory, not an adapter
    # The merged model scores the test pairs as the adapter model did at the end of training.
    scored = tmp_path / "scored.jsonl"
    invoke("eval-rm", str(pairs_file), "-r", str(output), "--split", "test", "-o", str(scored))
    rows = parse_jsonl(scored.read_text())
    margin = sum(r["chosen_scores"][0] - r["rejected_scores"][0] for r in rows) / len(rows)
    final = report["history"][-1]
    assert margin == pytest.approx(final["test_margin"], abs=1e-3)
    assert abs(final["test_margin"]) > 0.1  # the adapters changed what the model prefers


class _InterruptAt(TrainingProgress):
    """Stops training (as Ctrl-C would) when a step ends."""

    def __init__(self, step: int) -> None:
        self.at = step

    def step(self, step: int) -> None:
        if step == self.at:
            raise KeyboardInterrupt


def test_an_interrupted_run_continues_with_resume(tmp_path: Path, reward_dir: Path) -> None:
    rows = synthetic_pairs(train_problems=12, test_problems=4)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", rows)
    output = tmp_path / "rm"
    args = ["-r", str(reward_dir), "-o", str(output), "--epochs", "2", "--lr", "1e-3", "--batch-size", "8",
            "--device", "cpu", "--save-steps", "2"]
    config = TrainConfig(base_model=str(reward_dir), output_dir=output, epochs=2, learning_rate=1e-3, batch_size=8,
                         device="cpu", save_steps=2)
    with pytest.raises(KeyboardInterrupt):
        train_reward_model(pairs, config, _InterruptAt(5))
    assert sorted(p.name for p in (output / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert not (output / "config.json").exists()

    refused = invoke("train", str(pairs), *args, code=2)
    assert "not an empty directory" in refused.stderr and "--resume" in refused.stderr
    changed = invoke("train", str(pairs), *args[:-2], "--save-steps", "2", "--resume", "--lr", "2e-3", code=2)
    assert "settings differ" in changed.stderr and "learning_rate" in changed.stderr

    resumed = invoke("train", str(pairs), *args, "--resume")
    assert "resuming at step 4 of 6" in resumed.stderr
    report = json.loads((output / "codescaler-train.json").read_text())
    assert report["resumed_from_step"] == 4 and report["steps"] == 6
    assert [entry["epoch"] for entry in report["history"]] == [1.0, 2.0]  # epoch 1 was measured before the break
    assert not (output / "checkpoints").exists()
    finished = invoke("train", str(pairs), *args, "--resume", code=2)
    assert "holds a finished model" in finished.stderr

    # The same run without a break ends at the same model.
    straight = tmp_path / "straight"
    invoke("train", str(pairs), *args[:3], str(straight), *args[4:])
    expected = json.loads((straight / "codescaler-train.json").read_text())["history"]
    assert report["history"][-1]["test_margin"] == pytest.approx(expected[-1]["test_margin"], abs=1e-4)


def test_a_run_stopped_before_its_first_checkpoint_starts_over(tmp_path: Path, reward_dir: Path) -> None:
    pairs = write_jsonl(tmp_path / "pairs.jsonl", synthetic_pairs(train_problems=4, test_problems=1))
    output = tmp_path / "rm"
    config = TrainConfig(base_model=str(reward_dir), output_dir=output, learning_rate=1e-3, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        train_reward_model(pairs, config, _InterruptAt(1))
    assert not any((output / "checkpoints").glob("checkpoint-*"))
    nothing = invoke("train", str(pairs), "-r", str(reward_dir), "-o", str(output), "--resume", code=2)
    assert "no checkpoint was saved there" in nothing.stderr
    invoke("train", str(pairs), "-r", str(reward_dir), "-o", str(output), "--lr", "1e-3", "--device", "cpu")
    assert (output / "model.safetensors").exists()


def test_a_chat_model_gets_a_new_reward_head(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    pairs = write_jsonl(tmp_path / "pairs.jsonl", synthetic_pairs(train_problems=4, test_problems=1))
    output = tmp_path / "rm"
    result = invoke("train", str(pairs), "-r", str(tiny_models["generator"]), "-o", str(output), "--lr", "1e-3",
                    "--device", "cpu")
    assert "is a Qwen3ForCausalLM: its reward head starts from random weights" in result.stderr
    assert "LOAD REPORT" not in result.stderr  # the note says it once
    saved = json.loads((output / "config.json").read_text())
    assert saved["architectures"] == ["Qwen3ForSequenceClassification"] and saved.get("num_labels", 1) == 1
    candidates = write_jsonl(tmp_path / "candidates.jsonl", [{"id": 1, "question": "Add.", "code": "x = 1\n"}])
    ranked = parse_jsonl(invoke("rank", str(candidates), "-r", str(output), "--format", "jsonl").stdout)
    assert isinstance(ranked[0]["score"], float)
