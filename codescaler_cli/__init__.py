"""codescaler: best-of-N test-time scaling for code generation with an execution-free reward model.

The library API: extract code from responses, score (question, code) pairs with a reward model, rank candidates,
and run the whole best-of-N loop (sample → extract → score → rank) with `best_of_n`.
Heavy dependencies (torch, transformers, vLLM) load only inside the backends that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import BackendError, CodescalerError, InputError, ModelLoadError, UsageError
from .extraction import Extraction, check_code, dedup_key, extract_all, extract_candidate, extract_code, is_valid_python
from .generation import Problem, SamplingSettings
from .generation.config import GeneratorConfig, open_generator
from .pipeline import BestOfNRun, best_of_n, iter_best_of_n, score_groups
from .records import Candidate, FieldNames, group_candidates, read_candidates
from .scoring import ScoreRequest, ScoreResult, Scorer, ScorerConfig, open_scorer, reward_conversation, softplus
from .selection import assign_ranks
from .stopping import StoppingRule

__all__ = [
    "BackendError", "BestOfNRun", "Candidate", "CodescalerError", "Extraction", "FieldNames", "GeneratorConfig",
    "InputError", "ModelLoadError", "Problem", "SamplingSettings", "ScoreRequest", "ScoreResult", "Scorer",
    "ScorerConfig", "StoppingRule", "UsageError", "assign_ranks", "best_of_n", "check_code", "dedup_key",
    "extract_all", "extract_candidate", "extract_code", "group_candidates", "is_valid_python", "iter_best_of_n",
    "open_generator", "open_scorer", "read_candidates", "reward_conversation", "score_groups", "softplus",
]
