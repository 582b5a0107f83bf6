"""Choosing a scorer backend from settings: transformers (default), in-process vLLM, or remote vLLM servers.

`check_scorer` is the cheap start-up check (the model's config and tokenizer are readable, a GPU exists when one is
asked for, vLLM is importable, the servers answer) that `generate` runs before it spends time sampling;
`open_scorer` loads the backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from .base import DEFAULT_MAX_LENGTH, DEFAULT_REWARD_MODEL, Scorer

SCORER_KINDS = ("transformers", "vllm")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class ScorerConfig:
    """Everything needed to open a reward-model scorer. `urls` set means remote servers, whatever `kind` says.

    Each field's `metadata["help"]` says what it does (the CLI's option help is that text).
    """

    model: str | None = field(default=None, metadata=_help(
        f"Reward model: hub id or local directory (default {DEFAULT_REWARD_MODEL}; with --reward-url, the one the "
        "servers name)."))
    kind: str = field(default="transformers", metadata=_help(
        "Reward backend here: transformers, or vLLM's pooling runner."))
    revision: str | None = field(default=None, metadata=_help("Reward model revision (branch, tag or commit)."))
    device: str = field(default="auto", metadata=_help(
        "Where the transformers reward model runs (auto: CUDA when available)."))
    dtype: str = field(default="auto", metadata=_help("Reward model dtype. auto: bfloat16 on GPU, float32 on CPU."))
    max_length: int = field(default=DEFAULT_MAX_LENGTH, metadata=_help(
        "Longest rendered chat in tokens; longer ones are cut on the right and marked truncated."))
    max_batch_tokens: int = field(default=16384, metadata=_help(
        "Token budget of one scoring batch (padded tokens); halved automatically on CUDA out-of-memory."))
    urls: list[str] = field(default_factory=list, metadata=_help(
        "Score on servers (vLLM with --runner pooling, or codescaler serve) instead of here; repeat for several."))
    api_key: str | None = field(default=None, metadata=_help("Bearer token for the reward servers."))
    concurrency: int = field(default=4, metadata=_help("Requests in flight per reward server."))
    timeout: float = field(default=600.0, metadata=_help(
        "Seconds before one request to a reward server is given up (then retried)."))
    max_retries: int = field(default=4, metadata=_help(
        "Retries of a reward request on connection errors, 429 and 5xx."))
    tensor_parallel_size: int = field(default=1, metadata=_help("GPUs of the reward model's vLLM engine."))
    gpu_memory_utilization: float | None = field(default=None, metadata=_help(
        "Share of GPU memory the reward model's vLLM engine may use. Default: vLLM's 0.9 on GPUs; on CPU, what "
        "the machine can give."))

    def __post_init__(self) -> None:
        # Unnamed, a model loaded here is the default one; on servers it is the one they serve (see `served_reward`).
        if self.model is None and not self.urls:
            self.model = DEFAULT_REWARD_MODEL

    def fingerprint(self) -> dict[str, Any]:
        """What a score depends on besides its text, for the settings check of a resumed run: the model, its
        revision, dtype and the longest input (the backend and the servers give the same scores)."""
        return {"reward_model": self.model, "reward_revision": self.revision, "reward_dtype": self.dtype,
                "reward_max_length": self.max_length}

    @property
    def description(self) -> str:
        if self.urls:
            return f"remote ({', '.join(self.urls)})"
        return self.kind

    def validate(self) -> None:
        """Usage errors that need no model: an unknown backend, or a GPU asked for on a machine without one."""
        if self.kind not in SCORER_KINDS:
            raise UsageError(f"unknown scorer '{self.kind}'", f"use one of: {', '.join(SCORER_KINDS)}")
        if not self.urls and self.kind == "transformers" and self.device.startswith("cuda"):
            from ..backends.vllm import cuda_available

            if not cuda_available():
                raise UsageError(f"--device {self.device} asked for, but this machine has no CUDA GPU",
                                 "use --device cpu, or auto (CUDA when available)")


def check_scorer(config: ScorerConfig) -> None:
    """Fail now, not after an hour of sampling, when the reward side cannot work.

    Checks what is cheap: the options, the model's kind from its config (a one-label sequence classifier, not a
    generator: in seconds, before anything loads), the servers answering (remote), vLLM importable (`--scorer
    vllm`), and the tokenizer (with a chat template) readable. Weights are not loaded. Raises UsageError,
    ModelLoadError or BackendError.
    """
    from ..backends.loading import REWARD, check_model, load_error
    from ..errors import ModelLoadError

    config.validate()
    model = config.model
    if config.urls:
        from ..backends.http import EndpointPool
        from .remote import served_reward

        pool = EndpointPool(config.urls, api_key=config.api_key, timeout=config.timeout, max_retries=0)
        try:
            _, model = served_reward(pool.check_servers("reward"), config.model)
        finally:
            pool.close()
    else:
        assert model is not None
        check_model(model, config.revision, REWARD)
        if config.kind == "vllm":
            from ..backends.vllm import import_vllm

            import_vllm()
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model, revision=config.revision)
    except Exception as exc:
        raise load_error("reward model", model, exc) from exc
    if not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError(f"reward model '{model}' has no chat template",
                             "use a reward model whose tokenizer defines chat_template")


def open_scorer(config: ScorerConfig) -> Scorer:
    """Load the configured backend (heavy imports happen here, not at module import). The model's kind is checked
    from its config first, so a generator passed as the reward model fails in seconds, before any engine starts."""
    config.validate()
    if not config.urls:
        from ..backends.loading import REWARD, check_model

        assert config.model is not None
        check_model(config.model, config.revision, REWARD)
    if config.urls:
        from .remote import RemoteScorer

        return RemoteScorer(config.urls, config.model, revision=config.revision, max_length=config.max_length,
                            api_key=config.api_key, concurrency=config.concurrency, timeout=config.timeout,
                            max_retries=config.max_retries)
    if config.kind == "vllm":
        from .vllm_backend import VllmScorer

        return VllmScorer(config.model, revision=config.revision, dtype=config.dtype, max_length=config.max_length,
                          tensor_parallel_size=config.tensor_parallel_size,
                          gpu_memory_utilization=config.gpu_memory_utilization)
    from .transformers_backend import TransformersScorer

    return TransformersScorer(config.model, revision=config.revision, device=config.device, dtype=config.dtype,
                              max_length=config.max_length, max_batch_tokens=config.max_batch_tokens)
