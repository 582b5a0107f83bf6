"""Build tiny, randomly initialised Qwen3 models (and a matching tokenizer) locally.

The test suite and the benchmark cannot reach the Hugging Face hub, so every model
they use is made here, from nothing:

* a byte-level BPE tokenizer trained with the ``tokenizers`` library on a small,
  deterministic, sorted selection of the running interpreter's standard-library
  ``.py`` sources, with Qwen-style special tokens (``<|endoftext|>`` = pad,
  ``<|im_start|>``, ``<|im_end|>`` = eos) and a Qwen-style chat template;
* a reward model: ``Qwen3ForSequenceClassification`` with ``num_labels=1``, whose
  ``score`` head is calibrated so that different texts get clearly different
  scores (random init alone gives scores that barely differ);
* a generator: ``Qwen3ForCausalLM`` plus a ``generation_config.json``;
* a "coder" generator: the same architecture, briefly trained (a few seconds, on
  CPU, deterministically) so that whatever the user asks it answers with one of
  the few memorised :data:`CODER_RESPONSES` and then ``<|im_end|>``, so best-of-N
  tests see real code (valid, wrong, duplicate up to a comment) and plain text.

Each model directory holds the model (safetensors, float32), its config and the
tokenizer, so ``AutoTokenizer`` / ``AutoModelFor...`` and vLLM can load it.
A marker file (``MARKER_NAME``) is written last; :func:`build_tiny_models` reuses a
directory only when that marker is there and records the same build parameters.

Command line, to build models by hand::

    python tests/tiny_models.py OUT_DIR [--hidden-size 512 --layers 8 --heads 8 \
        --kv-heads 4 --head-dim 64 --vocab-size 2048 --which both|reward|generator|coder|all]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import random
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3ForSequenceClassification,
)

__all__ = [
    "CHAT_TEMPLATE",
    "CODER_RESPONSES",
    "TESTER_RESPONSES",
    "EOS_TOKEN",
    "IM_START_TOKEN",
    "MARKER_NAME",
    "PAD_TOKEN",
    "SPECIAL_TOKENS",
    "build_coder_generator",
    "build_tester_generator",
    "build_generator",
    "build_reward_model",
    "build_tiny_models",
    "build_tokenizer",
    "main",
]

PAD_TOKEN = "<|endoftext|>"
IM_START_TOKEN = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, IM_START_TOKEN, EOS_TOKEN)

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: Written last into a finished model directory (JSON of the build parameters).
MARKER_NAME = ".tiny_model_complete"

#: Upper bound on the amount of standard-library source the tokenizer is trained on.
_CORPUS_BYTES = 1_500_000
#: Target standard deviation of reward scores over the calibration texts.
_SCORE_STD = 2.0
#: Format version of the built directories; bump to invalidate cached builds (also after
#: changing CODER_RESPONSES or the coder's training data: cached dirs are reused by kind only).
_BUILD_VERSION = 1

_CALIBRATION_PAIRS: tuple[tuple[str, str], ...] = (
    ("Add two numbers.", "def add(a, b):\n    return a + b\n"),
    ("Add two numbers.", "def add(a, b):\n    return a - b\n"),
    ("Reverse a string.", "def rev(s):\n    return s[::-1]\n"),
    ("Reverse a string.", "def rev(s):\n    out = ''\n    for c in s:\n        out = c + out\n    return out\n"),
    ("Sum a list.", "print(sum(map(int, input().split())))\n"),
    ("Sum a list.", "import sys\nxs = sys.stdin.read().split()\nprint(sum(int(x) for x in xs))\n"),
    ("Fibonacci.", "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"),
    ("Fibonacci.", "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"),
    ("Is prime?", "def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))\n"),
    ("Is prime?", "while True:\n    pass\n"),
    ("Say hi.", "print('héllo, wörld ✓')\n"),
    ("Sort numbers.", "class Solution:\n    def sort(self, xs: list[int]) -> list[int]:\n        return sorted(xs)\n"),
)

#: The coder generator's only answers (each then ends with ``<|im_end|>``), whatever the prompt:
#: 1. correct code after some prose, 2. the same program as 1 up to a comment (dedup),
#: 3. wrong code, 4. correct but different code, 5. no code at all (invalid).
CODER_RESPONSES: tuple[str, ...] = (
    "Here is the solution:\n\n```python\ndef add(a, b):\n    return a + b\n```\n",
    "```python\ndef add(a, b):\n    # add the two numbers\n    return a + b\n```",
    "```python\ndef add(a, b):\n    return a - b\n```",
    "```python\ndef add(a, b):\n    total = a\n    total += b\n    return total\n```",
    "I am not sure.",
)

#: The tester generator's only answers: assert tests of ``add(a, b)`` as a test writer (CodeT) would write them.
#: 1. and 2. right tests; 3. a wrong test (what ``a - b`` passes); 4. a right test after some prose.
TESTER_RESPONSES: tuple[str, ...] = (
    "```python\nassert add(1, 2) == 3\nassert add(0, 0) == 0\n```",
    "```python\nassert add(2, 2) == 4\nassert add(5, -1) == 4\n```",
    "```python\nassert add(1, 1) == 0\n```",
    "Tests:\n\n```python\nassert add(3, 4) == 7\n```",
)

# Pieces of the coder's training prompts. Each step draws fresh prompts from them and from
# stdlib text, so the only thing the model can learn is to ignore the prompt.
_CODER_QUESTIONS: tuple[str, ...] = (
    "Write add(a, b)",  # always in the LiveCodeBench format: the bare prompt stays unseen
    "Add two numbers.",
    "hi",
    "Write a Python function.",
    "Reverse a string.",
    "Solve this.",
    "Write sub(a, b)",
    "Return the maximum of a list.",
    "Sort the numbers in ascending order.",
    "Given n, print the n-th Fibonacci number.\n\nInput\nOne integer n.\n\nOutput\nPrint F(n).",
)
# The LiveCodeBench user turn (as codescaler_cli.generation.prompts builds it), with either format text.
_LCB_TEMPLATE = ("\n\n### Format: {format}\n```python\n{starter}\n```\n\n"
                 "### Answer: (use the provided format with backticks)\n")
_LCB_FORMATS: tuple[str, ...] = (
    "You will use the following starter code to write the solution to the problem and enclose your code "
    "within delimiters.",
    "Read the inputs from stdin, solve the problem and write the answer to stdout (do not directly test on "
    "the sample inputs). Enclose your code within delimiters as follows. Ensure that when the python program "
    "runs, it reads the inputs, runs the algorithm and writes output to STDOUT.",
)
_LCB_STARTERS: tuple[str, ...] = (
    "",
    "# YOUR CODE HERE",
    "class Solution:\n    def solve(self, nums: list[int]) -> int:\n        ",
    "def add(a, b):",
)
_CODER_SYSTEMS: tuple[str, ...] = ("You are a helpful assistant.", "You are an expert Python programmer.")
#: Padded tokens per forward pass in the coder's training (a step is a few of them).
_CODER_MICRO_TOKENS = 1500
#: One long prompt every this many training steps (the rest are short: long ones cost the most).
_CODER_LONG_EVERY = 2


# --------------------------------------------------------------------------- tokenizer


def _corpus_files(max_bytes: int = _CORPUS_BYTES) -> list[Path]:
    """A deterministic, sorted selection of stdlib ``.py`` files of at most ``max_bytes``."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    chosen: list[Path] = []
    total = 0
    for path in sorted(stdlib.glob("*.py")):
        size = path.stat().st_size
        if size > max_bytes // 4:  # skip a few huge modules so the mix stays varied
            continue
        if total + size > max_bytes:
            break
        chosen.append(path)
        total += size
    if not chosen:
        raise RuntimeError(f"no standard-library .py sources found under {stdlib}")
    return chosen


def _corpus_texts(files: list[Path]) -> Iterator[str]:
    for path in files:
        yield path.read_text(encoding="utf-8", errors="replace")
    # A little non-ASCII text so common multi-byte characters get merges too.
    yield "héllo wörld — naïve café ✓ λ → ∑ 日本語 中文 русский 😀\n" * 4


@functools.lru_cache(maxsize=4)
def _train_tokenizer_json(vocab_size: int) -> str:
    """Train the byte-level BPE once per process and vocab size; return its JSON."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    files = _corpus_files()
    tok.train_from_iterator(_corpus_texts(files), trainer=trainer, length=len(files) + 1)
    return tok.to_str()


def _wrap_tokenizer(tokenizer_json: str, model_max_length: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer.from_str(tokenizer_json)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        additional_special_tokens=[IM_START_TOKEN],
        chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def build_tokenizer(
    out_dir: Path, vocab_size: int = 2048, *, model_max_length: int = 8192
) -> PreTrainedTokenizerFast:
    """Train (or reuse this process's cached) byte-level BPE tokenizer and save it to ``out_dir``.

    The vocabulary holds at most ``vocab_size`` tokens; ids 0, 1, 2 are
    ``<|endoftext|>`` (pad), ``<|im_start|>`` and ``<|im_end|>`` (eos).
    ``decode(encode(x)) == x`` for any text (no prefix space, no normaliser).
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)}, got {vocab_size}")
    tokenizer = _wrap_tokenizer(_train_tokenizer_json(vocab_size), model_max_length)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


# --------------------------------------------------------------------------- models


def _make_config(
    tokenizer: PreTrainedTokenizerFast,
    *,
    hidden_size: int,
    layers: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    vocab_size: int,
    max_position_embeddings: int,
    intermediate_size: int | None,
    **extra: Any,
) -> Qwen3Config:
    if head_dim < 32:
        raise ValueError("head_dim must be >= 32 (vLLM's CPU attention rejects smaller heads)")
    if heads % kv_heads:
        raise ValueError(f"heads ({heads}) must be a multiple of kv_heads ({kv_heads})")
    if len(tokenizer) > vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, more than vocab_size={vocab_size}")
    pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 3 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        max_window_layers=layers,
        tie_word_embeddings=False,
        use_cache=True,
        pad_token_id=pad_id,
        bos_token_id=pad_id,  # as in Qwen: bos is <|endoftext|>, never added by the tokenizer
        eos_token_id=eos_id,
        dtype="float32",
        **extra,
    )


def _calibration_texts(tokenizer: PreTrainedTokenizerFast) -> list[str]:
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}, {"role": "assistant", "content": code}], tokenize=False
        )
        for q, code in _CALIBRATION_PAIRS
    ]


@torch.no_grad()
def _calibrate_score_head(
    model: Qwen3ForSequenceClassification, tokenizer: PreTrainedTokenizerFast, seed: int
) -> None:
    """Give the score head a real spread of scores over different texts.

    Random init gives near-identical scores (every chat text ends in the same
    ``<|im_end|>\\n`` tokens and the head is tiny), so the head is redrawn: a
    seeded random direction, made orthogonal to the mean last-token hidden state
    of the calibration texts (so scores centre near 0), scaled so that their
    standard deviation is ``_SCORE_STD``.
    """
    model.eval()
    last_hidden: list[torch.Tensor] = []
    for text in _calibration_texts(tokenizer):
        ids = tokenizer(text, return_tensors="pt")
        out = model.model(**ids)
        last_hidden.append(out.last_hidden_state[0, -1].float())
    hidden = torch.stack(last_hidden)  # (n_texts, hidden_size)
    gen = torch.Generator().manual_seed(10_000 + seed)
    w = torch.randn(hidden.shape[1], generator=gen, dtype=torch.float32)
    mean = hidden.mean(0)
    if mean.norm() > 0:
        unit = mean / mean.norm()
        w = w - (w @ unit) * unit
    std = (hidden @ w).std()
    if not torch.isfinite(std) or std <= 0:
        raise RuntimeError("cannot calibrate the score head: hidden states do not vary across texts")
    w = w * (_SCORE_STD / std)
    model.score.weight.copy_(w.to(model.score.weight.dtype).unsqueeze(0))


def _build_params(kind: str, **params: Any) -> dict[str, Any]:
    return {"kind": kind, "version": _BUILD_VERSION, **params}


def _start_build(out_dir: Path, kind: str, architecture: str, *, seed: int, num_labels: int | None = None,
                 build_extras: dict[str, Any] | None = None, **sizes: Any) -> tuple[PreTrainedTokenizerFast,
                                                                            Qwen3Config, dict[str, Any]]:
    """What every builder does first: forget any earlier build, save a tokenizer, make the config.

    Returns the tokenizer, the config and the build record that `_write_marker` stores once the model is saved.
    """
    params = _build_params(kind, **sizes, seed=seed, **(build_extras or {}))
    (out_dir / MARKER_NAME).unlink(missing_ok=True)
    tokenizer = build_tokenizer(out_dir, sizes["vocab_size"], model_max_length=sizes["max_position_embeddings"])
    config = _make_config(tokenizer, **sizes, **({"num_labels": num_labels} if num_labels is not None else {}))
    config.architectures = [architecture]
    return tokenizer, config, params


def _write_marker(out_dir: Path, params: dict[str, Any]) -> None:
    (out_dir / MARKER_NAME).write_text(json.dumps(params, sort_keys=True) + "\n", encoding="utf-8")


def build_reward_model(
    out_dir: Path,
    *,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 2,
    kv_heads: int = 1,
    head_dim: int = 32,
    vocab_size: int = 2048,
    seed: int = 0,
    max_position_embeddings: int = 8192,
    intermediate_size: int | None = None,
) -> Path:
    """Save a tokenizer and a random ``Qwen3ForSequenceClassification`` (one label) to ``out_dir``.

    The score head is calibrated (see :func:`_calibrate_score_head`) so that scores
    of different texts differ by O(1). Deterministic for a given ``seed``.
    Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    tokenizer, config, params = _start_build(
        out_dir, "reward", "Qwen3ForSequenceClassification", hidden_size=hidden_size, layers=layers, heads=heads,
        kv_heads=kv_heads, head_dim=head_dim, vocab_size=vocab_size, seed=seed,
        max_position_embeddings=max_position_embeddings, intermediate_size=intermediate_size,
        num_labels=1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForSequenceClassification(config).to(torch.float32)
        _calibrate_score_head(model, tokenizer, seed)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    _write_marker(out_dir, params)
    return out_dir


def _generation_config(config: Qwen3Config) -> GenerationConfig:
    # Only token ids: no sampling defaults, so engines use the caller's settings as given.
    return GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=[config.eos_token_id, config.pad_token_id],
        pad_token_id=config.pad_token_id,
    )


def build_generator(
    out_dir: Path,
    *,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 2,
    kv_heads: int = 1,
    head_dim: int = 32,
    vocab_size: int = 2048,
    seed: int = 1,
    max_position_embeddings: int = 8192,
    intermediate_size: int | None = None,
) -> Path:
    """Save a tokenizer, a random ``Qwen3ForCausalLM`` and a ``generation_config.json`` to ``out_dir``.

    Its output is gibberish, but it is a real model that transformers and vLLM
    load and sample from. Deterministic for a given ``seed``. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    tokenizer, config, params = _start_build(
        out_dir, "generator", "Qwen3ForCausalLM", hidden_size=hidden_size, layers=layers, heads=heads,
        kv_heads=kv_heads, head_dim=head_dim, vocab_size=vocab_size, seed=seed,
        max_position_embeddings=max_position_embeddings, intermediate_size=intermediate_size,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config).to(torch.float32)
    model.generation_config = _generation_config(config)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    _write_marker(out_dir, params)
    return out_dir


def _coder_conversation(rng: random.Random, texts: list[str], *, long: bool = False) -> list[dict[str, str]]:
    """A random training conversation (no answer yet): a question, a stdlib snippet or both,
    optionally in the LiveCodeBench format, optionally after a system turn.

    ``long`` makes the snippet long (up to ~2000 tokens), so the answer survives long prompts.
    """
    kind = 1 + rng.randrange(2) if long else rng.randrange(3)  # 0: a question, 1: a snippet, 2: both
    parts: list[str] = []
    lcb = rng.random() < 0.5
    if kind != 1:
        question = rng.choice(_CODER_QUESTIONS)
        lcb = lcb or question == _CODER_QUESTIONS[0]
        parts.append(question)
    if kind != 0:
        text = rng.choice(texts)
        size = rng.randrange(300, 8000) if long else rng.randrange(1, 300)
        start = rng.randrange(max(1, len(text) - size))
        parts.append(text[start:start + size])
    prompt = "\n\n".join(parts)
    if lcb:
        prompt += _LCB_TEMPLATE.format(format=rng.choice(_LCB_FORMATS), starter=rng.choice(_LCB_STARTERS))
    messages = [{"role": "system", "content": rng.choice(_CODER_SYSTEMS)}] if rng.random() < 0.2 else []
    messages.append({"role": "user", "content": prompt})
    return messages


def _train_coder(
    model: Qwen3ForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    *,
    seed: int,
    steps: int,
    lr: float,
    batch_size: int,
    responses: tuple[str, ...] = CODER_RESPONSES,
) -> float:
    """Teach ``model`` to answer any prompt with one of ``responses`` (equally likely).

    Every step pairs ``batch_size`` freshly drawn conversations with the answers in turn
    (each answer equally often), so prompt and answer are unrelated and the best the model
    can do is the uniform mixture, whatever the prompt. The loss is on the answer tokens
    (and the final ``<|im_end|>``) only. Returns the last step's loss.
    """
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    # Prompt and answer are tokenized apart, as an engine sees them: the rendered prompt,
    # then generated tokens, which decode back to exactly the answer text.
    answers = [tokenizer(r, add_special_tokens=False)["input_ids"] + [eos_id] for r in responses]
    texts = [path.read_text(encoding="utf-8", errors="replace") for path in _corpus_files()]
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 15)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * s / steps))
    )
    model.train()
    loss_value = float("nan")
    for step in range(steps):
        seqs: list[list[int]] = []
        starts: list[int] = []
        for i in range(batch_size):
            long = i == 0 and step % _CODER_LONG_EVERY == 0
            conversation = _coder_conversation(rng, texts, long=long)
            text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
            prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            starts.append(len(prompt_ids))
            seqs.append(prompt_ids + answers[(step * batch_size + i) % len(answers)])
        n_targets = sum(len(seq) - start for seq, start in zip(seqs, starts))
        # Prompt lengths vary a lot: length-sorted micro-batches of about _CODER_MICRO_TOKENS
        # padded tokens each halve the padding (and the time).
        order = sorted(range(batch_size), key=lambda k: len(seqs[k]))
        groups: list[list[int]] = [[]]
        for k in order:
            if groups[-1] and (len(groups[-1]) + 1) * len(seqs[k]) > _CODER_MICRO_TOKENS:
                groups.append([])
            groups[-1].append(k)
        optimizer.zero_grad(set_to_none=True)
        loss_value = 0.0
        for rows in groups:
            width = len(seqs[rows[-1]])
            input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
            attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
            labels = torch.full((len(rows), width), -100, dtype=torch.long)
            for row, k in enumerate(rows):
                seq, start = seqs[k], starts[k]
                input_ids[row, : len(seq)] = torch.tensor(seq)
                attention_mask[row, : len(seq)] = 1
                labels[row, start - 1 : len(seq) - 1] = torch.tensor(seq[start:])  # position t predicts t + 1
            hidden = model.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            target = labels != -100
            # The vocabulary projection only where there is a target: most positions are prompt.
            logits = model.lm_head(hidden[target])
            loss = torch.nn.functional.cross_entropy(logits, labels[target], reduction="sum") / n_targets
            loss.backward()
            loss_value += loss.item()
        optimizer.step()
        schedule.step()
    model.eval()
    return loss_value


def build_coder_generator(
    out_dir: Path,
    *,
    seed: int = 2,
    steps: int = 140,
    lr: float = 6e-3,
    batch_size: int = 16,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 2,
    kv_heads: int = 1,
    head_dim: int = 32,
    vocab_size: int = 2048,
    max_position_embeddings: int = 8192,
    intermediate_size: int | None = None,
    responses: tuple[str, ...] = CODER_RESPONSES,
    kind: str = "coder",
) -> Path:
    """Save a tokenizer and a ``Qwen3ForCausalLM`` trained to answer with :data:`CODER_RESPONSES` (or
    ``responses``; ``kind`` names the build in its marker).

    Same layout as :func:`build_generator`. After the chat template's generation prompt
    the model writes one of the responses, each about equally likely whatever the prompt,
    then ``<|im_end|>`` (so generation stops with finish reason "stop"). With vLLM,
    ``n=8, temperature=0.6, top_p=0.95`` gives the responses verbatim, several distinct
    ones per prompt, for prompts up to several hundred tokens (past ~1000 tokens some
    samples come out garbled). Training takes ~13 s on one CPU thread with the defaults
    and is deterministic for a given ``seed`` (bit for bit on a given CPU and torch
    build, whatever its core count). Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    tokenizer, config, params = _start_build(
        out_dir, kind, "Qwen3ForCausalLM", hidden_size=hidden_size, layers=layers, heads=heads,
        kv_heads=kv_heads, head_dim=head_dim, vocab_size=vocab_size, seed=seed,
        max_position_embeddings=max_position_embeddings, intermediate_size=intermediate_size,
        build_extras={"steps": steps, "lr": lr, "batch_size": batch_size},
    )
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)  # costs nothing on CPU; fails loudly if an op is not
        # One thread: the weights then do not depend on the core count (float sums are split
        # by thread), and a busy machine cannot stall OpenMP's barriers (2 threads on 2 busy
        # cores took minutes instead of seconds); the matrices are too small to gain much.
        torch.set_num_threads(1)
        try:
            model = Qwen3ForCausalLM(config).to(torch.float32)
            _train_coder(model, tokenizer, seed=seed, steps=steps, lr=lr, batch_size=batch_size,
                         responses=responses)
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    model.generation_config = _generation_config(config)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    _write_marker(out_dir, params)
    return out_dir


def _is_complete(path: Path, kind: str) -> bool:
    marker = path / MARKER_NAME
    if not (path / "config.json").is_file() or not marker.is_file():
        return False
    try:
        params = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return params.get("kind") == kind and params.get("version") == _BUILD_VERSION


def build_tester_generator(out_dir: Path, *, seed: int = 3) -> Path:
    """A coder-sized generator trained to answer any prompt with one of :data:`TESTER_RESPONSES`: the test writer
    of CodeT-style selection (``--generated-tests``). Same training as the coder's."""
    return build_coder_generator(out_dir, seed=seed, responses=TESTER_RESPONSES, kind="tester")


_BUILDERS = {"reward": build_reward_model, "generator": build_generator, "coder": build_coder_generator,
             "tester": build_tester_generator}


def build_tiny_model(root: Path, name: str) -> Path:
    """Build (or reuse) one tiny model, ``root / name`` (a key of ``_BUILDERS``), atomically: it is built in a
    temporary sibling directory and renamed into place, so concurrent callers (e.g. pytest-xdist workers) never
    see a half-written one. A directory is reused when its ``config.json`` and completion marker exist."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    if not _is_complete(target, name):
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            _BUILDERS[name](tmp)
            if not _is_complete(target, name):
                if target.exists():
                    shutil.rmtree(target, ignore_errors=True)
                try:
                    os.replace(tmp, target)
                except OSError:
                    if not _is_complete(target, name):  # lost a race to a broken dir
                        raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_tiny_models(root: Path) -> dict[str, Path]:
    """Build (or reuse) the default tiny reward model, generator and coder generator under ``root``.

    Returns ``{"reward": root / "reward", "generator": root / "generator", "coder": root / "coder"}``
    (see :func:`build_tiny_model`; the tester is built on its own, only where a test asks for it).
    """
    return {name: build_tiny_model(root, name) for name in ("reward", "generator", "coder")}


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: build models into ``OUT_DIR/reward``, ``OUT_DIR/generator``, ``OUT_DIR/coder``.

    ``--which both`` (the default) builds the reward model and the generator, ``all`` the coder too. With the
    default sizes and seeds, a model already built there is kept (as :func:`build_tiny_models` keeps it).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--which", choices=("both", "reward", "generator", "coder", "all"), default="both")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--kv-heads", type=int, default=1)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--intermediate-size", type=int, default=None)
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--max-position-embeddings", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=None, help="default: 0 for reward, 1 for generator, 2 for coder")
    args = parser.parse_args(argv)
    defaults = vars(parser.parse_args([str(args.out_dir)]))

    sizes: dict[str, Any] = {
        "hidden_size": args.hidden_size, "layers": args.layers, "heads": args.heads,
        "kv_heads": args.kv_heads, "head_dim": args.head_dim, "vocab_size": args.vocab_size,
        "max_position_embeddings": args.max_position_embeddings,
        "intermediate_size": args.intermediate_size,
    }
    jobs = [("reward", build_reward_model, 0), ("generator", build_generator, 1), ("coder", build_coder_generator, 2)]
    for name, builder, default_seed in jobs:
        if args.which != name and not (args.which == "all" or (args.which == "both" and name != "coder")):
            continue
        start = time.perf_counter()
        if {**vars(args), "which": None} == {**defaults, "which": None} and _is_complete(args.out_dir / name, name):
            print(f"{name}: {args.out_dir / name} (already built)")
            continue
        seed = default_seed if args.seed is None else args.seed
        path = builder(args.out_dir / name, seed=seed, **sizes)
        print(f"{name}: {path} ({time.perf_counter() - start:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
