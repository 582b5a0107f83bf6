"""Reward functions for RL trainers, backed by a codescaler server (`url=`) or a reward model loaded in-process.

- verl: `compute_score(data_source, solution_str, ground_truth, extra_info)` (the question comes from
  `extra_info["question"]`), `compute_score_batch` for verl's batch reward manager, `compute_score_async`.
- TRL: `trl_reward(...)` returns a callable for `GRPOTrainer(reward_funcs=...)`.
- OpenRLHF: `reward_func(queries, prompts, labels, **kwargs)` for `--remote_rm_url /path/to/file.py`.

Rewards are shaped as upstream trained with them: softplus(raw score) for valid code, 0 when there is none
(`raw=True` gives the raw logit, still 0 without code). Module-level functions read their settings from keyword
arguments (verl's `reward_kwargs`) or the environment: CODESCALER_REWARD_URL, CODESCALER_REWARD_MODEL,
CODESCALER_EXTRACTION (syntax|upstream), CODESCALER_RAW=1, CODESCALER_API_KEY.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BackendError, UsageError
from ..extraction import EXTRACTION_MODES
from ..scoring.base import DEFAULT_MAX_LENGTH, DEFAULT_REWARD_MODEL
from ..serving.inputs import PROMPT_FORMATS, openrlhf_pairs, trl_pairs

# 503 (queue full) answers are retried after Retry-After, this many times.
BUSY_RETRIES = 20


@dataclass
class Reward:
    """One response's reward: shaped `reward`, raw `score` (None without valid code), the code scored."""

    reward: float
    score: float | None
    valid: bool
    code: str
    truncated: bool = False
    error: str | None = None

    def as_verl(self) -> dict[str, Any]:
        """verl's dict form: `score` is the reward; the other keys are logged as extra info (numbers only)."""
        return {"score": self.reward, "raw_score": self.score if self.score is not None else 0.0,
                "valid": float(self.valid), "truncated": float(self.truncated)}


class CodeScalerReward:
    """Scores (question, response) pairs: on a codescaler server (`url`) or with a model loaded here (`model`).

    In-process, a batcher thread owns the model, so calls from many threads or coroutines are batched together
    exactly as the server does. Thread-safe; `close()` releases the model or the connection.
    """

    def __init__(self, url: str | None = None, model: str | None = None, *, extraction: str = "syntax",
                 raw: bool = False, api_key: str | None = None, timeout: float = 600.0,
                 device: str = "auto", dtype: str = "auto", max_length: int = DEFAULT_MAX_LENGTH,
                 max_batch_tokens: int = 16384, batch_wait_ms: float = 5.0, scorer: str = "transformers") -> None:
        if extraction not in EXTRACTION_MODES:
            raise UsageError(f"unknown extraction '{extraction}'", f"use one of: {', '.join(EXTRACTION_MODES)}")
        self.url = url.rstrip("/") if url else None
        self.model = model or DEFAULT_REWARD_MODEL
        self.extraction = extraction
        self.raw = raw
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._batcher: Any = None
        self._client: Any = None
        if self.url:
            import httpx

            self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0), headers=self._headers)
        else:
            from ..scoring.config import ScorerConfig
            from ..serving.batcher import Batcher
            from ..serving.scorer import open_serving_scorer

            scorer_object = open_serving_scorer(ScorerConfig(model=self.model, kind=scorer, device=device, dtype=dtype,
                                                             max_length=max_length, max_batch_tokens=max_batch_tokens))
            self._batcher = Batcher(scorer_object, max_batch_tokens=max_batch_tokens, batch_wait_ms=batch_wait_ms)

    # -- scoring -------------------------------------------------------------------------------------------------

    def score(self, questions: Sequence[str], responses: Sequence[str]) -> list[Reward]:
        """Rewards of each response to its question, in order."""
        _check_lengths(questions, responses)
        if not responses:
            return []
        if self._client is not None:
            return self._parse(self._post_with_retries(self._payload(questions, responses)))
        return self._from_candidates(self._batcher.submit(self._job(questions, responses)).result(), len(responses))

    async def ascore(self, questions: Sequence[str], responses: Sequence[str]) -> list[Reward]:
        """`score` for asyncio callers: concurrent calls are batched together (on the server or in-process)."""
        _check_lengths(questions, responses)
        if not responses:
            return []
        if self._client is not None:
            import httpx

            payload = self._payload(questions, responses)
            async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, connect=10.0),
                                         headers=self._headers) as client:
                for attempt in range(BUSY_RETRIES + 1):
                    response = await client.post(self.url + "/v1/rewards", json=payload)
                    delay = _busy_delay(response, attempt)
                    if delay is None:
                        return self._parse(_json(response, self.url))
                    await asyncio.sleep(delay)
            raise BackendError(f"reward server {self.url} stayed busy", "add servers or lower the request rate")
        future = self._batcher.submit(self._job(questions, responses))
        return self._from_candidates(await asyncio.wrap_future(future), len(responses))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._batcher is not None:
            self._batcher.close()
            self._batcher.scorer.close()

    # -- helpers -------------------------------------------------------------------------------------------------

    def _payload(self, questions: Sequence[str], responses: Sequence[str]) -> dict[str, Any]:
        return {"items": [{"question": q, "response": r} for q, r in zip(questions, responses)],
                "extraction": self.extraction, "raw": self.raw}

    def _post_with_retries(self, payload: dict[str, Any]) -> Any:
        import httpx

        for attempt in range(BUSY_RETRIES + 1):
            try:
                response = self._client.post(self.url + "/v1/rewards", json=payload)
            except httpx.HTTPError as exc:
                raise BackendError(f"reward server {self.url} is not reachable: {exc}",
                                   f"start it with `codescaler serve`, and check the URL ({self.url}/health)") from None
            delay = _busy_delay(response, attempt)
            if delay is None:
                return _json(response, self.url)
            time.sleep(delay)
        raise BackendError(f"reward server {self.url} stayed busy", "add servers or lower the request rate")

    def _parse(self, answer: Any) -> list[Reward]:
        try:
            items = sorted(answer["data"], key=lambda item: item["index"])
            return [Reward(reward=float(i["reward"]), score=i["score"], valid=bool(i["valid"]), code=i["code"],
                           truncated=bool(i.get("truncated")), error=i.get("error")) for i in items]
        except (KeyError, TypeError, ValueError):
            raise BackendError(f"unexpected answer from {self.url}/v1/rewards: {str(answer)[:200]}",
                               "is it a codescaler server?") from None

    def _job(self, questions: Sequence[str], responses: Sequence[str]) -> Any:
        from ..serving.batcher import groups_job
        from ..serving.service import pair_candidates

        return groups_job(pair_candidates(list(zip(questions, responses))), self.extraction)

    def _from_candidates(self, groups: Any, count: int) -> list[Reward]:
        from ..serving.service import by_index, shaped

        return [Reward(reward=shaped(c, self.raw), score=c.score, valid=c.valid, code=c.code, truncated=c.truncated,
                       error=c.error) for c in by_index(groups, count)]


def _check_lengths(questions: Sequence[str], responses: Sequence[str]) -> None:
    if len(questions) != len(responses):
        raise ValueError(f"{len(questions)} questions but {len(responses)} responses")


def _busy_delay(response: Any, attempt: int) -> float | None:
    """Seconds to wait before retrying a 503 (queue full), or None when the answer is final."""
    if response.status_code != 503 or attempt >= BUSY_RETRIES:
        return None
    try:
        return min(30.0, max(0.05, float(response.headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


def _json(response: Any, url: str | None) -> Any:
    if response.status_code >= 400:
        raise BackendError(f"reward server {url} answered HTTP {response.status_code}: {response.text[:300]}")
    return response.json()


# -- shared default instances (verl and OpenRLHF call plain functions) -----------------------------------------------

_instances: dict[tuple[Any, ...], CodeScalerReward] = {}
_instances_lock = threading.Lock()


def get_reward_model(url: str | None = None, model: str | None = None, extraction: str | None = None,
                     raw: bool | None = None, api_key: str | None = None, **options: Any) -> CodeScalerReward:
    """A process-wide CodeScalerReward for these settings (arguments, else CODESCALER_* environment variables)."""
    url = url or os.environ.get("CODESCALER_REWARD_URL") or None
    model = model or os.environ.get("CODESCALER_REWARD_MODEL") or DEFAULT_REWARD_MODEL
    extraction = extraction or os.environ.get("CODESCALER_EXTRACTION") or "syntax"
    if raw is None:
        raw = os.environ.get("CODESCALER_RAW", "").strip().lower() in {"1", "true", "yes", "on"}
    api_key = api_key or os.environ.get("CODESCALER_API_KEY") or None
    key = (url, model if not url else None, extraction, raw, api_key, tuple(sorted(options.items())))
    with _instances_lock:
        if key not in _instances:
            _instances[key] = CodeScalerReward(url, model, extraction=extraction, raw=raw, api_key=api_key, **options)
        return _instances[key]


_SETTINGS = ("url", "model", "extraction", "raw", "api_key", "timeout", "device", "dtype", "max_length",
             "max_batch_tokens", "batch_wait_ms", "scorer")


def _split_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {name: kwargs[name] for name in _SETTINGS if name in kwargs}


def _question(extra_info: Any, key: str = "question") -> str:
    if isinstance(extra_info, dict) and isinstance(extra_info.get(key), str):
        return extra_info[key]
    raise ValueError(f"codescaler needs the problem statement in extra_info['{key}']: add it when preparing the "
                     "dataset (see \"Reward functions for RL trainers\" in docs/serve.md)")


# -- verl -----------------------------------------------------------------------------------------------------------

def compute_score(data_source: Any, solution_str: str, ground_truth: Any = None, extra_info: dict | None = None,
                  **kwargs: Any) -> dict[str, Any]:
    """verl's custom reward function: `{"score": reward, "raw_score", "valid", "truncated"}` for one response."""
    reward = get_reward_model(**_split_settings(kwargs)).score([_question(extra_info)], [solution_str])[0]
    return reward.as_verl()


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[str], ground_truths: Sequence[Any],
                        extra_infos: Sequence[dict | None], **kwargs: Any) -> list[dict[str, Any]]:
    """verl's batch reward manager (`reward_model.reward_manager=batch`): one dict per response, in order."""
    questions = [_question(info) for info in extra_infos]
    rewards = get_reward_model(**_split_settings(kwargs)).score(questions, list(solution_strs))
    return [reward.as_verl() for reward in rewards]


async def compute_score_async(data_source: Any, solution_str: str, ground_truth: Any = None,
                              extra_info: dict | None = None, **kwargs: Any) -> dict[str, Any]:
    """`compute_score` as a coroutine, for verl's asynchronous reward loop: concurrent calls batch together."""
    rewards = await get_reward_model(**_split_settings(kwargs)).ascore([_question(extra_info)], [solution_str])
    return rewards[0].as_verl()


# -- TRL ------------------------------------------------------------------------------------------------------------

class TRLReward:
    """A reward function for `trl.GRPOTrainer(reward_funcs=...)`: `(prompts, completions, **kwargs) -> list[float]`.

    Works with TRL's standard format (strings) and conversational format (lists of message dicts). The question
    is the dataset's `question_column` when the batch has it, else the prompt's last user turn.
    """

    def __init__(self, reward: CodeScalerReward, *, question_column: str = "question", prompt_format: str = "chat",
                 name: str = "codescaler") -> None:
        if prompt_format not in PROMPT_FORMATS:
            raise UsageError(f"unknown prompt format '{prompt_format}'", f"use one of: {', '.join(PROMPT_FORMATS)}")
        self.reward = reward
        self.question_column = question_column
        self.prompt_format = prompt_format
        self.__name__ = name  # TRL names the reward's logged metrics after it

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        pairs = trl_pairs(prompts, completions, kwargs.get(self.question_column), self.prompt_format)
        rewards = self.reward.score([q for q, _ in pairs], [r for _, r in pairs])
        return [reward.reward for reward in rewards]


def trl_reward(url: str | None = None, model: str | None = None, *, question_column: str = "question",
               prompt_format: str = "chat", name: str = "codescaler", **options: Any) -> TRLReward:
    """The TRL reward function, scoring on a server (`url`) or in-process (`model`)."""
    return TRLReward(get_reward_model(url, model, **options), question_column=question_column,
                     prompt_format=prompt_format, name=name)


# -- OpenRLHF -------------------------------------------------------------------------------------------------------

def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any] | None = None,
                **kwargs: Any) -> dict[str, Any]:
    """OpenRLHF's python-file reward (`--remote_rm_url file.py` whose `reward_func` is this one).

    Returns `{"rewards", "scores", "extra_logs"}` as torch tensors, like `/get_reward` returns them as lists.
    Settings come from CODESCALER_* environment variables (OpenRLHF passes no options).
    """
    import torch

    prompt_format = kwargs.pop("prompt_format", None) or os.environ.get("CODESCALER_PROMPT_FORMAT") or "chat"
    model = get_reward_model(**_split_settings(kwargs))
    pairs = openrlhf_pairs(list(queries), list(prompts) if prompts is not None else None, prompt_format)
    rewards = model.score([q for q, _ in pairs], [r for _, r in pairs])
    return {
        "rewards": torch.tensor([r.reward for r in rewards], dtype=torch.float32),
        "scores": torch.tensor([r.score if r.score is not None else 0.0 for r in rewards], dtype=torch.float32),
        "extra_logs": {"valid": torch.tensor([float(r.valid) for r in rewards], dtype=torch.float32),
                       "truncated": torch.tensor([float(r.truncated) for r in rewards], dtype=torch.float32)},
    }
