"""Bradley-Terry training of a reward model with TRL's RewardTrainer, on exactly the token ids ranking feeds it.

Every pair is rendered and tokenized by the scorers' own code (`scoring.texts.RewardTexts`: the model's chat
template, user = question, assistant = response, cut on the right at `max_length`) and handed to TRL already
tokenized, so training sees what `rank` will score. TRL would drop a pair longer than its `max_length`; here nothing
is dropped silently: an over-long pair is truncated the way the scorer truncates (and counted), or, with
`overlong="skip"`, left out (and counted).

The output directory is a model directory every command takes as `-r`: the weights (LoRA adapters merged into
them), the tokenizer with its chat template, a model card (README.md: base model, data, settings, results) and
`codescaler-train.json` (the same as JSON). While training runs, checkpoints go to `DIR/checkpoints` (one per epoch,
or every `save_steps` steps); an interrupted run continues from the last one with `resume=True`, and the checkpoints
are removed once the model is saved.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelLoadError, UsageError
from ..scoring.base import DEFAULT_MAX_LENGTH
from .data import PreferenceData, PreferenceItem, read_preference_data

CHECKPOINTS = "checkpoints"
SETTINGS_FILE = "codescaler-train-settings.json"  # in DIR/checkpoints while a run is resumable
REPORT_FILE = "codescaler-train.json"
OVERLONG = ("truncate", "skip")
DEVICES = ("auto", "cpu", "cuda")
# Learning rates that suit fine-tuning a reward model: all weights move slowly; LoRA adapters start at zero.
FULL_LEARNING_RATE = 1e-5
LORA_LEARNING_RATE = 1e-4


@dataclass
class TrainConfig:
    """The settings of one training run (what `codescaler train` maps its options onto)."""

    base_model: str
    output_dir: Path
    revision: str | None = None
    max_length: int = DEFAULT_MAX_LENGTH
    learning_rate: float | None = None  # None: FULL_LEARNING_RATE, or LORA_LEARNING_RATE with lora
    epochs: float = 1.0
    batch_size: int = 8  # pairs per device per step
    gradient_accumulation_steps: int = 1
    center_rewards_coefficient: float | None = None
    lora: bool = False
    lora_rank: int = 16
    lora_alpha: int = 32
    overlong: str = "truncate"
    seed: int = 0
    save_steps: int | None = None  # None: a checkpoint at the end of every epoch
    logging_steps: int = 10
    device: str = "auto"
    resume: bool = False

    @property
    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return LORA_LEARNING_RATE if self.lora else FULL_LEARNING_RATE

    def validate(self) -> None:
        if self.overlong not in OVERLONG:
            raise UsageError(f"unknown --overlong '{self.overlong}'", f"use one of: {', '.join(OVERLONG)}")
        if self.device not in DEVICES:
            raise UsageError(f"unknown --device '{self.device}'", f"use one of: {', '.join(DEVICES)}")
        if self.epochs <= 0 or self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise UsageError("--epochs must be above 0, --batch-size and --gradient-accumulation at least 1")
        if self.resolved_learning_rate <= 0:
            raise UsageError("--learning-rate must be above 0")

    def settings(self) -> dict[str, Any]:
        """What the trained model depends on: recorded in the model card, and compared when a run resumes."""
        settings: dict[str, Any] = {
            "base_model": self.base_model, "revision": self.revision, "max_length": self.max_length,
            "learning_rate": self.resolved_learning_rate, "epochs": self.epochs, "batch_size": self.batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "center_rewards_coefficient": self.center_rewards_coefficient, "lora": self.lora,
            "overlong": self.overlong, "seed": self.seed}
        if self.lora:
            settings.update({"lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha})
        return settings


@dataclass
class TokenizedPairs:
    """Pairs as token ids, and what fitting them into max_length did."""

    chosen: list[list[int]] = field(default_factory=list)
    rejected: list[list[int]] = field(default_factory=list)
    problems: int = 0  # distinct problem ids among the pairs (0 when rows carry none)
    truncated: int = 0  # pairs with a side cut on the right at max_length
    skipped: int = 0  # pairs over max_length left out (overlong="skip")
    identical: int = 0  # pairs whose sides have the same ids (after truncation): they teach nothing

    def __len__(self) -> int:
        return len(self.chosen)


class TrainingProgress:
    """What a training run reports as it goes; the CLI shows it on stderr. Every method does nothing by default."""

    def note(self, message: str) -> None:
        """Something worth telling before training starts (e.g. a base model whose score head starts random)."""

    def prepared(self, train: TokenizedPairs, test: TokenizedPairs) -> None:
        """The pairs are tokenized."""

    def started(self, total_steps: int, done_steps: int) -> None:
        """Training starts (done_steps > 0 when it continues a checkpoint)."""

    def step(self, step: int) -> None:
        """An optimizer step finished."""

    def logged(self, step: int, logs: dict[str, float]) -> None:
        """TRL's running metrics (loss, accuracy, margin, learning rate...)."""

    def evaluated(self, entry: dict[str, float]) -> None:
        """An epoch ended: the test split's accuracy, loss and mean margin."""


@dataclass
class TrainResult:
    """What a run did and measured; written as `codescaler-train.json` and summarised in the model card."""

    output_dir: str
    settings: dict[str, Any]
    data: dict[str, Any]
    history: list[dict[str, float]]
    train_loss: float | None
    steps: int
    seconds: float
    resumed_from_step: int | None
    device: str
    precision: str

    @property
    def final(self) -> dict[str, float] | None:
        return self.history[-1] if self.history else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def train_reward_model(data: PreferenceData | str | Path, config: TrainConfig,
                       progress: TrainingProgress | None = None) -> TrainResult:
    """Train `config.base_model` on the `train` rows of `data` (rows without a split are training rows), report
    accuracy on the `test` rows after every epoch, and save the model to `config.output_dir`.

        from pathlib import Path
        from codescaler_cli.rm import TrainConfig, train_reward_model

        result = train_reward_model("pairs.jsonl", TrainConfig(base_model="Skywork/Skywork-Reward-V2-Qwen3-4B",
                                                               output_dir=Path("my-rm"), lora=True))
        print(result.final["test_accuracy"])
    """
    config.validate()
    progress = progress or TrainingProgress()
    if not isinstance(data, PreferenceData):
        data = read_preference_data(data)
    if data.is_rm_bench:
        raise UsageError(f"{data.source} holds RM-Bench rows (three responses a side): they are for evaluating "
                         "(codescaler eval-rm), not for training", "train on pairs, e.g. from codescaler pairs")
    train_items = [item for item in data.items if item.split != "test"]
    test_items = [item for item in data.items if item.split == "test"]
    if not train_items:
        raise InputError(data.source, None, "no training pairs: every row is in the test split",
                         "write pairs with a --test-fraction below 1")
    output = Path(config.output_dir)
    checkpoints = output / CHECKPOINTS
    fingerprint = {**config.settings(), "data_sha256": _fingerprint(data.items)}
    last_checkpoint = _prepare_output(output, checkpoints, fingerprint, config.resume)
    device = _device(config.device)

    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # TRL pings the hub when a trainer starts unless told
    _require("trl", "datasets", *(("peft",) if config.lora else ()))
    import torch
    from datasets import Dataset
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils import logging as transformers_logging
    from trl import RewardConfig, RewardTrainer

    from ..loading import load_error
    from ..scoring.texts import RewardTexts

    transformers_logging.disable_progress_bar()
    tokenizer = _load_tokenizer(config, AutoTokenizer, load_error)
    texts = RewardTexts(tokenizer, config.max_length)
    train = _tokenize(train_items, texts, config.overlong)
    test = _tokenize(test_items, texts, config.overlong)
    if not train.chosen:
        raise UsageError(f"every training pair is longer than --max-length {config.max_length} tokens, and "
                         "--overlong skip leaves them all out", "raise --max-length, or use --overlong truncate")
    progress.prepared(train, test)

    set_seed(config.seed)  # the score head of a causal-LM base starts random: the same seed, the same start
    try:
        base_config = AutoConfig.from_pretrained(config.base_model, revision=config.revision)
        architectures = list(getattr(base_config, "architectures", None) or [])
        new_head = bool(architectures) and not any(name.endswith("ForSequenceClassification")
                                                   for name in architectures)
        if new_head:
            progress.note(f"{config.base_model} is a {architectures[0]}: its reward head starts from random weights")
        verbosity = transformers_logging.get_verbosity()
        if new_head:  # transformers' load report would say the same as the note, as a table of missing keys
            transformers_logging.set_verbosity_error()
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                config.base_model, revision=config.revision, num_labels=1, dtype=torch.float32)
        finally:
            transformers_logging.set_verbosity(verbosity)
    except Exception as exc:
        raise load_error("base model", config.base_model, exc) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # what TRL would pick; the scorer then pads with it too

    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    args = RewardConfig(
        output_dir=str(checkpoints), num_train_epochs=config.epochs, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.resolved_learning_rate, center_rewards_coefficient=config.center_rewards_coefficient,
        # The pairs arrive tokenized and already fitted to max_length: TRL must not filter them again.
        max_length=None, bf16=bf16, fp16=False, use_cpu=device == "cpu",
        gradient_checkpointing=device == "cuda", seed=config.seed, logging_steps=config.logging_steps,
        save_strategy="steps" if config.save_steps else "epoch", save_steps=config.save_steps or 500,
        save_total_limit=2, eval_strategy="no", report_to="none", disable_tqdm=True,
        dataloader_pin_memory=device == "cuda")
    peft_config = None
    if config.lora:
        from peft import LoraConfig

        # SEQ_CLS keeps the score head fully trainable (saved with the adapters, merged back on save).
        peft_config = LoraConfig(task_type="SEQ_CLS", r=config.lora_rank, lora_alpha=config.lora_alpha,
                                 lora_dropout=0.0, target_modules="all-linear")
    monitor = _monitor(test, config.batch_size, tokenizer.pad_token_id, progress)
    trainer = RewardTrainer(
        model=model, args=args, processing_class=tokenizer, peft_config=peft_config, callbacks=[monitor],
        train_dataset=Dataset.from_dict({"chosen_ids": train.chosen, "rejected_ids": train.rejected}))
    # Transformers' own progress and log printing write to stdout; progress goes to stderr, through `progress`.
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    _write_json(checkpoints / SETTINGS_FILE, fingerprint)

    started = time.perf_counter()
    outcome = trainer.train(resume_from_checkpoint=last_checkpoint)
    seconds = time.perf_counter() - started

    trained = trainer.model.merge_and_unload() if config.lora else trainer.model
    if bf16:
        trained = trained.to(torch.bfloat16)  # saved at the precision it trained in (half the size of float32)
    trained.config.pad_token_id = tokenizer.pad_token_id
    trained.save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    history = [{key: value for key, value in entry.items()} for entry in trainer.state.log_history
               if "test_accuracy" in entry]
    result = TrainResult(
        output_dir=str(output), settings=config.settings(),
        data={"source": data.source, "format": data.format, "sha256": fingerprint["data_sha256"],
              "train_pairs": len(train), "train_problems": train.problems, "test_pairs": len(test),
              "test_problems": test.problems, "truncated": train.truncated + test.truncated,
              "skipped": train.skipped + test.skipped, "identical": train.identical + test.identical},
        history=history, train_loss=getattr(outcome, "training_loss", None), steps=trainer.state.global_step,
        seconds=round(seconds, 2), resumed_from_step=_step_of(last_checkpoint), device=device,
        precision="bfloat16 mixed" if bf16 else "float32")
    _write_json(output / REPORT_FILE, result.to_json())
    from .card import model_card

    (output / "README.md").write_text(model_card(result), encoding="utf-8")
    shutil.rmtree(checkpoints, ignore_errors=True)
    return result


# ---------------------------------------------------------------------------------------------------------------


def _prepare_output(output: Path, checkpoints: Path, fingerprint: dict[str, Any], resume: bool) -> str | None:
    """Check that DIR may be written (new or empty, or a resumable run with the same settings); the checkpoint to
    continue from, or None."""
    if not resume:
        if checkpoints.is_dir() and not any(checkpoints.glob("checkpoint-*")) \
                and [entry.name for entry in output.iterdir()] == [CHECKPOINTS]:
            shutil.rmtree(checkpoints)  # a run stopped before its first checkpoint: nothing to keep
        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise UsageError(f"{output} is not an empty directory", "give -o a new directory, or continue an "
                             "interrupted run in it with --resume")
        return None
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if last is None:
        why = "it holds a finished model" if (output / REPORT_FILE).exists() else "no checkpoint was saved there"
        raise UsageError(f"nothing to resume in {output}: {why}", "run without --resume into a new directory")
    try:
        recorded = json.loads((checkpoints / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if not isinstance(recorded, dict):
        raise UsageError(f"cannot resume {output}: the settings of the run that wrote it are missing",
                         "run without --resume into a new directory")
    changed = sorted(key for key in set(recorded) | set(fingerprint) if recorded.get(key) != fingerprint.get(key))
    if changed:
        detail = "; ".join(f"{key}: {recorded.get(key)!r} then, {fingerprint.get(key)!r} now" for key in changed)
        raise UsageError(f"cannot resume {output}: the settings differ from the first run's ({detail})",
                         "resume with the same data and options, or start over in a new directory")
    return last


def _require(*modules: str) -> None:
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"codescaler train needs {', '.join(missing)}, which is not installed",
                         "pip install 'codescaler[train]' (TRL, PEFT and datasets)")


def _device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but this machine has no CUDA GPU", "use --device cpu or auto")
    device = requested if requested != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and torch.cuda.device_count() > 1:
        # One process trains on one GPU: TRL's trainers refuse torch's DataParallel, which several visible GPUs
        # would start (distributed launches are not supported here).
        raise UsageError(f"{torch.cuda.device_count()} GPUs are visible and training runs on one",
                         "choose it with CUDA_VISIBLE_DEVICES=0 (or another index)")
    return device


def _load_tokenizer(config: TrainConfig, auto_tokenizer: Any, load_error: Any) -> Any:
    try:
        tokenizer = auto_tokenizer.from_pretrained(config.base_model, revision=config.revision)
    except Exception as exc:
        raise load_error("base model", config.base_model, exc) from exc
    if not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError(f"base model '{config.base_model}' has no chat template",
                             "the reward model reads a chat (question, then code): use a base model whose tokenizer "
                             "defines chat_template")
    return tokenizer


def _tokenize(items: Sequence[PreferenceItem], texts: Any, overlong: str) -> TokenizedPairs:
    pairs = TokenizedPairs()
    problems = set()
    for item in items:
        chosen, chosen_cut = _ids(texts, item, item.chosen[0])
        rejected, rejected_cut = _ids(texts, item, item.rejected[0])
        if chosen_cut or rejected_cut:
            if overlong == "skip":
                pairs.skipped += 1
                continue
            pairs.truncated += 1
        pairs.identical += chosen == rejected
        pairs.chosen.append(chosen)
        pairs.rejected.append(rejected)
        problem = item.row.record.get("id")
        if isinstance(problem, (str, int)):
            problems.add(str(problem))
    pairs.problems = len(problems)
    return pairs


def _ids(texts: Any, item: PreferenceItem, response: str) -> tuple[list[int], bool]:
    from ..extraction import check_code
    from ..pipeline import encodable

    # Code rows are shown as rank shows a `code` field: tidied by check_code first.
    code = check_code(response).code if item.is_code else response
    return texts.tokenize(encodable(item.question), encodable(code))


def _fingerprint(items: Sequence[PreferenceItem]) -> str:
    digest = hashlib.sha256()
    for item in items:
        for text in (item.question, *item.chosen, *item.rejected, item.split or ""):
            digest.update(text.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
    return digest.hexdigest()


def _step_of(checkpoint: str | None) -> int | None:
    return int(checkpoint.rsplit("-", 1)[-1]) if checkpoint else None


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.writing")
    partial.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def evaluate_pairs(model: Any, pairs: TokenizedPairs, batch_size: int, pad_id: int) -> dict[str, float]:
    """Accuracy (strict wins), Bradley-Terry loss and mean margin of a model on tokenized pairs."""
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sequences = pairs.chosen + pairs.rejected
    scores: list[float] = []
    try:
        with torch.no_grad():
            for start in range(0, len(sequences), 2 * batch_size):
                batch = sequences[start:start + 2 * batch_size]
                width = max(len(ids) for ids in batch)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, ids in enumerate(batch):
                    input_ids[row, :len(ids)] = torch.tensor(ids)
                    attention_mask[row, :len(ids)] = 1
                logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
                scores.extend(float(value) for value in logits[:, 0].float().cpu())
    finally:
        model.train(was_training)
    chosen, rejected = scores[:len(pairs)], scores[len(pairs):]
    margins = torch.tensor(chosen) - torch.tensor(rejected)
    return {"test_accuracy": float((margins > 0).float().mean()),
            "test_loss": float(-torch.nn.functional.logsigmoid(margins).mean()),
            "test_margin": float(margins.mean())}


def _monitor(test: TokenizedPairs, batch_size: int, pad_id: int, progress: TrainingProgress) -> Any:
    """A TrainerCallback (transformers is imported only when training runs) that reports progress and measures the
    test split at the end of every epoch. The results go into the trainer's log history, so the checkpoints of a
    run carry them and a resumed run reports the earlier epochs too."""
    from transformers import TrainerCallback

    class TrainingMonitor(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            progress.started(state.max_steps, state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            progress.step(state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
                   **kwargs: Any) -> None:
            if logs:
                progress.logged(state.global_step, logs)

        def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            if not len(test) or model is None:
                return
            entry = {"epoch": round(float(state.epoch or 0), 4), "step": state.global_step,
                     **evaluate_pairs(model, test, batch_size, pad_id)}
            state.log_history.append(entry)
            progress.evaluated(entry)

    return TrainingMonitor()
