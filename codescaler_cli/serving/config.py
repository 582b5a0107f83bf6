"""`codescaler serve`'s settings in one object: the reward model, the batching queue, what the endpoints answer,
and the generator behind the OpenAI best-of-N endpoints. Light to import (the server stack loads when it runs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError
from ..extraction import EXTRACTION_MODES
from ..generation.config import GeneratorConfig
from ..scoring.config import ScorerConfig
from .inputs import PROMPT_FORMATS

LOG_LEVELS = ("warning", "info", "debug")

# A request body at most (32 MiB: a batch of hundreds of long RL rollouts), and a text in it at most (4 million
# characters: four times the longest response `rank` extracts, MAX_CANDIDATE_CHARS, and hundreds of times what the
# reward model reads). Larger ones are answered 413 before any work.
DEFAULT_MAX_REQUEST_BYTES = 32 << 20
DEFAULT_MAX_TEXT_CHARS = 4_000_000


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class ServeConfig:
    """Everything `codescaler serve` needs. The generator behind /v1/chat/completions and /v1/completions is
    OpenAI-compatible servers (`generator.urls`) or a model run here (`generator.model`); neither: no such
    endpoints. Each field's `metadata["help"]` says what it does (the CLI's option help is that text)."""

    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    host: str = field(default="127.0.0.1", metadata=_help("Address to listen on (0.0.0.0: every interface)."))
    port: int = field(default=8100, metadata=_help("Port to listen on."))
    api_key: str | None = field(default=None, metadata=_help(
        "Require 'Authorization: Bearer KEY' on every endpoint but /health."))
    served_model_name: str | None = field(default=None, metadata=_help(
        "Model name in /v1/models and answers (default: the reward model as given)."))
    batch_wait_ms: float = field(default=5.0, metadata=_help(
        "How long the oldest queued request may wait for others to join its batch."))
    max_batch_requests: int = field(default=256, metadata=_help("Requests per batch at most (1 turns batching off)."))
    max_queue: int = field(default=1024, metadata=_help(
        "Requests waiting at most; more are answered 503 with Retry-After."))
    max_request_bytes: int = field(default=DEFAULT_MAX_REQUEST_BYTES, metadata=_help(
        "Largest request body in bytes; a larger one is answered 413 before it is read."))
    max_text_chars: int = field(default=DEFAULT_MAX_TEXT_CHARS, metadata=_help(
        "Longest text (any string in a request) in characters; a longer one is answered 413 naming the field."))
    extraction: str = field(default="syntax", metadata=_help(
        "syntax: rank's extraction; upstream: training's rule (exactly one fenced block that ast.parse accepts)."))
    raw: bool = field(default=False, metadata=_help(
        "Rewards are raw logits instead of softplus(score) (invalid code still gets 0)."))
    prompt_format: str = field(default="chat", metadata=_help(
        "/get_reward: chat takes the question from the prompt's last user turn, raw takes the whole prompt."))
    log_level: str = field(default="warning", metadata=_help("Server log level on stderr."))
    reuse_prefix: bool = field(default=False, metadata=_help(
        "transformers: encode each problem statement once for its candidates (exact, as rank does). Off (the "
        "default here), the texts of every problem in a batch share forward passes, which is what batching many "
        "small requests needs."))
    graceful_timeout: float = 60.0  # seconds SIGTERM waits for the requests in flight
    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(n=8))
    samples_per_request: int = field(default=1, metadata=_help(
        "Candidates per generator request (n). 1: a failed request loses one candidate and replicas share the "
        "work; --n: one request per best-of-N, less overhead on one server. The samples are the same either way."))
    max_best_of: int = field(default=64, metadata=_help("Largest best_of a request may ask for (more is a 400)."))
    max_best_of_requests: int = field(default=64, metadata=_help(
        "Best-of-N requests in flight at most; more are answered 503 with Retry-After."))

    @property
    def has_generator(self) -> bool:
        return bool(self.generator.urls or self.generator.model)

    def validate(self) -> None:
        if self.extraction not in EXTRACTION_MODES:
            raise UsageError(f"unknown --extraction '{self.extraction}'", f"use one of: {', '.join(EXTRACTION_MODES)}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise UsageError(f"unknown --prompt-format '{self.prompt_format}'",
                             f"use one of: {', '.join(PROMPT_FORMATS)}")
        if self.scorer.urls:
            raise UsageError("serve scores with a local model", "drop --reward-url")
        if self.generator.n > self.max_best_of:
            raise UsageError(f"--n {self.generator.n} is more than --max-best-of {self.max_best_of}",
                             "lower --n or raise --max-best-of")
