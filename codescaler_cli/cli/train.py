"""`codescaler train`: Bradley-Terry training of a reward model on preference pairs, with TRL's RewardTrainer."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..rm.training import CHECKPOINTS, TrainConfig, train_reward_model
from ..scoring.base import DEFAULT_MAX_LENGTH
from ._errors import handle_errors, set_interrupt_hint
from ._options import OUTPUT, Device, Quiet
from ._output import info
from ._training_progress import StderrTrainingProgress
from .cache import Resume, resume_command

TRAINING = "Training"
LORA = "LoRA"


class Overlong(str, Enum):
    truncate = "truncate"
    skip = "skip"


@handle_errors
def train(
    pairs_file: Annotated[str, typer.Argument(
        help="Preference pairs: `codescaler pairs` output, CodeScalerPair, TRL or OpenRLHF rows (JSONL, a JSON array "
        "or Parquet). Rows with split=test are held out.", show_default=False, metavar="PAIRS")],
    base_model: Annotated[str, typer.Option(
        "--reward-model", "-r", help="Model to fine-tune: a reward model (e.g. Skywork/Skywork-Reward-V2-Qwen3-4B) "
        "or a chat model (its reward head then starts random); hub id or local directory.", show_default=False)],
    output_dir: Annotated[Path, typer.Option(
        "--output", "-o", help="New directory for the trained model (weights, tokenizer, chat template, model card).",
        file_okay=False, show_default=False, rich_help_panel=OUTPUT)],
    revision: Annotated[Optional[str], typer.Option("--revision", help="Revision of the model on the hub.",
                                                    show_default=False)] = None,
    max_length: Annotated[int, typer.Option(
        "--max-length", min=16, help="Longest rendered chat in tokens, as for the scorers: longer pairs are cut on "
        "the right (or left out with --overlong skip), and counted.", rich_help_panel=TRAINING)] = DEFAULT_MAX_LENGTH,
    overlong: Annotated[Overlong, typer.Option(
        "--overlong", help="Pairs over --max-length: truncate (as the scorer does) or skip.", case_sensitive=False,
        rich_help_panel=TRAINING)] = Overlong.truncate,
    learning_rate: Annotated[Optional[float], typer.Option(
        "--learning-rate", "--lr", min=0.0, help="Peak learning rate (linear decay). Default: 1e-5, or 1e-4 with "
        "--lora.", show_default=False, rich_help_panel=TRAINING)] = None,
    epochs: Annotated[float, typer.Option("--epochs", min=0.0, help="Passes over the training pairs.",
                                          rich_help_panel=TRAINING)] = 1.0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Pairs per step (per device).",
                                            rich_help_panel=TRAINING)] = 8,
    gradient_accumulation: Annotated[int, typer.Option(
        "--gradient-accumulation", min=1, help="Steps whose gradients add up before each update.",
        rich_help_panel=TRAINING)] = 1,
    center_rewards: Annotated[Optional[float], typer.Option(
        "--center-rewards", min=0.0, help="Coefficient of a term pulling rewards towards zero mean (TRL's "
        "center_rewards_coefficient; 0.01 is usual).", show_default=False, rich_help_panel=TRAINING)] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seeds the shuffling and a new reward head.",
                                      rich_help_panel=TRAINING)] = 0,
    device: Annotated[Device, typer.Option("--device", help="auto: CUDA when available (with bf16 mixed "
                                           "precision), else the CPU.", case_sensitive=False,
                                           rich_help_panel=TRAINING)] = Device.auto,
    lora: Annotated[bool, typer.Option("--lora", help="Train LoRA adapters (PEFT) instead of every weight; they are "
                                       "merged into the saved model.", rich_help_panel=LORA)] = False,
    lora_rank: Annotated[int, typer.Option("--lora-rank", min=1, help="Rank of the adapters.",
                                           rich_help_panel=LORA)] = 16,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", min=1, help="Scale of the adapters.",
                                            rich_help_panel=LORA)] = 32,
    save_steps: Annotated[Optional[int], typer.Option(
        "--save-steps", min=1, help="Checkpoint every N steps (default: at the end of every epoch).",
        show_default=False, rich_help_panel=OUTPUT)] = None,
    resume: Resume = False,
    quiet: Quiet = False,
) -> None:
    """Fine-tune a reward model on preference pairs with the Bradley-Terry loss (TRL's RewardTrainer).

        codescaler train pairs.jsonl -r Skywork/Skywork-Reward-V2-Qwen3-4B --lora -o my-rm

    Every pair is rendered with the model's chat template and cut at --max-length exactly as the scorers do, so
    training sees what `rank` will score. Accuracy on the test split (rows with split=test) is measured after
    every epoch. DIR becomes a model directory for `-r` in every command, with a model card (README.md) and
    codescaler-train.json. Checkpoints go to DIR/checkpoints while training runs; an interrupted run continues with
    --resume. Progress goes to stderr.

    More examples:

        codescaler train pairs.jsonl -r models/tiny/reward -o tiny-rm --epochs 3 --lr 1e-3 --device cpu

        codescaler train pairs.jsonl -r Skywork/Skywork-Reward-V2-Qwen3-4B --lora -o my-rm --resume
    """
    config = TrainConfig(
        base_model=base_model, output_dir=output_dir, revision=revision, max_length=max_length,
        learning_rate=learning_rate, epochs=epochs, batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation, center_rewards_coefficient=center_rewards, lora=lora,
        lora_rank=lora_rank, lora_alpha=lora_alpha, overlong=overlong.value, seed=seed, save_steps=save_steps,
        device=device.value, resume=resume)
    config.validate()
    set_interrupt_hint(lambda: _resume_hint(output_dir))
    progress = StderrTrainingProgress(quiet)
    try:
        result = train_reward_model(pairs_file, config, progress)
    finally:
        progress.close()
    if quiet:
        return
    final = result.final
    measured = (f"; test accuracy {100 * final['test_accuracy']:.1f}% on {result.data['test_pairs']} held-out pairs"
                if final else "; no test split")
    info(f"saved the reward model to {output_dir} ({result.steps} steps in {result.seconds:.1f}s{measured})")


def _resume_hint(output_dir: Path) -> str | None:
    checkpoints = output_dir / CHECKPOINTS
    if not any(checkpoints.glob("checkpoint-*")):
        return None
    return f"checkpoints are in {checkpoints}; continue with: {resume_command()}"
