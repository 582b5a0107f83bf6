"""The model card (README.md) `codescaler train` writes into the model directory: base model, data, settings and
results, with Hugging Face's metadata header so the hub shows it as a reward model of its base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .training import TrainResult


def model_card(result: TrainResult) -> str:
    settings, data = result.settings, result.data
    name = Path(result.output_dir).name or result.output_dir
    base = settings["base_model"]
    lines = [
        "---",
        f"base_model: {json.dumps(base)}",
        "library_name: transformers",
        "pipeline_tag: text-classification",
        "tags:",
        "- reward-model",
        "- codescaler",
        "- trl",
        "---",
        "",
        f"# {name}",
        "",
        f"A reward model for code, fine-tuned from `{base}` with the Bradley-Terry loss "
        "(−log σ(r_chosen − r_rejected)) by `codescaler train`, using TRL's RewardTrainer"
        + (" with LoRA adapters, merged into the weights" if settings["lora"] else "") + ".",
        "",
        "It scores a (question, code) pair: the chat [user: the question, assistant: the code alone] rendered with "
        "this directory's chat template; the score is the raw logit of the single label. Use it as any reward model:",
        "",
        "```bash",
        f"codescaler rank candidates.jsonl -r {result.output_dir}",
        f"codescaler eval-rm pairs.jsonl -r {result.output_dir} --split test",
        "```",
        "",
        "## Data",
        "",
        f"- File: `{data['source']}` ({data['format']} rows, sha256 of the texts `{data['sha256'][:16]}…`)",
        f"- Training: {data['train_pairs']} pairs" + _problems(data["train_problems"]),
        f"- Test: {data['test_pairs']} pairs" + _problems(data["test_problems"])
        + (" (held-out problems: no problem is on both sides)" if data["test_pairs"] else ""),
        f"- Longer than {settings['max_length']} tokens: {data['truncated']} pairs truncated on the right (as the "
        f"scorer truncates), {data['skipped']} left out",
    ]
    if data["identical"]:
        lines.append(f"- {data['identical']} pairs have identical token ids on both sides (they teach nothing)")
    lines += ["", "## Settings", "", "| setting | value |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in settings.items()]
    lines += [f"| device | {result.device} ({result.precision}) |", f"| optimizer steps | {result.steps} |",
              f"| training seconds | {result.seconds} |"]
    if result.resumed_from_step is not None:
        lines.append(f"| resumed from step | {result.resumed_from_step} |")
    lines += ["", "## Results", ""]
    if result.train_loss is not None:
        lines.append(f"Mean training loss: {result.train_loss:.4f}.")
        lines.append("")
    if result.history:
        lines += ["Pairwise accuracy on the test split (a strict win: the passing program scores higher) after each "
                  "epoch:", "", "| epoch | step | test accuracy | test loss | mean margin |", "| --- | --- | --- | "
                  "--- | --- |"]
        lines += [f"| {entry['epoch']:g} | {entry['step']:g} | {100 * entry['test_accuracy']:.1f}% | "
                  f"{entry['test_loss']:.4f} | {entry['test_margin']:.3f} |" for entry in result.history]
    else:
        lines.append("No test split: no held-out accuracy was measured.")
    lines.append("")
    return "\n".join(lines)


def _problems(count: int) -> str:
    return f" from {count} problems" if count else ""
