"""The reward-model loop: preference pairs from verified samples, Bradley-Terry training, and reward-model
benchmarks.

    eval's verdicts  ──►  build_pairs  ──►  train_reward_model  ──►  evaluate_reward_model

* `pairs`: a program that passes its tests preferred to one that fails, per problem, split by problem.
* `data`: preference files as their projects write them (CodeScalerPair, TRL, OpenRLHF, RewardBench, RM-Bench).
* `training`: TRL's RewardTrainer on the token ids the scorers feed the model (optionally LoRA, merged on save).
* `evaluate`, `metrics`: pairwise accuracy and RM-Bench's easy / normal / hard with any scorer `rank` uses.

torch, transformers, TRL and PEFT are imported only inside training and scoring.
"""

from .data import FORMATS, PAIR_FORMATS, PreferenceData, PreferenceItem, read_preference_data
from .evaluate import EXTRACTIONS, RMEvaluation, RMReport, ScoredItem, evaluate_reward_model
from .metrics import RMBenchAccuracy, beats, pairwise_accuracy, rm_bench_accuracy, rm_bench_overall
from .pairs import PairsConfig, PairsResult, PairsSummary, Verdict, build_pairs, pairs_from_verdicts, read_verdicts
from .training import TrainConfig, TrainingProgress, TrainResult, train_reward_model

__all__ = [
    "EXTRACTIONS", "FORMATS", "PAIR_FORMATS", "PairsConfig", "PairsResult", "PairsSummary", "PreferenceData",
    "PreferenceItem", "RMBenchAccuracy", "RMEvaluation", "RMReport", "ScoredItem", "TrainConfig", "TrainResult",
    "TrainingProgress", "Verdict", "beats", "build_pairs", "evaluate_reward_model", "pairs_from_verdicts",
    "pairwise_accuracy", "read_preference_data", "read_verdicts", "rm_bench_accuracy", "rm_bench_overall",
    "train_reward_model",
]
