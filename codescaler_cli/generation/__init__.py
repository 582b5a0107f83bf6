"""Generation: LiveCodeBench-style prompts, problems and their seeds, and the sampling backends (an in-process vLLM
engine or OpenAI-compatible servers) behind the `Generator` protocol.

Backends import vLLM, transformers or httpx only when they are opened.
"""

from .base import (
    DEFAULT_GENERATOR_MODEL,
    GenerationRequest,
    GenerationStats,
    Generator,
    ProgressCallback,
    Sample,
    SamplingSettings,
)
from .problems import Problem, problem_seeds, read_problems, sample_candidates
from .prompts import build_prompt, chat_messages, load_template

__all__ = [
    "DEFAULT_GENERATOR_MODEL", "GenerationRequest", "GenerationStats", "Generator", "Problem", "ProgressCallback",
    "Sample", "SamplingSettings", "build_prompt", "chat_messages", "load_template", "problem_seeds", "read_problems",
    "sample_candidates",
]
