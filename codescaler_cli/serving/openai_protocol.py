"""Request and response bodies of the OpenAI-compatible best-of-N endpoints, as pydantic models.

Shapes follow OpenAI's API (and vLLM's `entrypoints/openai/protocol.py`): `chat.completion`,
`chat.completion.chunk`, `text_completion`, `usage`. The extras CodeScaler adds are request fields `best_of` and
`return_candidates` (top-level, which is where the `openai` client's `extra_body` puts them, or inside a literal
`extra_body` object some clients send), the adaptive-sampling fields `wave`, `stop_score`, `stop_margin` and
`stop_agreement` (see `stopping.py`; given, even as null, they replace the server's), and a `codescaler` object in
each answer. Unknown request fields are
ignored, as OpenAI-compatible servers do.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Fields a request may carry inside a literal `extra_body` object (clients that forward it unmerged).
EXTRA_BODY_FIELDS = ("best_of", "return_candidates", "seed", "stop", "top_p", "temperature", "max_tokens", "wave",
                     "stop_score", "stop_margin", "stop_agreement")
# The request fields of adaptive sampling, named as StoppingRule's fields they replace.
STOPPING_FIELDS = {"wave": "wave", "stop_score": "score", "stop_margin": "margin", "stop_agreement": "agreement"}


class _OpenAIRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(description="The generator's name, as GET /v1/models lists it.")
    best_of: Optional[int] = Field(default=None, ge=1, description="Candidates to sample and rank (default: --n).")
    n: int = Field(default=1, ge=1, description="How many of the best candidates to return, in rank order.")
    return_candidates: bool = Field(default=False, description="Put every candidate's text in `codescaler`.")
    temperature: Optional[float] = Field(default=None, ge=0.0, le=2.0)
    top_p: Optional[float] = Field(default=None, gt=0.0, le=1.0)
    max_tokens: Optional[int] = Field(default=None, ge=1)
    seed: Optional[int] = Field(default=None, ge=0, lt=2**63 - 2**20)
    stop: Optional[Union[str, list[str]]] = None
    presence_penalty: Optional[float] = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: Optional[float] = Field(default=None, ge=-2.0, le=2.0)
    stream: bool = False
    stream_options: Optional["StreamOptions"] = None
    user: Optional[str] = None
    wave: Optional[int] = Field(default=None, ge=1, description="Adaptive sampling: samples per wave.")
    stop_score: Optional[float] = Field(default=None, description=(
        "Adaptive sampling: stop once the best valid candidate's raw score reaches this (null: rule off)."))
    stop_margin: Optional[float] = Field(default=None, ge=0.0, description=(
        "Adaptive sampling: stop once the best program leads the next distinct one by this much (null: off)."))
    stop_agreement: Optional[int] = Field(default=None, ge=1, description=(
        "Adaptive sampling: stop once this many samples are the same program (null: off)."))

    @model_validator(mode="before")
    @classmethod
    def _merge_extra_body(cls, data: Any) -> Any:
        """Accept CodeScaler's fields inside a literal `extra_body` object too (top-level values win)."""
        if isinstance(data, dict) and isinstance(data.get("extra_body"), dict):
            extra = data["extra_body"]
            data = {**{k: v for k, v in extra.items() if k in EXTRA_BODY_FIELDS}, **data}
        return data

    def stop_list(self) -> list[str] | None:
        if self.stop is None:
            return None
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatMessage(BaseModel):
    """A message as clients send it; content may be a string or a list of content parts."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: Optional[Union[str, list[dict[str, Any]]]] = None


class ChatCompletionRequest(_OpenAIRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Optional[int] = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _max_completion_tokens(self) -> "ChatCompletionRequest":
        # The newer OpenAI name for max_tokens (the `openai` client sends it for new models).
        if self.max_tokens is None and self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        return self


class CompletionRequest(_OpenAIRequest):
    prompt: str = Field(min_length=1, description="One prompt: best-of-N ranks the candidates of one question.")


# -- answers -------------------------------------------------------------------------------------------------------

class UsageInfo(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class CandidateInfo(BaseModel):
    """One sampled candidate: sample `index` (its seed is `codescaler.seed + index`) and how it was judged."""

    index: int
    rank: Optional[int] = Field(description="1 = best; null when its sampling failed.")
    valid: bool
    score: Optional[float] = Field(description="Raw reward-model logit; null when not valid (not scored).")
    reward: float = Field(description="softplus(score) when valid, else 0.")
    truncated: bool = False
    finish_reason: Optional[str] = None
    completion_tokens: int = 0
    error: Optional[str] = None
    text: Optional[str] = Field(default=None, description="The raw response (with return_candidates).")
    code: Optional[str] = Field(default=None, description="The extracted code (with return_candidates).")


class CodescalerInfo(BaseModel):
    """What best-of-N did for this answer."""

    best_of: int
    seed: int = Field(description="Sample j was drawn with seed + j.")
    reward_model: str
    sampled: int = Field(description="Candidates the generator returned.")
    failed: int = Field(description="Candidates whose generator request failed (not ranked).")
    chosen: list[int] = Field(description="Sample index of each returned choice, in choice order.")
    question: Optional[str] = Field(default=None, description="What the reward model read (with return_candidates).")
    candidates: list[CandidateInfo] = Field(description="Every sample, in sample order.")
    generation_seconds: float
    scoring_seconds: float
    samples_drawn: int = Field(default=0, description="Samples drawn: best_of, or fewer when a stop rule held.")
    stopped_by: Optional[str] = Field(default=None, description=(
        "The adaptive-sampling rule that stopped sampling early (score, margin or agreement); null: none did."))
    samples_saved: int = Field(default=0, description="best_of minus the samples drawn.")
    tokens_saved: int = Field(default=0, description=(
        "Generated tokens the samples not drawn would have cost, estimated from the drawn samples' mean length."))


class ChatResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: Optional[str]


class ChatChoice(BaseModel):
    index: int
    message: ChatResponseMessage
    logprobs: None = None
    finish_reason: Optional[str]


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageInfo
    system_fingerprint: Optional[str] = None
    codescaler: CodescalerInfo


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: None = None
    finish_reason: Optional[str]


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo
    system_fingerprint: Optional[str] = None
    codescaler: CodescalerInfo


# -- streamed answers (server-sent events, `data: {...}` then `data: [DONE]`) --------------------------------------

class DeltaMessage(BaseModel):
    role: Optional[Literal["assistant"]] = None
    content: Optional[str] = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: DeltaMessage
    logprobs: None = None
    finish_reason: Optional[str] = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Optional[UsageInfo] = None
    system_fingerprint: Optional[str] = None
    codescaler: Optional[CodescalerInfo] = None


class CompletionChunkChoice(BaseModel):
    index: int
    text: str
    logprobs: None = None
    finish_reason: Optional[str] = None


class CompletionChunk(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChunkChoice]
    usage: Optional[UsageInfo] = None
    system_fingerprint: Optional[str] = None
    codescaler: Optional[CodescalerInfo] = None


_OpenAIRequest.model_rebuild()
ChatCompletionRequest.model_rebuild()
CompletionRequest.model_rebuild()
