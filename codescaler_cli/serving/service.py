"""The serving logic behind each endpoint family, without HTTP: request models in, response models out.

Every family turns its request into one batcher job and awaits it, so concurrent requests of any kind are
scored together. Errors a client can fix raise `RequestError` (HTTP 4xx with an OpenAI-shaped body).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..records import Candidate, FieldNames, candidate_from_record, group_candidates
from ..scoring.base import DEFAULT_MAX_LENGTH, ScoreRequest
from ..selection import top_k as keep_top_k
from . import protocol
from .batcher import Batcher, Job, QueueFull, ShuttingDown, groups_job, ids_job, pairs_job
from .inputs import openrlhf_pairs

if TYPE_CHECKING:
    from .sampler import GeneratorCard


@dataclass
class ServeSettings:
    """What the served endpoints answer with: model names, defaults for extraction and shaping."""

    model: str
    served_name: str
    max_length: int = DEFAULT_MAX_LENGTH
    extraction: str = "syntax"
    raw: bool = False
    prompt_format: str = "chat"
    retry_after: int = 1
    end_tokens: tuple[str, ...] = ()
    vocab_size: int | None = None
    # The generator behind the OpenAI endpoints (`--generator-url`/`-m`), listed first by /v1/models so clients
    # that take the first model get it. The reward endpoints accept its name too: `rank --reward-url` sends the
    # first listed model, and this server has one reward model whatever the name says.
    generator: GeneratorCard | None = None


class RequestError(Exception):
    """A request the server will not run: HTTP status, OpenAI-shaped error fields."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400,
                 type: str = "invalid_request_error", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.type = type
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return protocol.ErrorResponse(error=protocol.ErrorInfo(message=self.message, type=self.type,
                                                               param=self.param, code=self.status)).model_dump()


def pair_candidates(pairs: Sequence[tuple[str, str]]) -> list[list[Candidate]]:
    """One candidate per (question, response) pair, grouped by question (so duplicates share one score)."""
    candidates = [Candidate(record={}, source="request", line=i, index=i, question=question, response=response,
                            given_code=None, group_key=("question", question))
                  for i, (question, response) in enumerate(pairs)]
    return group_candidates(candidates)


def by_index(groups: Sequence[Sequence[Candidate]], count: int) -> list[Candidate]:
    """Scored candidates back in request order."""
    ordered: list[Candidate | None] = [None] * count
    for group in groups:
        for candidate in group:
            ordered[candidate.index] = candidate
    assert all(c is not None for c in ordered)
    return ordered  # type: ignore[return-value]


def shaped(candidate: Candidate, raw: bool) -> float:
    """The reward an RL trainer gets: softplus(score) (or the raw score with `raw`) when valid, else 0."""
    if candidate.score is None:
        return 0.0
    return float(candidate.score) if raw else float(candidate.reward)


class RewardService:
    """The endpoint families (rank, score, rewards, OpenRLHF, vLLM-style classify, models) over one batcher."""

    def __init__(self, batcher: Batcher, settings: ServeSettings) -> None:
        self.batcher = batcher
        self.settings = settings
        self.created = int(time.time())

    # -- plumbing ------------------------------------------------------------------------------------------------

    async def _run(self, job: Job) -> Any:
        try:
            future = self.batcher.submit(job)
        except QueueFull as exc:
            raise RequestError(f"server busy: {exc}; retry later", status=503, type="server_busy",
                               headers={"Retry-After": str(self.settings.retry_after)}) from None
        except ShuttingDown as exc:
            raise RequestError(str(exc), status=503, type="server_unavailable",
                               headers={"Retry-After": str(self.settings.retry_after)}) from None
        return await asyncio.wrap_future(future)

    def check_model(self, model: str | None) -> None:
        generator = self.settings.generator
        names = (self.settings.served_name, self.settings.model,
                 *((generator.name, generator.root) if generator is not None else ()))
        if model is not None and model not in names:
            raise RequestError(f"the model '{model}' does not exist; this server serves '{self.settings.served_name}'",
                               param="model", status=404, type="not_found_error")

    async def rank_group(self, candidates: list[Candidate], extraction: str | None = None) -> list[Candidate]:
        """Extract, dedup, score and rank one problem's candidates through the shared queue; rank order."""
        if not candidates:
            return []
        ranked = await self._run(groups_job([candidates], extraction or self.settings.extraction))
        return ranked[0]

    async def score_pairs(self, pairs: Sequence[tuple[str, str]], extraction: str | None) -> list[Candidate]:
        """Extract, dedup and score (question, response) pairs; candidates in request order."""
        groups = pair_candidates(pairs)
        ranked = await self._run(groups_job(groups, extraction or self.settings.extraction))
        return by_index(ranked, len(pairs))

    # -- endpoint families ---------------------------------------------------------------------------------------

    async def rank(self, request: protocol.RankRequest) -> protocol.RankResponse:
        self.check_model(request.model)
        fields = FieldNames()
        candidates = []
        for i, record in enumerate(request.candidates):
            record = dict(record)
            try:
                candidate = candidate_from_record({**record, "question": request.question}, "candidates", i,
                                                  len(candidates), fields, require_question=True)
            except InputError as exc:
                message = exc.message.split(": ", 1)[-1]
                raise RequestError(f"candidates[{i}]: {message}", param=f"candidates[{i}]") from None
            candidate.record = record
            candidate.group_key = ("request", 0)
            candidates.append(candidate)
        groups = [candidates] if candidates else []
        ranked = await self._run(groups_job(groups, request.extraction or self.settings.extraction)) if groups else []
        data = []
        for group in ranked:
            for candidate in keep_top_k(group, request.top_k):
                record = candidate.scored_record()
                record["index"] = candidate.index
                data.append(record)
        return protocol.RankResponse(model=self.settings.served_name, data=data,
                                     usage=_usage(c for group in ranked for c in group))

    async def score(self, request: protocol.ScoreRequest) -> protocol.ScoreResponse:
        self.check_model(request.model)
        pairs = [ScoreRequest(question=p.question, code=p.code) for p in request.pairs]
        results = await self._run(pairs_job(pairs)) if pairs else []
        tokens = sum(r.tokens for r in results)
        return protocol.ScoreResponse(
            model=self.settings.served_name,
            data=[protocol.ScoreItem(index=i, score=_finite(r.score), truncated=r.truncated, error=r.error)
                  for i, r in enumerate(results)],
            usage=protocol.Usage(prompt_tokens=tokens, total_tokens=tokens))

    async def rewards(self, request: protocol.RewardsRequest) -> protocol.RewardsResponse:
        self.check_model(request.model)
        raw = self.settings.raw if request.raw is None else request.raw
        scored = await self.score_pairs([(i.question, i.response) for i in request.items], request.extraction)
        return protocol.RewardsResponse(
            model=self.settings.served_name,
            data=[protocol.RewardItem(index=c.index, reward=shaped(c, raw), score=_finite(c.score), valid=c.valid,
                                      code=c.code, truncated=c.truncated, error=c.error) for c in scored],
            usage=_usage(scored))

    async def get_reward(self, request: protocol.GetRewardRequest) -> protocol.GetRewardResponse:
        if request.prompts is not None and len(request.prompts) != len(request.query):
            raise RequestError(f"'prompts' has {len(request.prompts)} items but 'query' has {len(request.query)}",
                               param="prompts")
        pairs = openrlhf_pairs(request.query, request.prompts, self.settings.prompt_format, self.settings.end_tokens)
        scored = await self.score_pairs(pairs, None)
        return protocol.GetRewardResponse(
            rewards=[shaped(c, self.settings.raw) for c in scored],
            scores=[float(c.score) if c.score is not None else 0.0 for c in scored],
            extra_logs={"valid": [float(c.valid) for c in scored],
                        "truncated": [float(c.truncated) for c in scored],
                        "scored": [float(c.score is not None) for c in scored]})

    async def classify(self, request: protocol.ClassifyRequest) -> protocol.ClassifyResponse:
        self.check_model(request.model)
        inputs: list[Any] = request.input if isinstance(request.input, list) else [request.input]
        if inputs and all(isinstance(x, int) for x in inputs):
            inputs = [inputs]  # one pre-tokenized text
        if not inputs:
            raise RequestError("'input' is empty", param="input")
        vocab = self.settings.vocab_size
        for i, item in enumerate(inputs):
            if isinstance(item, list) and vocab and any(not 0 <= token < vocab for token in item):
                raise RequestError(f"input[{i}]: token ids must be in [0, {vocab})", param=f"input[{i}]")
        results = await self._run(ids_job(list(inputs)))
        failed = [(i, r) for i, r in enumerate(results) if r.score is None]
        if failed:
            index, result = failed[0]
            raise RequestError(f"input[{index}]: {result.error or 'could not be scored'}", param=f"input[{index}]",
                               status=400 if "empty" in (result.error or "") else 500,
                               type="invalid_request_error" if "empty" in (result.error or "") else "server_error")
        activate = request.use_activation is not False
        tokens = sum(r.tokens for r in results)
        return protocol.ClassifyResponse(
            id=f"classify-{uuid.uuid4().hex}", created=int(time.time()), model=self.settings.served_name,
            data=[protocol.ClassifyItem(index=i, probs=[_sigmoid(r.score) if activate else r.score],
                                        truncated=r.truncated) for i, r in enumerate(results)],
            usage={"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0})

    def models(self) -> protocol.ModelList:
        cards = [protocol.ModelCard(id=self.settings.served_name, created=self.created, root=self.settings.model,
                                    max_model_len=self.settings.max_length)]
        generator = self.settings.generator
        if generator is not None:
            cards.insert(0, protocol.ModelCard(id=generator.name, created=self.created, root=generator.root,
                                               max_model_len=generator.max_model_len))
        return protocol.ModelList(data=cards)


def _usage(candidates: Iterable[Candidate]) -> protocol.Usage:
    """Tokens the reward model ran for a request: each distinct valid program once, nothing for the invalid ones."""
    tokens = sum(c.tokens for c in candidates)
    return protocol.Usage(prompt_tokens=tokens, total_tokens=tokens)


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value)) if value >= 0 else math.exp(value) / (1.0 + math.exp(value))
