"""The reward model's input as the model card builds it: the chat rendered by the model's template, tokenized.

Shared by every local scorer so that all of them score exactly the same token ids.
"""

from __future__ import annotations

from typing import Any

from .base import reward_conversation

# Marks where the assistant's content goes when rendering the shared prefix; never appears in real text.
_SENTINEL = "\uffffCODESCALER_CODE\uffff"


class RewardTexts:
    """Renders and tokenizes (question, code) pairs with a reward model's tokenizer, cut at `max_length` tokens."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def render(self, question: str, code: str) -> str:
        """The model card's text: the two-turn chat rendered by the model's own template."""
        return self.tokenizer.apply_chat_template(reward_conversation(question, code), tokenize=False)

    def tokenize(self, question: str, code: str) -> tuple[list[int], bool]:
        """Token ids of one text as the card recipe computes them, cut on the right at max_length; and whether cut."""
        text = self.render(question, code)
        ids = self.tokenizer(text)["input_ids"]
        if len(ids) <= self.max_length:
            return ids, False
        # Let the tokenizer truncate, so special tokens it appends survive exactly as in the card recipe.
        return self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"], True

    def prefix_ids(self, question: str) -> list[int] | None:
        """Token ids of the chat up to the assistant's content, or None if the template hides where that starts."""
        text = self.render(question, _SENTINEL)
        cut = text.find(_SENTINEL)
        if cut <= 0:
            return None
        return self.tokenizer(text[:cut])["input_ids"]
