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
* a generator: ``Qwen3ForCausalLM`` plus a ``generation_config.json``.

Each model directory holds the model (safetensors, float32), its config and the
tokenizer, so ``AutoTokenizer`` / ``AutoModelFor...`` and vLLM can load it.
A marker file (``MARKER_NAME``) is written last; :func:`build_tiny_models` reuses a
directory only when that marker is there and records the same build parameters.

Command line, to build models by hand::

    python tests/tiny_models.py OUT_DIR [--hidden-size 512 --layers 8 --heads 8 \
        --kv-heads 4 --head-dim 64 --vocab-size 2048 --which both]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
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
    "EOS_TOKEN",
    "IM_START_TOKEN",
    "MARKER_NAME",
    "PAD_TOKEN",
    "SPECIAL_TOKENS",
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
#: Format version of the built directories; bump to invalidate cached builds.
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
    params = _build_params(
        "reward", hidden_size=hidden_size, layers=layers, heads=heads, kv_heads=kv_heads,
        head_dim=head_dim, vocab_size=vocab_size, seed=seed,
        max_position_embeddings=max_position_embeddings, intermediate_size=intermediate_size,
    )
    (out_dir / MARKER_NAME).unlink(missing_ok=True)
    tokenizer = build_tokenizer(out_dir, vocab_size, model_max_length=max_position_embeddings)
    config = _make_config(
        tokenizer, hidden_size=hidden_size, layers=layers, heads=heads, kv_heads=kv_heads,
        head_dim=head_dim, vocab_size=vocab_size, max_position_embeddings=max_position_embeddings,
        intermediate_size=intermediate_size, num_labels=1,
    )
    config.architectures = ["Qwen3ForSequenceClassification"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForSequenceClassification(config).to(torch.float32)
        _calibrate_score_head(model, tokenizer, seed)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    _write_marker(out_dir, params)
    return out_dir


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
    params = _build_params(
        "generator", hidden_size=hidden_size, layers=layers, heads=heads, kv_heads=kv_heads,
        head_dim=head_dim, vocab_size=vocab_size, seed=seed,
        max_position_embeddings=max_position_embeddings, intermediate_size=intermediate_size,
    )
    (out_dir / MARKER_NAME).unlink(missing_ok=True)
    tokenizer = build_tokenizer(out_dir, vocab_size, model_max_length=max_position_embeddings)
    config = _make_config(
        tokenizer, hidden_size=hidden_size, layers=layers, heads=heads, kv_heads=kv_heads,
        head_dim=head_dim, vocab_size=vocab_size, max_position_embeddings=max_position_embeddings,
        intermediate_size=intermediate_size,
    )
    config.architectures = ["Qwen3ForCausalLM"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config).to(torch.float32)
    # Only token ids: no sampling defaults, so engines use the caller's settings as given.
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=[config.eos_token_id, config.pad_token_id],
        pad_token_id=config.pad_token_id,
    )
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


def build_tiny_models(root: Path) -> dict[str, Path]:
    """Build (or reuse) the default tiny reward model and generator under ``root``.

    Returns ``{"reward": root / "reward", "generator": root / "generator"}``.
    A directory is reused when its ``config.json`` and completion marker exist.
    Each model is built in a temporary sibling directory and renamed into place,
    so concurrent callers (e.g. pytest-xdist workers) never see a half-written one.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    builders = {"reward": build_reward_model, "generator": build_generator}
    result: dict[str, Path] = {}
    for name, builder in builders.items():
        target = root / name
        if not _is_complete(target, name):
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
            try:
                builder(tmp)
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
        result[name] = target
    return result


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: build models into ``OUT_DIR/reward`` and/or ``OUT_DIR/generator``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--which", choices=("both", "reward", "generator"), default="both")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--kv-heads", type=int, default=1)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--intermediate-size", type=int, default=None)
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--max-position-embeddings", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=None, help="default: 0 for reward, 1 for generator")
    args = parser.parse_args(argv)

    sizes: dict[str, Any] = {
        "hidden_size": args.hidden_size, "layers": args.layers, "heads": args.heads,
        "kv_heads": args.kv_heads, "head_dim": args.head_dim, "vocab_size": args.vocab_size,
        "max_position_embeddings": args.max_position_embeddings,
        "intermediate_size": args.intermediate_size,
    }
    jobs = [("reward", build_reward_model, 0), ("generator", build_generator, 1)]
    for name, builder, default_seed in jobs:
        if args.which not in ("both", name):
            continue
        start = time.perf_counter()
        seed = default_seed if args.seed is None else args.seed
        path = builder(args.out_dir / name, seed=seed, **sizes)
        print(f"{name}: {path} ({time.perf_counter() - start:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
