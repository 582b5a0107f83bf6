"""TRL's GRPOTrainer trains a couple of steps with the codescaler reward function (tiny generator, CPU).

The reward function scores on a real `codescaler serve` over loopback; TRL logs its rewards under its name.
"""

from __future__ import annotations

from pathlib import Path


# TRL and datasets come with the `test` extra: a missing one fails here rather than skipping the integration.
import datasets
import trl

from codescaler_cli.rl.rewards import trl_reward

assert trl.__version__  # imported for real, not skipped

QUESTIONS = ["Return the sum of a list of integers.", "Return the maximum of a list of integers."]


def test_grpo_trainer_runs_with_the_codescaler_reward(reward_serve: str, coder_dir: Path, tmp_path: Path) -> None:
    from trl import GRPOConfig, GRPOTrainer

    dataset = datasets.Dataset.from_list([
        {"prompt": [{"role": "user", "content": q}], "question": q} for q in QUESTIONS * 2])
    seen: list[list[float]] = []
    reward = trl_reward(url=reward_serve)

    def recorded(prompts, completions, **kwargs):  # type: ignore[no-untyped-def]
        values = reward(prompts, completions, **kwargs)
        seen.append(values)
        return values

    recorded.__name__ = reward.__name__
    args = GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=48, max_steps=2, learning_rate=1e-5, logging_steps=1,
                      save_strategy="no", report_to="none", use_cpu=True, bf16=False, seed=0,
                      dataloader_num_workers=0)
    trainer = GRPOTrainer(model=str(coder_dir), reward_funcs=[recorded], args=args, train_dataset=dataset)
    trainer.train()
    assert len(seen) >= 2 and all(len(values) == 4 for values in seen)
    assert all(isinstance(v, float) and v >= 0.0 for values in seen for v in values)
    logged = [entry for entry in trainer.state.log_history if any("codescaler" in key for key in entry)]
    assert logged, trainer.state.log_history
