"""codescaler: best-of-N test-time scaling for code generation with an execution-free reward model.

The library API: extract code from responses, score (question, code) pairs with a reward model, rank candidates.
Heavy dependencies (torch, transformers, vLLM) load only inside the scorers that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import CodescalerError, InputError, ModelLoadError, UsageError
from .extraction import Extraction, check_code, dedup_key, extract_code, is_valid_python
from .pipeline import extract_all, extract_candidate, score_groups
from .records import Candidate, FieldNames, group_candidates, read_candidates
from .scoring import ScoreRequest, ScoreResult, Scorer, reward_conversation, softplus
from .selection import assign_ranks

__all__ = [
    "Candidate", "CodescalerError", "Extraction", "FieldNames", "InputError", "ModelLoadError", "ScoreRequest",
    "ScoreResult", "Scorer", "UsageError", "assign_ranks", "check_code", "dedup_key", "extract_all",
    "extract_candidate", "extract_code", "group_candidates", "is_valid_python", "read_candidates",
    "reward_conversation", "score_groups", "softplus",
]
