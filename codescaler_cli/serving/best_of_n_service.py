"""Best-of-N behind OpenAI's API: `/v1/chat/completions` and `/v1/completions` sample `best_of` candidates,
rank them with the reward model and answer with the best one(s), as a JSON body or as server-sent events.

The reward side is the server's one batching queue (`RewardService`), so OpenAI requests and RL reward requests
are scored together; the generator side is a `CandidateSampler`. A stream starts only once the winner is known
(it cannot be known earlier), so a failure is still an ordinary HTTP error rather than an error inside a 200 stream.

With a stopping rule (the server's `--stop-*` options, or the request's `stop_*` fields) the candidates are sampled
in waves, each scored as it arrives, and sampling stops once the rule holds (see `stopping.py`); candidate j keeps
the seed `seed + j` it has in a request of all `best_of`, so what is drawn is a prefix of that request's samples.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Union

from ..generation.base import Sample
from ..records import Candidate
from ..selection import apply_score, assign_ranks
from ..stopping import StoppingRule, estimated_tokens_saved
from . import openai_protocol as op
from .inputs import question_from_prompt
from .metrics import Metrics
from .sampler import CandidateSampler, Sampled, SamplingRequest
from .service import RequestError, RewardService

# Generator statuses that mean the request itself is wrong (pass them on as 400), not that the generator is down.
CLIENT_FAULT_STATUSES = frozenset({400, 404, 413, 422})
# Sampling defaults when the request leaves them out: upstream CodeScaler's evaluation settings.
DEFAULT_TEMPERATURE = 0.6
DEFAULT_TOP_P = 0.95


@dataclass
class BestOfNSettings:
    """Defaults and limits of the OpenAI endpoints."""

    default_best_of: int = 8
    max_best_of: int = 64
    max_requests: int = 64  # best-of-N requests in flight at most (sampling or scoring); more get 503
    retry_after: int = 1
    stopping: StoppingRule = field(default_factory=StoppingRule)  # adaptive sampling unless a request says otherwise


@dataclass
class _Outcome:
    """A ranked request: the chosen candidates (rank order) and what the `codescaler` object reports."""

    chosen: list[Candidate]
    sampled: Sampled
    info: op.CodescalerInfo
    usage: op.UsageInfo


Answer = Union[op.ChatCompletionResponse, op.CompletionResponse, AsyncIterator[str]]


class BestOfNService:
    """The OpenAI endpoint family: chat completions and completions, streamed or not."""

    def __init__(self, rewards: RewardService, sampler: CandidateSampler, settings: BestOfNSettings,
                 metrics: Metrics | None = None) -> None:
        self.rewards = rewards
        self.sampler = sampler
        self.settings = settings
        self.metrics = metrics
        self.in_flight = 0

    @property
    def model_names(self) -> tuple[str, ...]:
        card = self.sampler.card
        return (card.name, card.root) if card.root != card.name else (card.name,)

    # -- the request's side --------------------------------------------------------------------------------------

    def _check(self, request: op.ChatCompletionRequest | op.CompletionRequest) -> int:
        """Validate what pydantic cannot; returns best_of."""
        if request.model not in self.model_names:
            raise RequestError(f"the model '{request.model}' does not exist; this server serves "
                               f"'{self.sampler.card.name}' (GET /v1/models)", param="model", status=404,
                               type="not_found_error")
        best_of = request.best_of if request.best_of is not None else self.settings.default_best_of
        if best_of > self.settings.max_best_of:
            raise RequestError(f"best_of is {best_of}; this server allows at most {self.settings.max_best_of} "
                               "(--max-best-of)", param="best_of")
        if request.n > best_of:
            raise RequestError(f"n ({request.n}) must not exceed best_of ({best_of}): n returns the top n of "
                               "best_of candidates", param="n")
        return best_of

    @staticmethod
    def _options(request: op.ChatCompletionRequest | op.CompletionRequest) -> dict[str, Any]:
        options: dict[str, Any] = {
            "temperature": DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
            "top_p": DEFAULT_TOP_P if request.top_p is None else request.top_p}
        # Left out when not given, so the generator decides (vLLM: whatever room the context leaves).
        for name in ("max_tokens", "presence_penalty", "frequency_penalty"):
            value = getattr(request, name)
            if value is not None:
                options[name] = value
        stop = request.stop_list()
        if stop:
            options["stop"] = stop
        return options

    @staticmethod
    def question_of(messages: list[op.ChatMessage]) -> str:
        """What the reward model reads: the last user message's text (text parts joined)."""
        for message in reversed(messages):
            if message.role == "user":
                content = message.content
                if isinstance(content, list):
                    return "".join(str(part.get("text", "")) for part in content
                                   if isinstance(part, dict) and part.get("type", "text") == "text")
                return content or ""
        raise RequestError("messages has no user message: the last user message is the problem the reward model "
                           "reads", param="messages")

    # -- best-of-N -----------------------------------------------------------------------------------------------

    async def _best_of_n(self, request: op.ChatCompletionRequest | op.CompletionRequest, *, question: str,
                         sampling: SamplingRequest, endpoint: str) -> _Outcome:
        if self.in_flight >= self.settings.max_requests:
            raise RequestError(f"server busy: {self.in_flight} best-of-N requests are in flight; retry later",
                               status=503, type="server_busy",
                               headers={"Retry-After": str(self.settings.retry_after)})
        self.in_flight += 1
        try:
            return await self._run(request, question=question, sampling=sampling, endpoint=endpoint)
        finally:
            self.in_flight -= 1

    def stopping_of(self, request: op.ChatCompletionRequest | op.CompletionRequest) -> StoppingRule:
        """The server's stopping rule with the request's own fields in its place (a field given as null turns that
        rule off)."""
        given = {rule_field: getattr(request, name) for name, rule_field in op.STOPPING_FIELDS.items()
                 if name in request.model_fields_set}
        if given.get("wave", 0) is None:
            given.pop("wave")
        return dataclasses.replace(self.settings.stopping, **given)

    async def _run(self, request: op.ChatCompletionRequest | op.CompletionRequest, *, question: str,
                   sampling: SamplingRequest, endpoint: str) -> _Outcome:
        stopping = self.stopping_of(request)
        samples: list[Sample] = []
        statuses: list[int | None] = []
        prompt_tokens, generation_seconds, scoring_seconds = 0, 0.0, 0.0
        candidates: list[Candidate] = []
        programs: dict[str, Candidate] = {}  # each program's first candidate: its score is the program's
        stopped_by = None
        for first, size in stopping.waves(sampling.n):
            wave = await self.sampler.sample(dataclasses.replace(sampling, n=size, seed=sampling.seed + first))
            samples.extend(wave.samples)
            statuses.extend(wave.statuses)
            prompt_tokens = max(prompt_tokens, wave.prompt_tokens)
            generation_seconds += wave.seconds
            if all(sample.error is not None for sample in samples):
                break  # nothing sampled yet: the generator is down or refuses the request, so no more waves
            fresh = [Candidate(record={}, source="request", line=first + k, index=first + k, question=question,
                               response=sample.text, given_code=None, group_key=("request", 0))
                     for k, sample in enumerate(wave.samples) if sample.error is None]
            started = time.perf_counter()
            scored = await self.rewards.rank_group(fresh)
            scoring_seconds += time.perf_counter() - started
            for candidate in sorted(scored, key=lambda c: c.index):
                if not candidate.valid:
                    continue
                earlier = programs.setdefault(candidate.dedup_key, candidate)
                if earlier is not candidate:  # a program seen in an earlier wave keeps the score it got there
                    apply_score(candidate, earlier.score)
                    candidate.truncated, candidate.error = earlier.truncated, earlier.error
            candidates.extend(scored)
            # Never stop before there are `n` candidates to return.
            if stopping.adaptive and len(samples) >= request.n:
                stopped_by = stopping.check((c.dedup_key if c.valid else None, c.score) for c in candidates)
                if stopped_by is not None:
                    break
        sampled = Sampled(samples=samples, statuses=statuses, prompt_tokens=prompt_tokens,
                          seconds=generation_seconds)
        if self.metrics is not None:
            self.metrics.generation_seconds.labels(endpoint).observe(sampled.seconds)
            self.metrics.candidates.labels("sampled").inc(len(sampled.samples) - sampled.failed)
            self.metrics.candidates.labels("failed").inc(sampled.failed)
        if sampled.failed == len(sampled.samples):
            raise self._generator_error(sampled)
        ranked = assign_ranks(candidates)
        by_index = {candidate.index: candidate for candidate in ranked}
        infos = []
        for index, sample in enumerate(sampled.samples):
            candidate = by_index.get(index)
            infos.append(op.CandidateInfo(
                index=index, rank=candidate.rank if candidate else None,
                valid=bool(candidate and candidate.valid),
                score=candidate.score if candidate else None,
                reward=candidate.reward if candidate else 0.0,
                truncated=bool(candidate and candidate.truncated), finish_reason=sample.finish_reason,
                completion_tokens=sample.tokens, error=sample.error or (candidate.error if candidate else None),
                text=sample.text if request.return_candidates else None,
                code=candidate.code if request.return_candidates and candidate else None))
        chosen = ranked[: request.n]
        completion_tokens = sum(sample.tokens for sample in sampled.samples)
        usage = op.UsageInfo(prompt_tokens=sampled.prompt_tokens, completion_tokens=completion_tokens,
                             total_tokens=sampled.prompt_tokens + completion_tokens)
        drawn_tokens = [sample.tokens for sample in sampled.samples if sample.error is None]
        info = op.CodescalerInfo(best_of=sampling.n, seed=sampling.seed, reward_model=self.rewards.settings.served_name,
                                 sampled=len(sampled.samples) - sampled.failed, failed=sampled.failed,
                                 chosen=[c.index for c in chosen],
                                 question=question if request.return_candidates else None, candidates=infos,
                                 generation_seconds=round(sampled.seconds, 6),
                                 scoring_seconds=round(scoring_seconds, 6), samples_drawn=len(sampled.samples),
                                 stopped_by=stopped_by, samples_saved=sampling.n - len(sampled.samples),
                                 tokens_saved=estimated_tokens_saved(sampling.n - len(sampled.samples),
                                                                     drawn_tokens))
        return _Outcome(chosen=chosen, sampled=sampled, info=info, usage=usage)

    @staticmethod
    def _generator_error(sampled: Sampled) -> RequestError:
        first = next(sample.error for sample in sampled.samples if sample.error)
        if sampled.statuses and all(status in CLIENT_FAULT_STATUSES for status in sampled.statuses):
            return RequestError(f"the generator rejected the request: {first}", status=400)
        return RequestError(f"all {len(sampled.samples)} candidates failed to generate: {first}", status=502,
                            type="bad_gateway")

    def _seed(self, request: op.ChatCompletionRequest | op.CompletionRequest, best_of: int) -> int:
        # Without a seed, draw one and report it, so any answer can be reproduced.
        return request.seed if request.seed is not None else secrets.randbelow(2**31 - best_of)

    # -- endpoints -----------------------------------------------------------------------------------------------

    async def chat(self, request: op.ChatCompletionRequest, received: float) -> Answer:
        best_of = self._check(request)
        question = self.question_of(request.messages)
        messages = [message.model_dump(exclude_none=True) for message in request.messages]
        sampling = SamplingRequest(n=best_of, seed=self._seed(request, best_of), messages=messages,
                                   options=self._options(request))
        outcome = await self._best_of_n(request, question=question, sampling=sampling,
                                        endpoint="/v1/chat/completions")
        answer_id, created, model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), self.sampler.card.name
        samples = outcome.sampled.samples
        if request.stream:
            return self._stream_chat(request, outcome, answer_id, created, model, received)
        self._first_byte("/v1/chat/completions", False, received)
        return op.ChatCompletionResponse(
            id=answer_id, created=created, model=model, usage=outcome.usage, codescaler=outcome.info,
            choices=[op.ChatChoice(index=i, message=op.ChatResponseMessage(content=samples[c.index].text),
                                   finish_reason=samples[c.index].finish_reason)
                     for i, c in enumerate(outcome.chosen)])

    async def completions(self, request: op.CompletionRequest, received: float) -> Answer:
        best_of = self._check(request)
        sampling = SamplingRequest(n=best_of, seed=self._seed(request, best_of), prompt=request.prompt,
                                   options=self._options(request))
        # A prompt rendered with a chat template (ChatML, Llama 3) is read like /get_reward reads one: its last user
        # turn is the problem; a plain prompt is the problem as it is.
        question = question_from_prompt(request.prompt, self.rewards.settings.prompt_format)
        outcome = await self._best_of_n(request, question=question, sampling=sampling,
                                        endpoint="/v1/completions")
        answer_id, created, model = f"cmpl-{uuid.uuid4().hex}", int(time.time()), self.sampler.card.name
        samples = outcome.sampled.samples
        if request.stream:
            return self._stream_completions(request, outcome, answer_id, created, model, received)
        self._first_byte("/v1/completions", False, received)
        return op.CompletionResponse(
            id=answer_id, created=created, model=model, usage=outcome.usage, codescaler=outcome.info,
            choices=[op.CompletionChoice(index=i, text=samples[c.index].text or "",
                                         finish_reason=samples[c.index].finish_reason)
                     for i, c in enumerate(outcome.chosen)])

    # -- streaming -----------------------------------------------------------------------------------------------

    def _first_byte(self, endpoint: str, stream: bool, received: float) -> None:
        if self.metrics is not None:
            self.metrics.first_byte.labels(endpoint, str(stream).lower()).observe(time.perf_counter() - received)

    def _stream_chat(self, request: op.ChatCompletionRequest, outcome: _Outcome, answer_id: str, created: int,
                           model: str, received: float) -> AsyncIterator[str]:
        samples = outcome.sampled.samples

        def chunk(choices: list[op.ChatChunkChoice], **extra: Any) -> str:
            body = op.ChatCompletionChunk(id=answer_id, created=created, model=model, choices=choices, **extra)
            return _event(body)

        events = []
        for i, candidate in enumerate(outcome.chosen):
            # The whole chosen text in one delta: it exists already, pacing it out as tokens would be theatre.
            events.append(chunk([op.ChatChunkChoice(index=i, delta=op.DeltaMessage(role="assistant", content=""))]))
            events.append(chunk([op.ChatChunkChoice(index=i, delta=op.DeltaMessage(
                content=samples[candidate.index].text))]))
        for i, candidate in enumerate(outcome.chosen):
            last = i == len(outcome.chosen) - 1
            events.append(chunk([op.ChatChunkChoice(index=i, delta=op.DeltaMessage(),
                                                    finish_reason=samples[candidate.index].finish_reason)],
                                codescaler=outcome.info if last else None))
        if request.stream_options is not None and request.stream_options.include_usage:
            events.append(chunk([], usage=outcome.usage))
        return self._events(events, "/v1/chat/completions", received)

    def _stream_completions(self, request: op.CompletionRequest, outcome: _Outcome, answer_id: str,
                                  created: int, model: str, received: float) -> AsyncIterator[str]:
        samples = outcome.sampled.samples

        def chunk(choices: list[op.CompletionChunkChoice], **extra: Any) -> str:
            body = op.CompletionChunk(id=answer_id, created=created, model=model, choices=choices, **extra)
            return _event(body)

        events = [chunk([op.CompletionChunkChoice(index=i, text=samples[c.index].text or "")])
                  for i, c in enumerate(outcome.chosen)]
        for i, candidate in enumerate(outcome.chosen):
            last = i == len(outcome.chosen) - 1
            events.append(chunk([op.CompletionChunkChoice(index=i, text="",
                                                          finish_reason=samples[candidate.index].finish_reason)],
                                codescaler=outcome.info if last else None))
        if request.stream_options is not None and request.stream_options.include_usage:
            events.append(chunk([], usage=outcome.usage))
        return self._events(events, "/v1/completions", received)

    async def _events(self, events: list[str], endpoint: str, received: float) -> AsyncIterator[str]:
        self._first_byte(endpoint, True, received)
        for event in events:
            yield event
        yield "data: [DONE]\n\n"


def _event(chunk: op.ChatCompletionChunk | op.CompletionChunk) -> str:
    """One server-sent event in OpenAI's form: `finish_reason: null` kept, absent delta fields and extras left out."""
    body = chunk.model_dump()
    for key in ("usage", "codescaler", "system_fingerprint"):
        if body.get(key) is None:
            body.pop(key, None)
    for choice in body["choices"]:
        if "delta" in choice:
            choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

