"""The reward model's input as the model card builds it: the chat rendered by the model's template, tokenized.

Shared by every local scorer so that all of them score exactly the same token ids.

A text is never tokenized further than `max_length` needs. No token stands for more than `longest` characters,
its tokenizer's longest vocabulary entry (byte-level tokens spell one byte per character, and a character is at
least one byte), so a rendered chat of more than `max_length × longest` characters cannot fit in `max_length`
tokens: texts are cut at `character_limit` = (`max_length` + SLACK_TOKENS) × `longest` characters before they are
tokenized (twice that when an NFC/NFKC normaliser may compose the text's characters, which needs non-ASCII).

- Texts within `max_length` are never cut, so their ids (and scores) are exactly the card recipe's.
- A text that is cut was over `max_length` anyway (it is scored truncated, as before), and its cut prefix still
  holds at least `max_length` + SLACK_TOKENS tokens; the first `max_length` of them are the whole text's, because
  byte-level BPE tokenizes each pre-token piece (a word, a run of spaces) on its own: only the piece the cut
  falls in can change, and it lies at least SLACK_TOKENS tokens beyond what is kept.

Tokenizers that can drop characters (a normaliser that strips accents, a pre-tokenizer that removes whitespace, a
fused unknown token) have no such bound; their texts are tokenized whole, as the card recipe does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .base import reward_conversation

# Marks where the assistant's content goes when rendering the shared prefix; never appears in real text.
_SENTINEL = "\uffffCODESCALER_CODE\uffff"

# Tokens kept between the last token scored and the cut, so the cut never changes a token that is scored.
SLACK_TOKENS = 64

# Normalisers that never shorten a text, and those that may compose characters (NFC/NFKC fold at most 1.5 code
# points into each UTF-8 byte of what they produce, U+01D5 'Ǖ' from U, U+0308 and U+0304; checked over every code
# point: so twice the characters per token, and only where a text is not ASCII).
_KEEPING_NORMALIZERS = {"NFD", "NFKD", "Lowercase", "Prepend", "ByteLevel"}
_COMPOSING_NORMALIZERS = {"NFC", "NFKC"}
COMPOSING_FOLD = 2
# Pre-tokenizers that keep every character (those that remove whitespace or split on `Removed` do not).
_KEEPING_PRE_TOKENIZERS = {"ByteLevel", "Metaspace", "Split", "Digits", "Punctuation", "UnicodeScripts"}


@dataclass(frozen=True)
class TokenSpan:
    """How much input text one token can stand for: at most `longest` characters, or COMPOSING_FOLD times that
    in a text that is not ASCII when the normaliser `composes` characters (NFC, NFKC)."""

    longest: int
    composes: bool = False


def token_span(tokenizer: Any) -> TokenSpan | None:
    """The most characters of input text one token can stand for, or None when no bound exists (or is known).

    For a fast BPE tokenizer: its longest token (added tokens such as the chat markup count too), and whether its
    normaliser composes characters.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    spec = json.loads(backend.to_str())
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or model.get("fuse_unk") or not isinstance(model.get("vocab"), dict):
        return None
    normalizer = _normalizer_effect(spec.get("normalizer"))
    if normalizer is None or not _keeps_characters(spec.get("pre_tokenizer")):
        return None
    longest = max((len(token) for token in model["vocab"]), default=1)
    longest = max([longest, *(len(added.get("content", "")) for added in spec.get("added_tokens") or [])])
    return TokenSpan(max(1, longest), composes=normalizer == "composes")


def _normalizer_effect(normalizer: dict[str, Any] | None) -> str | None:
    """"keeps" (never shortens a text), "composes" (NFC/NFKC), or None (may delete: no bound)."""
    if normalizer is None:
        return "keeps"
    kind = normalizer.get("type")
    if kind == "Sequence":
        effects = [_normalizer_effect(part) for part in normalizer.get("normalizers") or []]
        if None in effects:
            return None
        return "composes" if "composes" in effects else "keeps"
    if kind == "Replace":
        # Llama's " " -> "▁" keeps the length; a replacement that is shorter than what it replaces has no bound.
        pattern = (normalizer.get("pattern") or {}).get("String")
        return "keeps" if pattern and len(normalizer.get("content") or "") >= len(pattern) else None
    if kind in _COMPOSING_NORMALIZERS:
        return "composes"
    return "keeps" if kind in _KEEPING_NORMALIZERS else None


def _keeps_characters(pre_tokenizer: dict[str, Any] | None) -> bool:
    if pre_tokenizer is None:
        return True
    kind = pre_tokenizer.get("type")
    if kind == "Sequence":
        return all(_keeps_characters(part) for part in pre_tokenizer.get("pretokenizers") or [])
    return kind in _KEEPING_PRE_TOKENIZERS and pre_tokenizer.get("behavior") != "Removed"


class RewardTexts:
    """Renders and tokenizes (question, code) pairs with a reward model's tokenizer, cut at `max_length` tokens."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.span = token_span(tokenizer)
        # None: this tokenizer may drop characters, so no length of text bounds its tokens; texts go whole.
        self.character_limit = (max_length + SLACK_TOKENS) * self.span.longest if self.span is not None else None

    def bounded(self, text: str) -> str:
        """`text`, or its first characters: as many as its first `max_length` tokens (and SLACK_TOKENS more) can
        stand for."""
        limit = self.character_limit
        if limit is None or len(text) <= limit:
            return text
        assert self.span is not None
        # ASCII composes with nothing before the cut (a combining mark after it joins at most its last character).
        if self.span.composes and not text[:limit].isascii():
            limit *= COMPOSING_FOLD
        return text[:limit]

    def render(self, question: str, code: str) -> str:
        """The model card's text: the two-turn chat rendered by the model's own template."""
        return self.tokenizer.apply_chat_template(reward_conversation(question, code), tokenize=False)

    def tokenize(self, question: str, code: str) -> tuple[list[int], bool]:
        """Token ids of one text as the card recipe computes them, cut on the right at max_length; and whether cut."""
        text = self.render(question, code)
        bounded = self.bounded(text)
        if len(bounded) == len(text):
            ids = self.tokenizer(text)["input_ids"]
            if len(ids) <= self.max_length:
                return ids, False
        # Over max_length (a cut text always is). The tokenizer truncates, so special tokens it appends survive
        # exactly as in the card recipe.
        return self.tokenizer(bounded, truncation=True, max_length=self.max_length)["input_ids"], True

    def prefix_ids(self, question: str) -> list[int] | None:
        """Token ids of the chat up to the assistant's content, or None if the template hides where that starts
        (or the prefix alone is longer than max_length, so no text can reuse it)."""
        text = self.render(question, _SENTINEL)
        cut = text.find(_SENTINEL)
        if cut <= 0:
            return None
        prefix = text[:cut]
        if len(self.bounded(prefix)) < len(prefix):  # more than max_length tokens: no text can start with it
            return None
        return self.tokenizer(prefix)["input_ids"]
