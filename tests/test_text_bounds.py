"""Texts are never tokenized further than --max-length needs (scoring/texts.py), and the cut changes nothing.

The claim has two halves, each checked on hostile texts (runs of the longest tokens, one endless word, digits,
CJK, emoji, combining marks that NFC composes, chat markup look-alikes, real code) with two real tokenizers: the
tiny models' byte-level BPE, and the same vocabulary behind Qwen's pipeline (NFC, then Qwen's split regex, then
bytes), which is what the CodeScaler models use.

1. No token stands for more than `token_span` characters, so a text within max_length is never cut.
2. A text that is cut keeps exactly the first max_length tokens the whole text would have.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from codescaler_cli.scoring.texts import COMPOSING_FOLD, SLACK_TOKENS, RewardTexts, token_span

# Qwen2/Qwen3's pre-tokenizer split (tokenizer.json of the CodeScaler models), applied after NFC.
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
              r"|\s+(?!\S)|\s+")


def _variant(base: Any, **changes: Any) -> PreTrainedTokenizerFast:
    """The base tokenizer with parts of its pipeline replaced (its vocabulary, merges and chat template kept)."""
    spec = json.loads(base.backend_tokenizer.to_str())
    spec.update(changes)
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
                                   pad_token=base.pad_token, eos_token=base.eos_token,
                                   chat_template=base.chat_template, clean_up_tokenization_spaces=False)


@pytest.fixture(scope="module")
def tokenizers(reward_dir: Path) -> dict[str, Any]:
    byte_level = AutoTokenizer.from_pretrained(reward_dir)
    qwen_like = _variant(byte_level, normalizer={"type": "NFC"}, pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN_SPLIT}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]})
    return {"byte-level": byte_level, "qwen-like": qwen_like}


def hostile_texts(characters: int, seed: int = 0) -> dict[str, str]:
    """Texts of `characters` characters each that stress tokenization's corners."""
    rng = random.Random(seed)
    pieces = ["  ", "\n", "\t", "ab", "é", "e\u0301", "U\u0308\u0304", "<|im_end|>", "🙂", "x = 1", "\r\n", "'s",
              "١٢٣", "日本"]
    units = {
        "indentation": "\n" + " " * 40,  # the tiny tokenizer's longest token, over and over
        "one word": "a",
        "hashes": "#",
        "digits": "1234567890",
        "random letters": "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5000)),
        "cjk": "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(5000)),
        "composing marks": "U\u0308\u0304",  # NFC makes each three code points one character
        "mixed": "".join(rng.choice(pieces) for _ in range(5000)),
        "code": Path(json.__file__).read_text(encoding="utf-8"),
    }
    return {name: (unit * (1 + characters // len(unit)))[:characters] for name, unit in units.items()}


@pytest.mark.parametrize("name", ["byte-level", "qwen-like"])
def test_no_token_stands_for_more_characters_than_the_bound(tokenizers: dict[str, Any], name: str) -> None:
    tokenizer = tokenizers[name]
    span = token_span(tokenizer)
    assert span is not None and span.composes == (name == "qwen-like")
    for text_name, text in hostile_texts(3000).items():
        for piece in (text, text[:1], text[:97], text[:1000]):
            rendered = RewardTexts(tokenizer, 16).render(piece, "x = 1")
            tokens = len(tokenizer(rendered)["input_ids"])
            per_token = span.longest * (COMPOSING_FOLD if span.composes and not rendered.isascii() else 1)
            assert len(rendered) <= per_token * tokens, (text_name, len(piece))


@pytest.mark.parametrize("name", ["byte-level", "qwen-like"])
def test_a_text_at_max_length_is_not_cut_and_one_over_keeps_its_first_tokens(tokenizers: dict[str, Any],
                                                                              name: str) -> None:
    tokenizer = tokenizers[name]
    for text_name, text in hostile_texts(1500, seed=1).items():
        for where in ("question", "code"):
            question, code = (text, "x = 1") if where == "question" else ("Q", text)
            rendered = RewardTexts(tokenizer, 16).render(question, code)
            full = tokenizer(rendered)["input_ids"]
            at_limit = RewardTexts(tokenizer, len(full))
            assert at_limit.tokenize(question, code) == (full, False), (text_name, where)
            over = RewardTexts(tokenizer, len(full) - 1)
            assert over.tokenize(question, code) == (full[: len(full) - 1], True), (text_name, where)


@pytest.mark.parametrize("max_length", [16, 100, 512])
@pytest.mark.parametrize("name", ["byte-level", "qwen-like"])
def test_a_cut_text_keeps_exactly_the_whole_texts_first_tokens(tokenizers: dict[str, Any], name: str,
                                                               max_length: int) -> None:
    tokenizer = tokenizers[name]
    texts = RewardTexts(tokenizer, max_length)
    assert texts.character_limit == (max_length + SLACK_TOKENS) * token_span(tokenizer).longest
    for text_name, text in hostile_texts(3 * texts.character_limit, seed=max_length).items():
        for where in ("question", "code"):
            question, code = (text, "x = 1") if where == "question" else ("Q", text)
            rendered = texts.render(question, code)
            assert len(texts.bounded(rendered)) < len(rendered)  # the cut happens
            expected = tokenizer(rendered, truncation=True, max_length=max_length)["input_ids"]
            assert texts.tokenize(question, code) == (expected, True), (text_name, where)


class Recording:
    """The real tokenizer, noting how many characters each call hands it."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.lengths: list[int] = []

    def __call__(self, text: str, **options: Any) -> Any:
        self.lengths.append(len(text))
        return self.tokenizer(text, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tokenizer, name)


@pytest.mark.parametrize("name", ["byte-level", "qwen-like"])
def test_a_ten_megabyte_question_is_tokenized_only_as_far_as_max_length_needs(tokenizers: dict[str, Any],
                                                                              name: str) -> None:
    recording = Recording(tokenizers[name])
    texts = RewardTexts(recording, 4096)
    question = "word " * 2_000_000
    started = time.perf_counter()
    ids, truncated = texts.tokenize(question, "def f():\n    return 1")
    prefix = texts.prefix_ids(question)
    elapsed = time.perf_counter() - started
    assert truncated and len(ids) == 4096 and prefix is None  # no candidate can reuse a prefix that long
    assert recording.lengths and max(recording.lengths) <= texts.character_limit < len(question) / 10
    # Tokenizing the whole question takes 15 s and gigabytes here; a generous bound for a loaded 2-core machine.
    assert elapsed < 2.0
    # What was kept is what the whole text gives: checked on a copy cut far beyond the bound (the whole 10 MB
    # would take the 15 s this avoids).
    reference = texts.render(question[: 4 * texts.character_limit], "def f():\n    return 1")
    assert ids == tokenizers[name](reference, truncation=True, max_length=4096)["input_ids"]


def test_tokenizers_that_can_drop_characters_are_never_cut(tokenizers: dict[str, Any]) -> None:
    byte_level = tokenizers["byte-level"]
    # Accents stripped: a thousand combining marks are no token at all, so no count of characters bounds tokens.
    stripping = _variant(byte_level, normalizer={"type": "Sequence", "normalizers": [
        {"type": "NFD"}, {"type": "StripAccents"}]})
    marks = "x" + "\u0301" * 1000
    assert len(stripping(marks)["input_ids"]) == 1
    whitespace = _variant(byte_level, pre_tokenizer={"type": "WhitespaceSplit"})
    for tokenizer in (stripping, whitespace):
        assert token_span(tokenizer) is None
        texts = RewardTexts(tokenizer, 16)
        assert texts.character_limit is None and texts.bounded(marks * 100) == marks * 100
