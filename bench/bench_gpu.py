#!/usr/bin/env python
"""The GPU path, measured: speed, bf16 fidelity, out-of-memory halving and serve's batching, in one run and one table.

Random-weight `Qwen3ForSequenceClassification` reward models with the real CodeScaler-1.7B and -4B shapes (configs
below, from Qwen3-1.7B's and Qwen3-4B's config.json; one label, pad token set) are built on the device in bf16,
saved, and loaded back through the library (`codescaler_cli.scoring.open_scorer`, what `codescaler rank` uses).
The workload is best-of-16 in LiveCodeBench style (bench/workload.py: problems of ~300-470 tokens, programs of
~150-3,300 tokens, a quarter duplicates, a tenth without valid code), tokenized by a byte-level BPE trained here on
the standard library (tests/tiny_models.py), so nothing is downloaded. Per model, the table has:

  speed     (a) the model card's recipe (bench/card_recipe.py's code: each problem's 16 texts in one padded batch)
            (b) `codescaler rank`'s default scorer (the library's pipeline: dedup, prefix reuse, length-sorted
                batches under a 16,384-token budget), and variants of it on the same loaded model:
            (c) the same with a 65,536-token budget; (d) the same with flex attention;
            (e) padding-free packing: whole texts concatenated, each with its own position ids (SDPA; transformers
                builds the block-diagonal mask from the position ids);
            (f) packing with the problem statement once per pack: each program attends to its problem's prefix
                and to itself, positions continuing after the prefix (SDPA, an explicit 4-D mask);
            (g) the same as (f) with flex attention and a block-sparse mask.
            Wall seconds (median of --repeat runs after an untimed warm-up), tokens/s (the workload's tokens as the
            card recipe sees them, so ratios are speedups), tokens the row ran, achieved TFLOP/s (2 x matmul
            parameters x tokens run / seconds; the embedding table is a lookup and attention scores are left out,
            so it is a lower bound) and its share of the bf16 peak.
  fidelity  bf16 vs float32 scores (same texts, rank's scorer), the same text alone vs in its batch (rank's
            dtype: bf16 on a GPU), and each variant vs (b) in float32 (exactness): max |score difference| and
            top-1 changes per problem.
  memory    out-of-memory halving under a memory cap (torch.cuda.set_per_process_memory_fraction; on CPU a fault
            injected above a token count): every score still produced.
  serve     serve's batching queue (codescaler_cli.serving.batcher, in-process: the device has no FastAPI) with
            --clients concurrent client threads sending GRPO-shaped /v1/rank jobs, vs one request at a time.

    python bench/bench_gpu.py --json results.json            # on a CUDA machine (budget: 7 minutes, --budget-s)
    python bench/bench_gpu.py --device cpu --tiny             # the same code paths on tiny models (~1 minute)

docs/gpu.md says how to run it on the device machine of this workplace and what each row means.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tiny_models: the tokenizer the tests build
sys.path.insert(0, str(BENCH_DIR))  # workload

# The shapes of CodeScaler-1.7B and -4B: their bases' config.json (Qwen/Qwen3-1.7B, Qwen/Qwen3-4B).
SHAPES: dict[str, dict[str, Any]] = {
    "1.7B": {"hidden_size": 2048, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
             "head_dim": 128, "intermediate_size": 6144, "vocab_size": 151936, "rope_theta": 1_000_000.0,
             "tie_word_embeddings": True, "max_position_embeddings": 40960},
    "4B": {"hidden_size": 2560, "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8,
           "head_dim": 128, "intermediate_size": 9728, "vocab_size": 151936, "rope_theta": 1_000_000.0,
           "tie_word_embeddings": True, "max_position_embeddings": 40960},
}
# --tiny: the same code paths on models that run in milliseconds on a CPU (vocab_size None: the tokenizer's size).
TINY_SHAPES: dict[str, dict[str, Any]] = {
    "1.7B": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
             "head_dim": 16, "intermediate_size": 64, "vocab_size": None, "rope_theta": 1_000_000.0,
             "tie_word_embeddings": True, "max_position_embeddings": 8192},
    "4B": {"hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "head_dim": 16, "intermediate_size": 96, "vocab_size": None, "rope_theta": 1_000_000.0,
           "tie_word_embeddings": True, "max_position_embeddings": 8192},
}

# Dense bf16 tensor-core rate of an H100/H200 SXM by NVIDIA's datasheet. This workplace's device notes measured an
# 8192^3 bf16 matmul at about 790 (80% of it); the script measures that ceiling again and prints both. The PCIe and
# NVL parts are slower: for them (and any other GPU) the measured ceiling stands in, unless --peak-tflops is given.
SPEC_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4}
SLOWER_VARIANTS = ("PCIe", "NVL")

MAX_LENGTH = 4096  # upstream training's truncation, `codescaler rank`'s default (--max-length; tiny 640)
RANK_BUDGET = 16384  # `codescaler rank --max-batch-tokens` default
LARGE_BUDGET = 65536
# Pack lengths: SDPA computes every query-key pair of a pack whatever the mask says (its kernels skip nothing), so
# its packs stay short; flex attention skips masked blocks, so its packs can be as long as rank's budget. A pack
# must hold the longest text (--max-length).
SDPA_PACK_TOKENS = 4096
FLEX_PACK_TOKENS = 16384
PACK_MULTIPLE = 128  # packs are padded to this (flex attention's block size): fewer distinct shapes to compile
# `codescaler serve`'s batching defaults (codescaler_cli.serving.server.ServeConfig; the test checks they agree).
SERVE_BATCH_WAIT_MS = 5.0
SERVE_MAX_BATCH_REQUESTS = 256
SERVE_REUSE_PREFIX = False
GRPO_GROUP = 8  # candidates per serve request (a GRPO group; --request-candidates)
SCORE_STD = 2.0  # spread the calibrated score head gives the workload's texts (real models: a few units)

SPEED_ROWS = ("a", "b", "c", "d", "e", "f", "g")
MODEL_ROWS = (*SPEED_ROWS, "bf16_vs_fp32", "alone_vs_batch", "exact", "oom", "serve_batched", "serve_single")
LABELS = {
    "ceiling": "matmul ceiling (measured)",
    "a": "(a) card recipe, padded batch per problem",
    "b": "(b) codescaler rank, default scorer",
    "c": "(c) rank, --max-batch-tokens 65536",
    "d": "(d) rank, flex attention",
    "e": "(e) packed, position ids (SDPA)",
    "f": "(f) packed + shared prefix (SDPA, 4-D mask)",
    "g": "(g) packed + shared prefix (flex, block mask)",
    "bf16_vs_fp32": "bf16 vs float32 (rank scorer)",
    "alone_vs_batch": "alone vs in batch (rank's dtype)",
    "exact": "variants vs (b), float32",
    "oom": "OOM halving under a memory cap",
    "serve_batched": "serve: dynamic batching",
    "serve_single": "serve: one request at a time",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""


# --------------------------------------------------------------------------------------------- results


@dataclass
class Row:
    """One line of the table; `values` holds the numbers behind `result` for the JSON file."""

    model: str
    key: str
    status: str = "ok"  # ok | failed: ... | skipped: ...
    seconds: float | None = None
    runs: list[float] = field(default_factory=list)
    tokens_per_second: float | None = None
    tokens_run: int | None = None
    tflops: float | None = None
    peak_share: float | None = None
    result: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return LABELS[self.key]


@dataclass
class Report:
    """Everything the run measured; written to --json after every row, so a run cut short keeps what it did."""

    args: dict[str, Any]
    machine: dict[str, Any] = field(default_factory=dict)
    workload: dict[str, Any] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    peak: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    json_path: Path | None = None

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        shown = f"{row.seconds:.2f}s " if row.seconds is not None else ""
        log(f"[{row.model}] {row.label}: {shown}{row.status if row.status != 'ok' else row.result}")
        self.save()
        return row

    def as_dict(self) -> dict[str, Any]:
        return {"args": self.args, "machine": self.machine, "workload": self.workload, "models": self.models,
                "peak": self.peak, "rows": [{**dataclasses.asdict(row), "label": row.label} for row in self.rows],
                "notes": self.notes}

    def save(self) -> None:
        if self.json_path is None:
            return
        partial = self.json_path.with_name(self.json_path.name + ".partial")
        partial.write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(partial, self.json_path)


class Deadline:
    """A soft time budget: sections that would start after it are skipped (and say so) instead of run."""

    def __init__(self, seconds: float | None) -> None:
        self.started = time.perf_counter()
        self.seconds = seconds

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def reason(self) -> str | None:
        if self.seconds is not None and self.elapsed > self.seconds:
            return f"skipped: past the time budget (--budget-s {self.seconds:g}, {self.elapsed:.0f}s elapsed)"
        return None


# --------------------------------------------------------------------------------------------- device


class Device:
    """The torch device and what timing and memory need from it."""

    def __init__(self, name: str) -> None:
        import torch

        self.torch = torch
        self.name = name
        self.cuda = name.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def release(self) -> None:
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()

    def describe(self) -> dict[str, Any]:
        import torch
        import transformers

        info: dict[str, Any] = {"device": self.name, "torch": torch.__version__,
                                "transformers": transformers.__version__, "python": platform.python_version(),
                                "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if self.cuda:
            props = torch.cuda.get_device_properties(torch.device(self.name))
            info.update(gpu=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                        multiprocessors=props.multi_processor_count, cuda=torch.version.cuda)
        else:
            info.update(cpu=platform.processor() or platform.machine(), threads=torch.get_num_threads())
        return info

    def spec_tflops(self) -> float | None:
        if not self.cuda:
            return None
        gpu = self.torch.cuda.get_device_name(self.torch.device(self.name))
        if any(variant in gpu for variant in SLOWER_VARIANTS):
            return None
        return next((tflops for chip, tflops in SPEC_BF16_TFLOPS.items() if chip in gpu), None)


def busy_share(device: Device, run: Callable[[], Any]) -> float:
    """The share of `run`'s wall time the device spent in kernels (torch.profiler; on CPU, in aten ops).

    Far under 1 means the time goes to launches, Python and tokenization between kernels, not to the math.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    activity = ProfilerActivity.CUDA if device.cuda else ProfilerActivity.CPU
    device.sync()
    started = time.perf_counter()
    with profile(activities=[activity]) as profiler:
        run()
        device.sync()
    wall = time.perf_counter() - started
    events = profiler.key_averages()
    if device.cuda:  # kernels as the profiler's own table sums them ("Self CUDA time total")
        busy = sum(e.self_device_time_total for e in events
                   if e.device_type == DeviceType.CUDA and not e.is_user_annotation)
    else:
        busy = sum(e.self_cpu_time_total for e in events)
    return min(1.0, busy / 1e6 / wall)


def matmul_ceiling(device: Device, size: int, repeats: int, dtype: Any) -> float:
    """TFLOP/s of a size^3 matrix product on random data: the rate the model's matmuls could reach."""
    torch = device.torch
    generator = torch.Generator(device=device.name).manual_seed(0)
    a = torch.randn(size, size, device=device.name, dtype=dtype, generator=generator)
    b = torch.randn(size, size, device=device.name, dtype=dtype, generator=generator)
    for _ in range(3):
        a @ b
    device.sync()
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    device.sync()
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e12


# --------------------------------------------------------------------------------------------- workload


@dataclass
class Workload:
    """The extracted candidate groups (one per problem) and what they amount to in tokens."""

    groups: list[list[Any]]
    card_tokens: int  # every candidate's text as the card recipe tokenizes it (truncated), no padding
    facts: dict[str, Any]

    def subset(self, problems: int) -> list[list[Any]]:
        return self.groups[:problems]


def build_workload(path: Path, problems: int, n: int, seed: int, tokenizer: Any, max_length: int) -> Workload:
    from workload import build_workload as write_workload

    from codescaler_cli import extract_candidate, group_candidates, read_candidates, reward_conversation

    write_workload(path, problems=problems, n=n, seed=seed)
    started = time.perf_counter()
    groups = [[extract_candidate(c) for c in group]
              for group in group_candidates(read_candidates(path, require_question=True))]
    extraction = time.perf_counter() - started
    questions = {group[0].question for group in groups}
    question_tokens = sorted(len(tokenizer(q)["input_ids"]) for q in questions)
    code_tokens = sorted(len(tokenizer(c.code)["input_ids"]) for group in groups for c in group if c.valid)
    card_tokens = 0
    for group in groups:
        texts = [tokenizer.apply_chat_template(reward_conversation(c.question, c.code), tokenize=False)
                 for c in group]
        card_tokens += sum(min(len(ids), max_length) for ids in tokenizer(texts)["input_ids"])
    valid = [c for group in groups for c in group if c.valid]
    unique = sum(len({c.dedup_key for c in group if c.valid}) for group in groups)
    chars = sum(len(c.code) for c in valid)

    def spread(values: list[int]) -> dict[str, int]:
        return {"min": values[0], "median": values[len(values) // 2], "max": values[-1]}

    facts = {"problems": len(groups), "candidates": sum(len(g) for g in groups), "valid": len(valid),
             "unique_valid": unique, "card_tokens": card_tokens, "question_tokens": spread(question_tokens),
             "code_tokens": spread(code_tokens), "code_chars_per_token": round(chars / max(1, sum(code_tokens)), 2),
             "extraction_seconds": round(extraction, 2), "tokenizer_vocab": len(tokenizer)}
    return Workload(groups=groups, card_tokens=card_tokens, facts=facts)


def copy_groups(groups: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Fresh candidates for one pass (scoring writes scores and ranks into them)."""
    return [[dataclasses.replace(c) for c in group] for group in groups]


def unique_requests(groups: Sequence[Sequence[Any]]) -> list[tuple[str, list[tuple[Any, Any]]]]:
    """Per problem: its question and its distinct valid programs as (scoring key, ScoreRequest), as rank sends them."""
    from codescaler_cli import ScoreRequest
    from codescaler_cli.pipeline import unique_programs

    problems = []
    for group in groups:
        unique = unique_programs(group)
        problems.append((group[0].question, [(key, ScoreRequest(question=c.question, code=c.code))
                                             for key, c in unique.items()]))
    return problems


def spread_scores(groups: Sequence[Sequence[Any]], by_key: dict[Any, float | None]) -> dict[int, float | None]:
    """Scores per valid candidate (its index) from scores per distinct program: duplicates share theirs."""
    from codescaler_cli.pipeline import scoring_key

    return {c.index: by_key.get(scoring_key(c)) for group in groups for c in group if c.valid}


# --------------------------------------------------------------------------------------------- models


def build_model(out_dir: Path, shape: dict[str, Any], tokenizer: Any, device: Device, calibration: list[str],
                seed: int, max_length: int) -> dict[str, Any]:
    """A random-weight reward model of `shape` made on the device (bf16; float32 on CPU), head calibrated, saved."""
    import torch
    from transformers import AutoModelForSequenceClassification, Qwen3Config

    sizes = dict(shape)
    rope_theta = sizes.pop("rope_theta")
    vocab_size = sizes.pop("vocab_size") or len(tokenizer)
    config = Qwen3Config(**sizes, vocab_size=vocab_size, max_window_layers=sizes["num_hidden_layers"],
                         rope_parameters={"rope_type": "default", "rope_theta": rope_theta}, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, architectures=["Qwen3ForSequenceClassification"])
    torch.manual_seed(seed)
    # bf16 as the real checkpoints ship; on CPU float32, where bf16 kernels are slow (rank loads float32 there).
    with torch.device(device.name):
        model = AutoModelForSequenceClassification.from_config(
            config, dtype=torch.bfloat16 if device.cuda else torch.float32)
    model.eval()
    calibrate_head(model, tokenizer, calibration, device, seed, max_length)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    del model
    device.release()
    return {"parameters": total, "matmul_parameters": total - embedding, "config": {**shape, "vocab_size": vocab_size}}


def calibrate_head(model: Any, tokenizer: Any, texts: list[str], device: Device, seed: int, max_length: int) -> None:
    """Give the random score head a real spread: scores of the calibration texts centred on 0 with std SCORE_STD.

    A random head on random weights scores every text almost alike (they all end with the same chat tokens). The
    head becomes a random direction orthogonal to the texts' mean last hidden state, scaled to the target spread.
    """
    import torch

    backbone = getattr(model, model.base_model_prefix)
    states = []
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")["input_ids"]
            states.append(backbone(input_ids=ids.to(device.name)).last_hidden_state[0, -1].float())
        hidden = torch.stack(states)
        mean = hidden.mean(0)
        generator = torch.Generator().manual_seed(seed)
        direction = torch.randn(hidden.shape[1], generator=generator).to(hidden.device)
        direction -= (direction @ mean) / (mean @ mean) * mean
        direction *= SCORE_STD / (hidden @ direction).std()
        model.score.weight.copy_(direction[None].to(model.score.weight.dtype))


def open_rank_scorer(model_dir: Path, device: Device, dtype: str, max_length: int) -> Any:
    """`codescaler rank`'s default scorer, opened the way rank opens it (ScorerConfig -> open_scorer)."""
    from codescaler_cli import ScorerConfig, open_scorer

    return open_scorer(ScorerConfig(model=str(model_dir), device=device.name, dtype=dtype, max_length=max_length,
                                    max_batch_tokens=RANK_BUDGET))


# --------------------------------------------------------------------------------------------- scoring passes


@dataclass
class Pass:
    """What one scoring pass produced: a score per valid candidate (by index) and the tokens it ran."""

    scores: dict[int, float | None]
    tokens_run: int


def rank_pass(scorer: Any, groups: Sequence[Sequence[Any]]) -> Pass:
    """`codescaler rank` without its file I/O: the library's score_groups over extracted candidates."""
    from codescaler_cli import score_groups

    before = scorer.stats.tokens
    scores: dict[int, float | None] = {}
    for group in score_groups(copy_groups(groups), scorer):
        scores.update({c.index: c.score for c in group if c.valid})
    return Pass(scores, scorer.stats.tokens - before)


def card_pass(model: Any, tokenizer: Any, groups: Sequence[Sequence[Any]], device: Device, max_length: int) -> Pass:
    """bench/card_recipe.py's recipe on the loaded model: all of a problem's texts, valid or not, one padded batch."""
    import torch

    from codescaler_cli import reward_conversation

    scores: dict[int, float | None] = {}
    tokens = 0
    for group in groups:
        texts = [tokenizer.apply_chat_template(reward_conversation(c.question, c.code), tokenize=False)
                 for c in group]
        inputs = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
        inputs = inputs.to(device.name)
        with torch.no_grad():
            values = model(**inputs).logits.squeeze(-1)
        tokens += int(inputs["attention_mask"].sum())
        for candidate, value in zip(group, values.float().cpu().tolist()):
            if candidate.valid:
                scores[candidate.index] = value
    return Pass(scores, tokens)


@dataclass
class _Segment:
    """Texts that attend to each other inside a pack: an optional shared prefix (part 0), then scored parts."""

    tokens: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    parts: list[int] = field(default_factory=list)
    ends: list[tuple[int, Any]] = field(default_factory=list)  # (index of a part's last token, its scoring key)

    def add(self, ids: Sequence[int], start: int, part: int, key: Any | None) -> None:
        self.tokens += ids
        self.positions += range(start, start + len(ids))
        self.parts += [part] * len(ids)
        if key is not None:
            self.ends.append((len(self.tokens) - 1, key))


def packed_segments(problems: list[tuple[str, list[tuple[Any, Any]]]], texts: Any, *, share_prefix: bool,
                    budget: int) -> list[_Segment]:
    """Each text as its own segment, or (share_prefix) a problem's programs after one copy of its statement.

    The prefix is shared only where a text's ids start with the prefix's ids (byte-level BPE can merge across
    the boundary), as the scorer's prefix reuse does; other texts go whole.
    """
    segments: list[_Segment] = []
    for question, requests in problems:
        prefix = texts.prefix_ids(question) if share_prefix else None
        shared: _Segment | None = None
        for key, request in requests:
            ids, _ = texts.tokenize(request.question, request.code)
            if prefix and len(prefix) < len(ids) and ids[: len(prefix)] == prefix:
                suffix = ids[len(prefix):]
                if shared is None or len(shared.tokens) + len(suffix) > budget:
                    shared = _Segment()
                    shared.add(prefix, 0, 0, None)
                    segments.append(shared)
                shared.add(suffix, len(prefix), len(shared.ends) + 1, key)
            else:
                whole = _Segment()
                whole.add(ids, 0, 1, key)
                segments.append(whole)
    return segments


def packed_pass(model: Any, texts: Any, groups: Sequence[Sequence[Any]], device: Device, *, mode: str,
                budget: int) -> Pass:
    """Score the distinct valid programs in packs of at most `budget` tokens, with no padding between texts.

    mode "position_ids": whole texts, attention_mask None: transformers finds the texts from the position ids.
    mode "dense" / "flex": texts after a shared prefix, with an explicit mask (4-D boolean for SDPA, a
    BlockMask for flex attention): a token sees earlier tokens of its own part and its segment's prefix.
    """
    import torch

    problems = unique_requests(groups)
    segments = packed_segments(problems, texts, share_prefix=mode != "position_ids", budget=budget)
    packs: list[list[_Segment]] = []
    for segment in segments:
        if not packs or sum(len(s.tokens) for s in packs[-1]) + len(segment.tokens) > budget:
            packs.append([])
        packs[-1].append(segment)
    backbone = getattr(model, model.base_model_prefix)
    pad_id = texts.tokenizer.pad_token_id or 0
    by_key: dict[Any, float | None] = {}
    tokens_run = 0
    for pack in packs:
        tokens: list[int] = []
        positions: list[int] = []
        segment_ids: list[int] = []
        parts: list[int] = []
        ends: list[tuple[int, Any]] = []
        for number, segment in enumerate(pack):
            ends += [(len(tokens) + index, key) for index, key in segment.ends]
            tokens += segment.tokens
            positions += segment.positions
            parts += segment.parts
            segment_ids += [number] * len(segment.tokens)
        tokens_run += len(tokens)
        padding = -len(tokens) % PACK_MULTIPLE  # a segment of its own that nothing reads
        tokens += [pad_id] * padding
        positions += range(padding)
        parts += [1] * padding
        segment_ids += [-1] * padding
        length = len(tokens)
        input_ids = torch.tensor([tokens], device=device.name)
        position_ids = torch.tensor([positions], device=device.name)
        mask: Any = None
        if mode != "position_ids":
            seg = torch.tensor(segment_ids, device=device.name)
            part = torch.tensor(parts, device=device.name)

            def visible(q: Any, kv: Any) -> Any:
                return (kv <= q) & (seg[q] == seg[kv]) & ((part[kv] == 0) | (part[kv] == part[q]))

            if mode == "dense":
                every = torch.arange(length, device=device.name)
                mask = visible(every[:, None], every[None, :])[None, None]
            else:
                from torch.nn.attention.flex_attention import create_block_mask

                mask = create_block_mask(lambda b, h, q, kv: visible(q, kv), None, None, length, length,
                                         device=device.name, _compile=device.cuda)
        with torch.inference_mode():
            hidden = backbone(input_ids=input_ids, position_ids=position_ids, attention_mask=mask,
                              use_cache=False).last_hidden_state[0]
            picked = hidden[torch.tensor([end for end, _ in ends], device=device.name)]
            values = model.score(picked)[:, 0].float().cpu().tolist()
        by_key.update({key: value for (_, key), value in zip(ends, values)})
    return Pass(spread_scores(groups, by_key), tokens_run)


class AttentionImplementation:
    """Switch a loaded model to another attention implementation for the duration of a `with` block."""

    def __init__(self, model: Any, implementation: str) -> None:
        self.model = model
        self.implementation = implementation
        self.previous = model.config._attn_implementation

    def __enter__(self) -> None:
        self.model.set_attn_implementation(self.implementation)

    def __exit__(self, *exc: object) -> None:
        self.model.set_attn_implementation(self.previous)


class Budget:
    """Set a scorer's token budget for the duration of a `with` block (what --max-batch-tokens sets)."""

    def __init__(self, scorer: Any, tokens: int) -> None:
        self.scorer = scorer
        self.tokens = tokens
        self.previous = scorer.max_batch_tokens

    def __enter__(self) -> None:
        self.scorer.max_batch_tokens = self.tokens

    def __exit__(self, *exc: object) -> None:
        self.scorer.max_batch_tokens = self.previous


# --------------------------------------------------------------------------------------------- comparisons


def max_difference(a: dict[int, float | None], b: dict[int, float | None]) -> float:
    shared = [k for k in a if a[k] is not None and b.get(k) is not None]
    if not shared:
        raise RuntimeError("no candidate has a score in both passes")
    return max(abs(a[k] - b[k]) for k in shared)  # type: ignore[operator]


def top_choices(groups: Sequence[Sequence[Any]], scores: dict[int, float | None]) -> list[Any]:
    """Per problem, the program ranked first (ties by input order, as rank breaks them); None if nothing scored."""
    from codescaler_cli.pipeline import scoring_key

    choices = []
    for group in groups:
        best = None
        for candidate in group:
            score = scores.get(candidate.index)
            if candidate.valid and score is not None and (best is None or score > best[0]):
                best = (score, candidate)
        choices.append(scoring_key(best[1]) if best else None)
    return choices


def compare(groups: Sequence[Sequence[Any]], reference: dict[int, float | None],
            other: dict[int, float | None]) -> dict[str, Any]:
    """Max |difference|, top-1 changes, and the reference's gap between the two programs where the choice changed."""
    from codescaler_cli.pipeline import scoring_key

    ref_top, other_top = top_choices(groups, reference), top_choices(groups, other)
    by_key = {scoring_key(c): reference.get(c.index) for group in groups for c in group if c.valid}
    changed_gaps = [abs(by_key[a] - by_key[b]) for a, b in zip(ref_top, other_top)
                    if a != b and a is not None and b is not None]
    gaps = []  # the reference's margin between its first and second program, per problem
    for group in groups:
        ordered = sorted({scoring_key(c): reference.get(c.index) for c in group if c.valid
                          and reference.get(c.index) is not None}.values(), reverse=True)
        if len(ordered) > 1:
            gaps.append(ordered[0] - ordered[1])
    return {"max_abs_diff": max_difference(reference, other), "top1_changed": len(changed_gaps),
            "problems": len(groups), "changed_reference_gaps": changed_gaps,
            "median_top_gap": statistics.median(gaps) if gaps else None,
            "score_std": statistics.pstdev([v for v in reference.values() if v is not None])}


def describe_comparison(values: dict[str, Any]) -> str:
    text = (f"max|d| {values['max_abs_diff']:.4g} (score std {values['score_std']:.3g}); top-1 changed "
            f"{values['top1_changed']}/{values['problems']}")
    if values["changed_reference_gaps"]:
        text += f" (reference gaps there <= {max(values['changed_reference_gaps']):.3g}"
        text += f"; median top-1/top-2 gap {values['median_top_gap']:.3g})" if values["median_top_gap"] else ")"
    return text


# --------------------------------------------------------------------------------------------- sections


class ModelBench:
    """Every row of one model size: speed, fidelity, memory, serve."""

    def __init__(self, name: str, model_dir: Path, info: dict[str, Any], workload: Workload, device: Device,
                 args: argparse.Namespace, report: Report, deadline: Deadline) -> None:
        self.name = name
        self.model_dir = model_dir
        self.info = info
        self.workload = workload
        self.device = device
        self.args = args
        self.report = report
        self.deadline = deadline
        self.scorer: Any = None
        self.scores: dict[str, Pass] = {}

    # -- plumbing -------------------------------------------------------------------------------------------------

    def row(self, key: str, work: Callable[[Row], None]) -> Row:
        """Run one row's work, recording a failure (with its traceback on stderr) instead of stopping the run."""
        row = Row(self.name, key)
        skipped = self.deadline.reason()
        if skipped:
            row.status = skipped
            return self.report.add(row)
        try:
            work(row)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            row.status = f"failed: {type(exc).__name__}: {first_line(exc)}"
            self.device.release()
        return self.report.add(row)

    def rates(self, row: Row, tokens_run: int, seconds: float) -> None:
        row.seconds = seconds
        row.tokens_run = tokens_run
        row.tokens_per_second = self.workload.card_tokens / seconds
        row.tflops = 2 * self.info["matmul_parameters"] * tokens_run / seconds / 1e12
        if self.report.peak.get("tflops"):
            row.peak_share = row.tflops / self.report.peak["tflops"]

    def timed(self, run: Callable[[Sequence[Sequence[Any]]], Pass]) -> tuple[list[float], Pass, float]:
        """Warm up on a few problems (compilation, kernel choice), then time --repeat runs over all of them."""
        groups = self.workload.groups
        started = time.perf_counter()
        if self.args.warmup_problems:
            run(groups[: self.args.warmup_problems])
            self.device.sync()
        warmup = time.perf_counter() - started
        runs, result = [], None
        for _ in range(self.args.repeat):
            self.device.sync()
            started = time.perf_counter()
            result = run(groups)
            self.device.sync()
            runs.append(time.perf_counter() - started)
        assert result is not None
        return runs, result, warmup

    # -- speed ----------------------------------------------------------------------------------------------------

    def speed(self) -> None:
        texts = self.scorer.texts
        model = self.scorer.model
        device = self.device
        runners: dict[str, Callable[[Sequence[Sequence[Any]]], Pass]] = {
            "a": lambda groups: card_pass(model, texts.tokenizer, groups, device, self.args.max_length),
            "b": lambda groups: rank_pass(self.scorer, groups),
            "c": lambda groups: self.with_context(Budget(self.scorer, LARGE_BUDGET), rank_pass, self.scorer, groups),
            "d": lambda groups: self.with_context(AttentionImplementation(model, "flex_attention"), rank_pass,
                                                  self.scorer, groups),
            "e": lambda groups: packed_pass(model, texts, groups, device, mode="position_ids",
                                            budget=self.args.sdpa_pack_tokens),
            "f": lambda groups: packed_pass(model, texts, groups, device, mode="dense",
                                            budget=self.args.sdpa_pack_tokens),
            "g": lambda groups: self.with_context(AttentionImplementation(model, "flex_attention"), packed_pass,
                                                  model, texts, groups, device, mode="flex",
                                                  budget=self.args.flex_pack_tokens),
        }
        for key in SPEED_ROWS:
            self.row(key, lambda row, key=key: self.speed_row(row, key, runners[key]))

    @staticmethod
    def with_context(context: Any, function: Callable[..., Pass], *args: Any, **kwargs: Any) -> Pass:
        with context:
            return function(*args, **kwargs)

    def speed_row(self, row: Row, key: str, run: Callable[[Sequence[Sequence[Any]]], Pass]) -> None:
        runs, result, warmup = self.timed(run)
        self.scores[key] = result
        row.runs = runs
        self.rates(row, result.tokens_run, statistics.median(runs))
        missing = sum(score is None for score in result.scores.values())
        parts = [f"runs {' '.join(f'{s:.2f}' for s in runs)}s"]
        if self.args.warmup_problems:
            parts.append(f"warm-up {warmup:.1f}s")
        row.values = {"warmup_seconds": warmup, "missing_scores": missing}
        if key != "b" and "b" in self.scores:
            difference = max_difference(self.scores["b"].scores, result.scores)
            row.values["max_abs_diff_vs_b"] = difference
            parts.append(f"max|d| vs (b) {difference:.3g}")
        if key != "a" and self.report_row("a") is not None:
            speedup = self.report_row("a").seconds / row.seconds
            row.values["speedup_vs_a"] = speedup
            parts.append(f"{speedup:.2f}x (a)")
        if missing:
            parts.append(f"{missing} scores missing")
        try:
            share = busy_share(self.device, lambda: run(self.workload.subset(self.args.profile_problems)))
            row.values["busy_share"] = share
            parts.append(f"{'GPU' if self.device.cuda else 'CPU ops'} busy {100 * share:.0f}% of wall")
        except Exception as exc:  # a diagnostic: its failure must not lose the row's timings
            row.values["busy_error"] = f"{type(exc).__name__}: {exc}"
            parts.append("busy: n/a")
        row.result = "; ".join(parts)

    def report_row(self, key: str) -> Row | None:
        return next((r for r in self.report.rows if r.model == self.name and r.key == key and r.status == "ok"
                     and r.seconds), None)

    # -- fidelity -------------------------------------------------------------------------------------------------

    def alone_vs_batch(self) -> None:
        self.row("alone_vs_batch", self.alone_row)

    def alone_row(self, row: Row) -> None:
        """Each distinct program scored alone (a batch of one, no shared prefix) vs its score in rank's batches."""
        from codescaler_cli import ScoreRequest

        groups = self.workload.subset(self.args.fidelity_problems)
        batched = self.scores["b"].scores if "b" in self.scores else rank_pass(self.scorer, groups).scores
        started = time.perf_counter()
        by_key = {}
        for _, requests in unique_requests(groups):
            for key, request in requests:
                by_key[key] = self.scorer.score([ScoreRequest(request.question, request.code)])[0].score
        row.seconds = time.perf_counter() - started
        row.values = compare(groups, spread_scores(groups, by_key), batched)
        row.result = (describe_comparison(row.values) + f" ({len(by_key)} texts scored one by one, "
                      f"{str(self.scorer.dtype).replace('torch.', '')})")

    def precision(self) -> None:
        """bf16 against float32 on the same texts, then the variants against (b) in float32 (one float32 load)."""
        import torch

        # A true float32 reference: no TF32 in the matmuls.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        main_is_bf16 = self.scorer.dtype == torch.bfloat16
        opened: list[Any] = []

        def other_scorer() -> Any:
            # The other precision from the same weights: float32 on a GPU (rank runs bf16 there), bf16 on CPU.
            if not opened:
                opened.append(open_rank_scorer(self.model_dir, self.device, "float32" if main_is_bf16 else "bfloat16",
                                               self.args.max_length))
            return opened[0]

        def bf16_vs_fp32(row: Row) -> None:
            groups = self.workload.subset(self.args.fidelity_problems)
            main = self.scores["b"].scores if "b" in self.scores else rank_pass(self.scorer, groups).scores
            other = other_scorer()
            started = time.perf_counter()
            other_scores = rank_pass(other, groups).scores
            row.seconds = time.perf_counter() - started
            reference, bf16 = (other_scores, main) if main_is_bf16 else (main, other_scores)
            row.values = compare(groups, reference, bf16)
            row.result = describe_comparison(row.values) + f" ({plural(len(groups), 'problem')})"

        def exactness(row: Row) -> None:
            groups = self.workload.subset(self.args.exact_problems)
            scorer = other_scorer() if main_is_bf16 else self.scorer
            model, texts = scorer.model, scorer.texts
            started = time.perf_counter()
            reference = rank_pass(scorer, groups).scores
            variants = {
                "d": lambda: self.with_context(AttentionImplementation(model, "flex_attention"), rank_pass, scorer,
                                               groups),
                "e": lambda: packed_pass(model, texts, groups, self.device, mode="position_ids",
                                         budget=self.args.sdpa_pack_tokens),
                "f": lambda: packed_pass(model, texts, groups, self.device, mode="dense",
                                         budget=self.args.sdpa_pack_tokens),
                "g": lambda: self.with_context(AttentionImplementation(model, "flex_attention"), packed_pass, model,
                                               texts, groups, self.device, mode="flex",
                                               budget=self.args.flex_pack_tokens),
            }
            differences = {key: max_difference(reference, run().scores) for key, run in variants.items()}
            row.seconds = time.perf_counter() - started
            row.values = {"max_abs_diff": differences, "problems": len(groups)}
            row.result = ("max|d| " + " ".join(f"({k}) {v:.2g}" for k, v in differences.items())
                          + f" ({plural(len(groups), 'problem')})")

        try:
            self.row("bf16_vs_fp32", bf16_vs_fp32)
            self.row("exact", exactness)
        finally:
            for scorer in opened:
                scorer.close()
            opened.clear()
            self.device.release()

    # -- out of memory --------------------------------------------------------------------------------------------

    def memory(self) -> None:
        self.row("oom", self.oom_row)

    def oom_row(self, row: Row) -> None:
        from codescaler_cli import ScoreRequest

        groups = self.workload.groups
        problems = unique_requests(groups)
        longest = max((request for _, requests in problems for _, request in requests),
                      key=lambda r: len(r.question) + len(r.code))
        with Budget(self.scorer, LARGE_BUDGET):
            cap = MemoryCap(self.device, self.scorer)
            free = cap.measure(lambda: rank_pass(self.scorer, groups))
            cap.measure_single(lambda: self.scorer.score([ScoreRequest(longest.question, longest.code)]))
            started = time.perf_counter()
            with cap:
                capped = rank_pass(self.scorer, groups)
            self.device.sync()
            seconds = time.perf_counter() - started
        self.rates(row, capped.tokens_run, seconds)
        scored = sum(score is not None for score in capped.scores.values())
        difference = max_difference(free.scores, capped.scores)
        row.values = {**cap.values, "scored": scored, "valid": len(capped.scores), "max_abs_diff_vs_uncapped":
                      difference, "every_score_produced": scored == len(capped.scores)}
        row.result = (f"{cap.describe()}; {cap.values['ooms']} OOMs caught; scores {scored}/{len(capped.scores)}; "
                      f"max|d| vs uncapped {difference:.3g}")
        if cap.values["ooms"] == 0:
            row.status = "failed: the cap forced no out-of-memory error"
        elif scored != len(capped.scores):
            row.status = f"failed: {len(capped.scores) - scored} scores missing under the cap"

    # -- serve ----------------------------------------------------------------------------------------------------

    def serve(self) -> None:
        requests = serve_requests(self.workload.groups, self.args.request_candidates)
        results: dict[str, dict[str, Any]] = {}
        for key, wait_ms, per_batch in (("serve_batched", SERVE_BATCH_WAIT_MS, SERVE_MAX_BATCH_REQUESTS),
                                        ("serve_single", 0.0, 1)):
            self.row(key, lambda row, w=wait_ms, p=per_batch, k=key: self.serve_row(row, requests, w, p, results, k))

    def serve_row(self, row: Row, requests: list[tuple[str, list[str]]], wait_ms: float, per_batch: int,
                  results: dict[str, dict[str, Any]], key: str) -> None:
        previous = self.scorer.reuse_prefix
        self.scorer.reuse_prefix = SERVE_REUSE_PREFIX
        try:
            load = run_clients(self.scorer, requests, clients=self.args.clients,
                               per_client=self.args.client_requests, wait_ms=wait_ms, per_batch=per_batch)
        finally:
            self.scorer.reuse_prefix = previous
        results[key] = load
        self.rates(row, load["tokens_run"], load["seconds"])
        row.tokens_per_second = load["tokens_sent"] / load["seconds"]
        row.values = load
        row.result = (f"{load['candidates'] / load['seconds']:.0f} candidates/s; latency p50 {load['p50']:.2f}s "
                      f"p99 {load['p99']:.2f}s; {load['requests_per_batch']:.1f} requests/batch")
        if load["unscored"]:
            row.status = f"failed: {load['unscored']} valid candidates got no score"
        if key == "serve_single" and "serve_batched" in results:
            ratio = (results["serve_batched"]["candidates"] / results["serve_batched"]["seconds"]) / (
                load["candidates"] / load["seconds"])
            row.values["batched_speedup"] = ratio
            row.result += f"; batching {ratio:.2f}x this (aim 3x)"

    # -- the whole model ------------------------------------------------------------------------------------------

    def run(self) -> None:
        started = time.perf_counter()
        self.scorer = open_rank_scorer(self.model_dir, self.device, "auto", self.args.max_length)
        self.info["rank_dtype"] = str(self.scorer.dtype).replace("torch.", "")
        self.report.models[self.name]["load_seconds"] = round(time.perf_counter() - started, 1)
        try:
            # The float32 rows come last: one float32 load serves both, and on a GPU flex attention compiles again
            # for float32, so a run short of time loses the least important rows.
            self.speed()
            self.alone_vs_batch()
            self.memory()
            self.serve()
            self.precision()
        finally:
            self.scorer.close()
            self.scorer = None
            self.device.release()


class MemoryCap:
    """A memory cap between what the longest text alone needs and what the uncapped run used.

    On CUDA: torch.cuda.set_per_process_memory_fraction, measured peaks of the caching allocator. On CPU there is
    no allocator cap, so the fault is injected: a hook makes the backbone raise torch.OutOfMemoryError when a
    forward pass holds more tokens (rows x (cached prefix + width)) than the cap.
    """

    def __init__(self, device: Device, scorer: Any) -> None:
        self.device = device
        self.scorer = scorer
        self.torch = device.torch
        self.backbone = getattr(scorer.model, scorer.model.base_model_prefix)
        self.values: dict[str, Any] = {"kind": "allocator" if device.cuda else "injected"}
        self.full = self.single = 0
        self.injected = 0
        self.limit: int | None = None
        self.largest = 0

    # What one forward pass holds, in tokens, for the CPU injection.
    def _tokens(self, kwargs: dict[str, Any]) -> int:
        input_ids = kwargs["input_ids"]
        cache = kwargs.get("past_key_values")
        past = cache.get_seq_length() if cache is not None else 0
        return int(input_ids.shape[0] * (input_ids.shape[1] + past))

    def _hook(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        tokens = self._tokens(kwargs)
        self.largest = max(self.largest, tokens)
        if self.limit is not None and tokens > self.limit:
            self.injected += 1
            raise self.torch.OutOfMemoryError(f"CUDA out of memory (injected: {tokens} tokens > cap {self.limit})")

    def _peak(self, work: Callable[[], Any]) -> tuple[Any, int]:
        torch = self.torch
        if self.device.cuda:
            self.device.release()
            base = torch.cuda.memory_reserved()
            torch.cuda.reset_peak_memory_stats()
            result = work()
            return result, torch.cuda.max_memory_reserved() - base
        self.largest = 0
        handle = self.backbone.register_forward_pre_hook(self._hook, with_kwargs=True)
        try:
            result = work()
        finally:
            handle.remove()
        return result, self.largest

    def measure(self, work: Callable[[], Pass]) -> Pass:
        result, self.full = self._peak(work)
        return result

    def measure_single(self, work: Callable[[], Any]) -> None:
        _, self.single = self._peak(work)
        if self.full < 1.5 * self.single:
            raise RuntimeError(f"cannot place a cap: the whole run needed {self.full:,} and the longest text alone "
                               f"{self.single:,} ({self.values['kind']} units)")
        # Halfway (geometrically) between the two: big batches fail, every single text fits.
        self.cap = int(math.sqrt(self.full * self.single))
        self.values.update(full_run_peak=self.full, single_text_peak=self.single, cap=self.cap)

    def __enter__(self) -> None:
        torch = self.torch
        if self.device.cuda:
            self.device.release()
            total = torch.cuda.get_device_properties(torch.device(self.device.name)).total_memory
            self.base = torch.cuda.memory_reserved()
            self.ooms_before = torch.cuda.memory_stats().get("num_ooms", 0)
            torch.cuda.set_per_process_memory_fraction((self.base + self.cap) / total)
            self.values.update(model_bytes=self.base, fraction=(self.base + self.cap) / total)
        else:
            self.limit = self.cap
            self.handle = self.backbone.register_forward_pre_hook(self._hook, with_kwargs=True)

    def __exit__(self, *exc: object) -> None:
        torch = self.torch
        if self.device.cuda:
            self.values["ooms"] = torch.cuda.memory_stats().get("num_ooms", 0) - self.ooms_before
            torch.cuda.set_per_process_memory_fraction(1.0)
            self.device.release()
        else:
            self.handle.remove()
            self.limit = None
            self.values["ooms"] = self.injected

    def describe(self) -> str:
        if self.device.cuda:
            gib = 2**30
            return (f"cap {(self.base + self.cap) / gib:.1f} GiB = held {self.base / gib:.1f} + {self.cap / gib:.2f} "
                    f"(run peak {self.full / gib:.2f}, longest text {self.single / gib:.2f})")
        return f"cap {self.cap:,} tokens per forward (run peak {self.full:,}, longest text {self.single:,}; injected)"


def serve_requests(groups: Sequence[Sequence[Any]], size: int) -> list[tuple[str, list[str]]]:
    """GRPO-shaped /v1/rank requests: a problem and `size` of its raw responses."""
    requests = []
    for group in groups:
        responses = [c.response for c in group]
        for start in range(0, len(responses), size):
            requests.append((group[0].question, responses[start:start + size]))
    return requests


def run_clients(scorer: Any, requests: list[tuple[str, list[str]]], *, clients: int, per_client: int,
                wait_ms: float, per_batch: int) -> dict[str, Any]:
    """`clients` threads, each sending `per_client` requests one after another through serve's batching queue.

    Each request is what serve's /v1/rank makes of its body: candidates from records, one group, one groups job.
    """
    from codescaler_cli.records import FieldNames, candidate_from_record
    from codescaler_cli.serving.batcher import Batcher, groups_job

    batches: list[Any] = []
    batcher = Batcher(scorer, max_batch_tokens=scorer.max_batch_tokens, batch_wait_ms=wait_ms,
                      max_batch_requests=per_batch, on_batch=batches.append)
    latencies: list[float] = []
    unscored = [0]
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def client(number: int) -> None:
        try:
            start.wait()
            for turn in range(per_client):
                question, responses = requests[(number * per_client + turn) % len(requests)]
                candidates = []
                for i, response in enumerate(responses):
                    candidate = candidate_from_record({"question": question, "response": response}, "candidates", i,
                                                      i, FieldNames(), require_question=True)
                    candidate.group_key = ("request", 0)
                    candidates.append(candidate)
                sent = time.perf_counter()
                ranked = batcher.submit(groups_job([candidates], "syntax")).result()
                with lock:
                    latencies.append(time.perf_counter() - sent)
                    unscored[0] += sum(c.valid and c.score is None for c in ranked[0])
        except BaseException as exc:  # reported below; a thread must not die silently
            errors.append(exc)

    tokens_before = scorer.stats.tokens
    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    batcher.close()
    if errors:
        raise errors[0]
    sent_requests = clients * per_client
    candidates = sum(len(requests[(n * per_client + t) % len(requests)][1])
                     for n in range(clients) for t in range(per_client))
    ordered = sorted(latencies)
    tokens_run = scorer.stats.tokens - tokens_before
    return {"seconds": seconds, "requests": sent_requests, "candidates": candidates, "tokens_run": tokens_run,
            "tokens_sent": tokens_run, "p50": ordered[len(ordered) // 2],
            "p99": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
            "batches": len(batches), "requests_per_batch": sum(b.jobs for b in batches) / max(1, len(batches)),
            "unscored": unscored[0]}


# --------------------------------------------------------------------------------------------- table


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def human_count(value: float) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.2f}{unit}"
    return f"{value:.0f}"


def rate(value: float | None) -> str:
    """TFLOP/s and percentages: one decimal at GPU scale, three significant digits for the tiny CPU numbers."""
    if value is None:
        return "-"
    return f"{value:.1f}" if value >= 1 else f"{value:.3g}"


def render(report: Report) -> str:
    machine = report.machine
    where = machine.get("gpu") or f"CPU ({machine.get('cpu')}, {machine.get('threads')} threads)"
    lines = [f"codescaler GPU bench: {where}; torch {machine.get('torch')}, transformers "
             f"{machine.get('transformers')}; {machine.get('date')}"]
    w = report.workload
    if w:
        lines.append(f"workload: {w['problems']} problems x {report.args['n']} candidates; {w['valid']} valid, "
                     f"{w['unique_valid']} distinct programs; question {w['question_tokens']['min']}-"
                     f"{w['question_tokens']['max']} tokens, code {w['code_tokens']['min']}-{w['code_tokens']['max']} "
                     f"(median {w['code_tokens']['median']}), cut at {report.args['max_length']}; "
                     f"{w['card_tokens']:,} tokens as the card recipe sees them; extraction (before the timed rows) "
                     f"{w['extraction_seconds']}s")
    peak = report.peak
    if peak:
        lines.append(f"peak: {peak['source']}; measured {peak['dtype']} matmul {rate(peak['measured'])} TFLOP/s "
                     f"({peak['measured_share']})")
    for name, info in report.models.items():
        config = info["config"]
        lines.append(f"model {name}: {plural(config['num_hidden_layers'], 'layer')}, "
                     f"hidden {config['hidden_size']}, "
                     f"{config['num_attention_heads']}/{config['num_key_value_heads']} heads, "
                     f"{human_count(info['parameters'])} parameters ({human_count(info['matmul_parameters'])} in "
                     f"matmuls); random weights; rank's dtype {info.get('rank_dtype', '?')}")
    order = {key: number for number, key in enumerate(("ceiling", *MODEL_ROWS))}
    models = {name: number for number, name in enumerate(["-", *report.models])}
    rows = sorted(report.rows, key=lambda r: (models.get(r.model, len(models)), order[r.key]))
    header = ["model", "row", "wall s", "tokens/s", "tokens run", "TFLOP/s", "% peak", "result"]
    body = []
    for row in rows:
        result = row.result if row.status == "ok" else (row.status + (f" [{row.result}]" if row.result else ""))
        body.append([row.model, row.label, "-" if row.seconds is None else f"{row.seconds:.2f}",
                     "-" if row.tokens_per_second is None else f"{row.tokens_per_second:,.0f}",
                     "-" if row.tokens_run is None else f"{row.tokens_run:,}", rate(row.tflops),
                     rate(None if row.peak_share is None else 100 * row.peak_share), result])
    widths = [max(len(header[i]), *(len(r[i]) for r in body)) if body else len(header[i]) for i in range(7)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(cells[:7])) \
            + "  " + cells[7]

    lines += ["", line(header), line(["-" * w for w in widths] + ["-" * 6])]
    lines += [line(cells) for cells in body]
    lines.append("")
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (cuda:N) or cpu")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny models and a small, truncated workload: every row's code path in about a minute "
                        "on a CPU")
    parser.add_argument("--sizes", default="4B,1.7B", help=f"model shapes, in order, from {', '.join(SHAPES)}")
    parser.add_argument("--problems", type=int, default=None, help="problems in the workload (default 24; tiny 2)")
    parser.add_argument("--n", type=int, default=16, help="candidates per problem (best-of-N)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per speed row (default 3; tiny 1)")
    parser.add_argument("--warmup-problems", type=int, default=None,
                        help="problems in each speed row's untimed warm-up (default 3; tiny 0)")
    parser.add_argument("--profile-problems", type=int, default=None,
                        help="problems of each speed row's profiled run, for the busy share (default 4; tiny 1)")
    parser.add_argument("--fidelity-problems", type=int, default=16, help="problems compared in bf16 and float32")
    parser.add_argument("--exact-problems", type=int, default=None,
                        help="problems the variants are checked on in float32 (default 2; tiny 1)")
    parser.add_argument("--clients", type=int, default=None,
                        help="concurrent client threads for the serve rows (default 64; tiny 16)")
    parser.add_argument("--client-requests", type=int, default=None,
                        help="requests each client sends, one after another (default 1)")
    parser.add_argument("--request-candidates", type=int, default=None,
                        help=f"candidates per serve request (default {GRPO_GROUP}, a GRPO group; tiny 2)")
    parser.add_argument("--max-length", type=int, default=None,
                        help=f"truncation length, rank's --max-length (default {MAX_LENGTH}; tiny 1024)")
    parser.add_argument("--sdpa-pack-tokens", type=int, default=None,
                        help=f"pack length of rows (e) and (f) (default {SDPA_PACK_TOKENS}; tiny 2048)")
    parser.add_argument("--flex-pack-tokens", type=int, default=None,
                        help=f"pack length of row (g) (default {FLEX_PACK_TOKENS}; tiny 2048)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="soft time budget: rows that would start later are skipped (default 420 on CUDA)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="bf16 peak for the '%% peak' column (default: the datasheet's for H100/H200, else the "
                        "measured matmul ceiling)")
    parser.add_argument("--tokenizer-vocab", type=int, default=None,
                        help="BPE vocabulary trained for the run (default 32768, reaching ~13k tokens; tiny 2048)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here as JSON (after every row)")
    args = parser.parse_args(argv)
    def default(value: Any, full: Any, tiny: Any) -> Any:
        return value if value is not None else (tiny if args.tiny else full)

    # --tiny keeps every row's code path and shrinks what it runs: a shared 2-core machine runs the lot in ~a minute.
    args.problems = default(args.problems, 24, 2)
    args.repeat = default(args.repeat, 3, 1)
    args.warmup_problems = default(args.warmup_problems, 3, 0)
    args.profile_problems = min(default(args.profile_problems, 4, 1), args.problems)
    args.exact_problems = default(args.exact_problems, 2, 1)
    args.clients = default(args.clients, 64, 16)
    args.client_requests = default(args.client_requests, 1, 1)
    args.request_candidates = default(args.request_candidates, GRPO_GROUP, 2)
    args.tokenizer_vocab = default(args.tokenizer_vocab, 32768, 2048)
    args.max_length = default(args.max_length, MAX_LENGTH, 640)
    args.sdpa_pack_tokens = default(args.sdpa_pack_tokens, SDPA_PACK_TOKENS, 1024)
    args.flex_pack_tokens = default(args.flex_pack_tokens, FLEX_PACK_TOKENS, 1024)
    if args.budget_s is None and args.device.startswith("cuda"):
        args.budget_s = 420.0
    args.fidelity_problems = min(args.fidelity_problems, args.problems)
    args.exact_problems = min(args.exact_problems, args.problems)
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in args.sizes if s not in SHAPES]
    if unknown:
        parser.error(f"unknown sizes: {', '.join(unknown)} (choose from {', '.join(SHAPES)})")
    for name in ("sdpa_pack_tokens", "flex_pack_tokens"):
        if getattr(args, name) < args.max_length:
            parser.error(f"--{name.replace('_', '-')} must hold the longest text (--max-length {args.max_length})")
    if min(args.problems, args.n, args.repeat, args.clients, args.client_requests, args.request_candidates,
           args.profile_problems, args.fidelity_problems, args.exact_problems) < 1:
        parser.error("--problems, --n, --repeat, --clients, --client-requests, --request-candidates and the "
                     "--*-problems options must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if not args.device.startswith("cuda"):
        # torch.compile takes minutes on a small CPU: flex attention then runs PyTorch's unfused reference.
        os.environ["TORCHDYNAMO_DISABLE"] = "1"
    import torch

    if args.tiny and not args.device.startswith("cuda"):
        # Tiny matrices gain nothing from threads, and on a busy shared machine OpenMP's barriers stall: one
        # thread ran a tiny forward pass 13x faster than two on 2 loaded cores.
        torch.set_num_threads(1)

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"bench_gpu.py: --device {args.device}, but torch {torch.__version__} sees no CUDA GPU; "
              "use --device cpu --tiny for the CPU smoke test", file=sys.stderr)
        return 2
    device = Device(args.device)
    deadline = Deadline(args.budget_s)
    report = Report(args={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                    json_path=args.json)
    report.machine = device.describe()
    if device.cuda:
        # Flex attention compiles per shape; packs and batches come in many lengths.
        import torch._dynamo.config as dynamo_config

        for name in ("recompile_limit", "cache_size_limit"):  # the newer name, or the older one
            if hasattr(dynamo_config, name):
                setattr(dynamo_config, name, max(getattr(dynamo_config, name), 64))
                break
    else:
        import warnings

        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        report.notes.append("CPU: rank's dtype is float32 here (bf16 on a GPU) and torch.compile is off, so flex "
                            "attention runs PyTorch's unfused reference: no GPU conclusion follows from CPU timings")

    import tiny_models
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    work = Path(tempfile.mkdtemp(prefix="codescaler-bench-gpu-"))
    try:
        started = time.perf_counter()
        tokenizer = tiny_models.build_tokenizer(work / "tokenizer", vocab_size=args.tokenizer_vocab,
                                                model_max_length=2 * args.max_length)
        log(f"tokenizer: {len(tokenizer)} tokens ({time.perf_counter() - started:.1f}s)")
        workload = build_workload(work / "candidates.jsonl", args.problems, args.n, args.seed, tokenizer,
                                  args.max_length)
        report.workload = workload.facts
        log(f"workload: {json.dumps(workload.facts)}")

        # In rank's dtype: bf16 on a GPU, float32 on a CPU.
        dtype = torch.bfloat16 if device.cuda else torch.float32
        size = 8192 if device.cuda else 512
        measured = matmul_ceiling(device, size, 10 if device.cuda else 3, dtype)
        spec = args.peak_tflops or device.spec_tflops()
        peak = spec or measured
        dtype_name = str(dtype).replace("torch.", "")
        report.peak = {"tflops": peak, "measured": measured, "dtype": dtype_name,
                       "source": (f"{peak:g} TFLOP/s, " + ("given by --peak-tflops" if args.peak_tflops else
                                                          "dense bf16 by the datasheet") if spec else
                                  "the measured matmul ceiling (no datasheet rate for this device)"),
                       "measured_share": f"{100 * measured / peak:.0f}% of peak"}
        report.add(Row("-", "ceiling", tflops=measured, peak_share=measured / peak,
                       result=f"{size}^3 {dtype_name} matmul, random data, mean of {10 if device.cuda else 3}"))

        shapes = TINY_SHAPES if args.tiny else SHAPES
        from codescaler_cli import reward_conversation

        calibration_texts = [tokenizer.apply_chat_template(reward_conversation(c.question, c.code), tokenize=False)
                             for group in workload.groups[:2] for c in group if c.valid]
        for number, name in enumerate(args.sizes):
            skipped = deadline.reason()
            if skipped:
                for key in MODEL_ROWS:
                    report.add(Row(name, key, status=skipped))
                continue
            started = time.perf_counter()
            model_dir = work / f"reward-{name}"
            try:
                info = build_model(model_dir, shapes[name], tokenizer, device, calibration_texts, seed=number,
                                   max_length=args.max_length)
                info["build_seconds"] = round(time.perf_counter() - started, 1)
                report.models[name] = info
                log(f"model {name}: {human_count(info['parameters'])} parameters, built and saved in "
                    f"{info['build_seconds']}s")
                ModelBench(name, model_dir, info, workload, device, args, report, deadline).run()
            except Exception as exc:  # building or loading this model failed: say so in its rows, go on
                traceback.print_exc(file=sys.stderr)
                done = {row.key for row in report.rows if row.model == name}
                for key in MODEL_ROWS:
                    if key not in done:
                        report.add(Row(name, key, status=f"failed: {type(exc).__name__}: {first_line(exc)}"))
                device.release()
            for path in sorted(model_dir.glob("*.safetensors")):
                path.unlink()  # gigabytes each; the next model needs the disk more
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.notes += [
        "tokens/s: the workload's tokens as the card recipe sees them (every candidate, full text) / wall seconds, "
        "so within a model the ratio of two rows is their speedup; serve rows: tokens run / wall seconds",
        "TFLOP/s: 2 x matmul parameters (the embedding table is a lookup) x tokens the row ran (padding and "
        "attention scores not counted) / wall seconds: a lower bound on what the GPU did",
        "random weights: the score head is calibrated so the workload's scores spread by ~2; bf16 differences "
        "are relative to that spread, not to a trained model's",
        f"bench ran {deadline.elapsed:.0f}s",
    ]
    report.machine["vllm_imported"] = "vllm" in sys.modules
    report.save()
    print(render(report))
    failed = [row for row in report.rows if row.status.startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
