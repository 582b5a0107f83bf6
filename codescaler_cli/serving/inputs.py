"""What RL frameworks hand a reward function, turned into (question, response) pairs.

OpenRLHF sends `query` (prompt + response, decoded with special tokens) and `prompts` (the templated prompt);
TRL passes prompts and completions as strings or as chat messages. The question the reward model needs is the
last user turn of the prompt (ChatML as in Qwen's templates, or Llama-3 headers); `raw` takes the prompt whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

PROMPT_FORMATS = ("chat", "raw")

# Tokens that end a turn or pad a sequence; they are template markup, never part of a response's content.
END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "</s>", "<pad>", "<|end|>")

_CHATML_USER = re.compile(r"<\|im_start\|>user\n(.*?)(?:<\|im_end\|>|$)", re.DOTALL)
_LLAMA3_USER = re.compile(r"<\|start_header_id\|>user<\|end_header_id\|>\n\n(.*?)(?:<\|eot_id\|>|$)", re.DOTALL)
_ASSISTANT_STARTS = ("<|im_start|>assistant\n", "<|start_header_id|>assistant<|end_header_id|>\n\n")


def question_from_prompt(prompt: str, prompt_format: str = "chat") -> str:
    """The problem statement in a templated prompt: its last user turn (ChatML or Llama-3), else the whole text."""
    if prompt_format == "raw":
        return prompt
    if prompt_format != "chat":
        raise ValueError(f"unknown prompt format '{prompt_format}': use one of {', '.join(PROMPT_FORMATS)}")
    for pattern in (_CHATML_USER, _LLAMA3_USER):
        turns = pattern.findall(prompt)
        if turns:
            return turns[-1].strip()
    return prompt.strip()


def strip_end_tokens(text: str, extra: Iterable[str] = ()) -> str:
    """Remove end-of-turn and padding tokens from the end (and padding from the start) of a decoded text."""
    tokens = tuple(t for t in (*END_TOKENS, *extra) if t)
    changed = True
    while changed:
        changed = False
        stripped = text.rstrip()
        for token in tokens:
            if stripped.endswith(token):
                text, changed = stripped[: -len(token)], True
                break
    return text


def _strip_leading_padding(text: str, extra: Iterable[str]) -> str:
    tokens = tuple(t for t in (*END_TOKENS, *extra) if t)
    changed = True
    while changed:
        changed = False
        for token in tokens:
            if text.startswith(token):
                text, changed = text[len(token):], True
    return text


def response_from_query(query: str, prompt: str | None, extra_tokens: Iterable[str] = ()) -> str:
    """The response part of an OpenRLHF query: the query minus its prompt prefix, without trailing end tokens."""
    extra = tuple(extra_tokens)
    text = _strip_leading_padding(query, extra)
    response: str | None = None
    if prompt:
        prompt = _strip_leading_padding(prompt, extra)
        if text.startswith(prompt):
            response = text[len(prompt):]
        else:
            at = text.find(prompt)
            if at >= 0:
                response = text[at + len(prompt):]
    if response is None:
        # No prompt (older OpenRLHF sends only `query`), or it does not match: the last assistant turn.
        starts = [(text.rfind(marker), marker) for marker in _ASSISTANT_STARTS]
        at, marker = max(starts)
        response = text[at + len(marker):] if at >= 0 else text
    return strip_end_tokens(response, extra)


def openrlhf_pairs(queries: Sequence[str], prompts: Sequence[str] | None, prompt_format: str = "chat",
                   extra_tokens: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(question, response) for each OpenRLHF query; the question comes from the prompt, else from the query."""
    extra = tuple(extra_tokens)
    pairs = []
    for i, query in enumerate(queries):
        prompt = prompts[i] if prompts is not None and i < len(prompts) else None
        response = response_from_query(query, prompt, extra)
        if prompt is None:
            source = query[: len(query) - len(response)] if query.endswith(response) and response else query
            question = question_from_prompt(source, prompt_format)
        else:
            question = question_from_prompt(prompt, prompt_format)
        pairs.append((question, response))
    return pairs


def message_text(value: Any, role: str | None = None) -> str:
    """A string prompt/completion as is; a list of chat messages as the content of the last one with `role`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("content") or "")
    if isinstance(value, (list, tuple)):
        messages = [m for m in value if isinstance(m, dict) and (role is None or m.get("role") == role)]
        if messages:
            return _content_text(messages[-1].get("content"))
        return ""
    raise TypeError(f"expected a string or a list of chat messages, got {type(value).__name__}")


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal-style content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def trl_pairs(prompts: Sequence[Any], completions: Sequence[Any], questions: Sequence[Any] | None = None,
              prompt_format: str = "chat") -> list[tuple[str, str]]:
    """(question, response) for TRL's standard (strings) or conversational (message lists) formats."""
    pairs = []
    for i, completion in enumerate(completions):
        if questions is not None and questions[i] is not None:
            question = str(questions[i])
        else:
            prompt = prompts[i]
            question = (message_text(prompt, "user") if not isinstance(prompt, str)
                        else question_from_prompt(prompt, prompt_format))
        response = message_text(completion, "assistant") if not isinstance(completion, str) else completion
        pairs.append((question, strip_end_tokens(response)))
    return pairs
