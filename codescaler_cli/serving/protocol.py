"""Request and response bodies of every endpoint, as pydantic models (one place, as in vLLM's protocol module).

Unknown fields are ignored in requests (clients such as OpenRLHF add their own), except inside `/v1/rank`
candidates, which are records: their other fields are passed through to the answer unchanged.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator
from pydantic_core import PydanticCustomError


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- errors (OpenAI's shape) ---------------------------------------------------------------------------------------

class ErrorInfo(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: int


class ErrorResponse(BaseModel):
    error: ErrorInfo


# -- /v1/rank -------------------------------------------------------------------------------------------------------

class RankRequest(_Request):
    question: str = Field(description="The problem statement shown to the reward model.")
    candidates: list[dict[str, Any]] = Field(
        description="Records with `response` (raw model output) or `code` (already extracted); other fields are "
                    "kept.")
    model: Optional[str] = None
    top_k: Optional[int] = Field(default=None, ge=1)
    extraction: Optional[Literal["syntax", "upstream"]] = None


class RankResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[dict[str, Any]]
    usage: "Usage"


class Usage(BaseModel):
    prompt_tokens: int = 0
    total_tokens: int = 0


# -- /v1/score ------------------------------------------------------------------------------------------------------

class ScorePair(_Request):
    question: str
    code: str


class ScoreRequest(_Request):
    pairs: list[ScorePair]
    model: Optional[str] = None


class ScoreItem(BaseModel):
    index: int
    score: Optional[float]
    truncated: bool = False
    error: Optional[str] = None


class ScoreResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[ScoreItem]
    usage: Usage


# -- /v1/rewards: what the Python reward functions call ------------------------------------------------------------

class RewardItemIn(_Request):
    question: str
    response: str


class RewardsRequest(_Request):
    items: list[RewardItemIn]
    model: Optional[str] = None
    extraction: Optional[Literal["syntax", "upstream"]] = None
    raw: Optional[bool] = None


class RewardItem(BaseModel):
    index: int
    reward: float
    score: Optional[float]
    valid: bool
    code: str
    truncated: bool = False
    error: Optional[str] = None


class RewardsResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[RewardItem]
    usage: Usage


# -- /get_reward: OpenRLHF's remote reward model ------------------------------------------------------------------

class GetRewardRequest(_Request):
    query: list[str]
    prompts: Optional[list[str]] = None
    labels: Optional[list[Any]] = None


class GetRewardResponse(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]]


# -- /classify: vLLM's pooling API, as `rank --reward-url` calls it ------------------------------------------------

class ClassifyRequest(_Request):
    model: Optional[str] = None
    input: Union[list[list[StrictInt]], list[StrictInt], list[str], str] = Field(
        description="A text, texts, one text's token ids, or several texts' token ids.")
    use_activation: Optional[bool] = None

    @field_validator("input", mode="before")
    @classmethod
    def _one_kind_of_input(cls, value: Any) -> Any:
        """One of the four shapes, token ids strictly integers (JSON's true and 1.0 are not ids), with an error
        that names the offending item rather than every shape the union tried."""
        if isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise _input_error("must be a text, a list of texts, or token ids (a list of integers, or a list of "
                               "such lists)")
        kinds = set(map(type, value))  # at C speed: a request may hold millions of ids
        if kinds <= {str}:
            return value
        if kinds & {str, list} and kinds != {list}:
            raise _input_error("mixes texts, token ids and lists of token ids: send one kind")
        nested = kinds == {list}
        for i, row in enumerate(value if nested else [value]):
            if set(map(type, row)) <= {int}:
                continue
            j, token = next((j, token) for j, token in enumerate(row) if type(token) is not int)
            at = f"[{i}][{j}]" if nested else f"[{j}]"
            raise _input_error(f"item {at} is {_json_kind(token)}, not a token id (an integer)")
        return value


def _input_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("classify_input", message)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, float):
        return f"the number {value!r}"
    return "null" if value is None else f"a {type(value).__name__}"


class ClassifyItem(BaseModel):
    index: int
    label: str = "LABEL_0"
    probs: list[float]
    num_classes: int = 1
    truncated: bool = False


class ClassifyResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[ClassifyItem]
    usage: dict[str, int]


# -- /v1/models -----------------------------------------------------------------------------------------------------

class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "codescaler"
    root: str
    max_model_len: Optional[int] = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


RankResponse.model_rebuild()
