"""Reward scoring with transformers, doing only the work the scores need.

Each text's score equals the model card recipe applied to that text alone (chat template, tokenize, raw logit at
the last token). What is saved: padding (length-sorted batches under a token budget), the problem statement
encoded once per problem (its KV cache is reused for every candidate whose tokens start with it), and nothing
is re-run after a CUDA out-of-memory error (the batch is split and retried).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..backends.loading import REWARD, check_model, is_out_of_memory, load_error, resolve_device, resolve_dtype
from ..errors import ModelLoadError
from .base import (
    DEFAULT_MAX_LENGTH,
    ProgressCallback,
    ScoreRequest,
    ScoreResult,
    ScoringStats,
)
from .texts import RewardTexts

# Largest share of padded tokens a batch may have (padding is compute spent on nothing).
MAX_PADDING = 0.05


@dataclass
class _Item:
    """One text prepared for the model: its token ids, and how many leading ids come from a cached prefix."""

    position: int
    ids: list[int]
    prefix_key: str | None = None
    prefix_length: int = 0

    @property
    def run_length(self) -> int:
        return len(self.ids) - self.prefix_length


class TransformersScorer:
    """Scores (question, code) pairs with an AutoModelForSequenceClassification reward model (one label)."""

    def __init__(self, model: str, *, revision: str | None = None, device: str = "auto", dtype: str = "auto",
                 max_length: int = DEFAULT_MAX_LENGTH, max_batch_tokens: int = 16384, max_batch_size: int = 64,
                 reuse_prefix: bool = True) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        # Our own progress bar is on stderr; transformers' weight-loading bars would interleave with it.
        transformers_logging.disable_progress_bar()
        self.model_name = model
        self.max_length = max_length
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.stats = ScoringStats()
        # Check before loading weights: a causal LM would load with a fresh random head and a noisy report.
        check_model(model, revision, REWARD)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
            self.model = AutoModelForSequenceClassification.from_pretrained(model, revision=revision,
                                                                            dtype=self.dtype)
        except ModelLoadError:
            raise
        except Exception as exc:  # transformers raises OSError, ValueError, hub errors...: all mean "cannot load"
            raise load_error("reward model", model, exc) from exc
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelLoadError(f"reward model '{model}' has no chat template",
                                 "use a reward model whose tokenizer defines chat_template")
        self.texts = RewardTexts(self.tokenizer, max_length)
        self.model.to(self.device).eval()
        backbone = getattr(self.model, getattr(self.model, "base_model_prefix", "model"), None)
        head = getattr(self.model, "score", None)
        # Prefix reuse needs a decoder backbone we can feed a KV cache, and the last-token `score` head that
        # decoder reward models (Qwen, Llama, Mistral...) use. Anything else is scored through the full model.
        self._backbone = backbone if isinstance(head, torch.nn.Module) and backbone is not None else None
        self._head = head if self._backbone is not None else None
        self.reuse_prefix = reuse_prefix and self._backbone is not None

    # -- scoring -------------------------------------------------------------------------------------------------

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressCallback | None = None) -> list[ScoreResult]:
        started = time.perf_counter()
        results: list[ScoreResult | None] = [None] * len(requests)
        prefixes: dict[str, list[int] | None] = {}
        items: list[_Item] = []
        for position, request in enumerate(requests):
            ids, truncated = self.texts.tokenize(request.question, request.code)
            results[position] = ScoreResult(score=None, truncated=truncated, tokens=len(ids))
            item = _Item(position, ids)
            if self.reuse_prefix:
                if request.question not in prefixes:
                    prefixes[request.question] = self.texts.prefix_ids(request.question)
                prefix = prefixes[request.question]
                # Byte-level BPE can merge across the prefix boundary; reuse only where the ids really start
                # with the prefix's ids, so the score stays exact.
                if prefix and len(prefix) < len(ids) and ids[: len(prefix)] == prefix:
                    item.prefix_key, item.prefix_length = request.question, len(prefix)
            items.append(item)

        plain = [item for item in items if item.prefix_key is None]
        self._run_all(plain, None, None, results, progress)
        by_prefix: dict[str, list[_Item]] = {}
        for item in items:
            if item.prefix_key is not None:
                by_prefix.setdefault(item.prefix_key, []).append(item)
        for question, group in by_prefix.items():
            prefix = prefixes[question]
            assert prefix is not None
            if len(group) == 1:  # nothing to share: one plain pass is cheaper than prefix + suffix
                group[0].prefix_key, group[0].prefix_length = None, 0
                self._run_all(group, None, None, results, progress)
                continue
            try:
                cache = self._encode_prefix(prefix)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                # The prefix alone does not fit: score this problem's texts whole, each within the (halving) budget.
                self._release_memory()
                for item in group:
                    item.prefix_key, item.prefix_length = None, 0
                self._run_all(group, None, None, results, progress)
                continue
            self._run_all(group, prefix, cache, results, progress)
            del cache
        self.stats.texts += len(requests)
        self.stats.seconds += time.perf_counter() - started
        return [result for result in results if result is not None]

    def _run_all(self, items: list[_Item], prefix: list[int] | None, cache: Any,
                 results: list[ScoreResult | None], progress: ProgressCallback | None) -> None:
        """Run items in length-sorted batches under the token budget; halve the budget on out-of-memory."""
        ordered = sorted(items, key=lambda item: item.run_length, reverse=True)
        budget = self.max_batch_tokens
        start = 0
        while start < len(ordered):
            batch = self._take_batch(ordered, start, budget)
            try:
                scores = self._forward(batch, prefix, cache)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                self._release_memory()
                if len(batch) > 1:
                    budget = max(1, min(budget, len(batch) * batch[0].run_length) // 2)
                    continue
                result = results[batch[0].position]
                assert result is not None
                result.error = f"out of memory scoring {len(batch[0].ids)} tokens"
                start += 1
                continue
            for item, value in zip(batch, scores):
                result = results[item.position]
                assert result is not None
                result.score = value
            start += len(batch)
            if progress is not None:
                progress(len(batch))

    def _take_batch(self, ordered: list[_Item], start: int, budget: int) -> list[_Item]:
        """The next batch: rows of similar length under the token budget.

        Sorted longest first, so the first item's length is the padded width of the batch. A row joins only while
        the batch stays within the budget and its padding within MAX_PADDING of the padded tokens: one long
        program must not make a batch of short ones run at its length.
        """
        width = max(1, ordered[start].run_length)
        rows, real = 1, width
        while start + rows < len(ordered) and rows < self.max_batch_size and (rows + 1) * width <= budget:
            following = ordered[start + rows].run_length
            if real + following < (1 - MAX_PADDING) * (rows + 1) * width:
                break
            real += following
            rows += 1
        return ordered[start:start + rows]

    def _release_memory(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _encode_prefix(self, prefix: list[int]) -> Any:
        import torch

        with torch.inference_mode():
            input_ids = torch.tensor([prefix], device=self.device)
            output = self._backbone(input_ids=input_ids, use_cache=True)
        self.stats.tokens += len(prefix)
        self.stats.padded_tokens += len(prefix)
        self.stats.prefix_tokens += len(prefix)
        return [(layer.keys, layer.values) for layer in output.past_key_values.layers]

    def _forward(self, batch: list[_Item], prefix: list[int] | None, cache: Any) -> list[float]:
        """Scores of one right-padded batch: the head applied at each row's last real token."""
        import torch
        from transformers import DynamicCache

        rows = len(batch)
        width = max(item.run_length for item in batch)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((rows, width), pad_id, dtype=torch.long)
        lengths = torch.tensor([item.run_length for item in batch])
        for row, item in enumerate(batch):
            input_ids[row, : item.run_length] = torch.tensor(item.ids[item.prefix_length:])
        offset = len(prefix) if prefix is not None else 0
        attention_mask = torch.zeros((rows, offset + width), dtype=torch.long)
        attention_mask[:, :offset] = 1
        attention_mask[:, offset:] = (torch.arange(width)[None, :] < lengths[:, None]).long()
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        last = (lengths - 1).to(self.device)
        with torch.inference_mode():
            if self._backbone is None:
                # Encoder-style classifiers pool internally; right padding with an attention mask is exact.
                logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
                values = logits[:, 0]
            else:
                kwargs: dict[str, Any] = {}
                if cache is not None:
                    kwargs["past_key_values"] = DynamicCache(
                        [(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1)) for keys, values in cache])
                    kwargs["position_ids"] = (offset + torch.arange(width, device=self.device))[None, :].expand(rows, -1)
                hidden = self._backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=cache is not None,
                                        **kwargs).last_hidden_state
                picked = hidden[torch.arange(rows, device=self.device), last]
                values = self._head(picked)[:, 0]
        self.stats.batches += 1
        self.stats.tokens += int(lengths.sum())
        self.stats.padded_tokens += rows * width
        return [float(value) for value in values.float().cpu()]

    def close(self) -> None:
        self.model = None
        self._backbone = None
        self._head = None
        self._release_memory()
