#!/usr/bin/env python
"""The model card's reward-scoring recipe applied naively to a best-of-N JSONL file: the baseline of bench_scoring.py.

For each problem (records grouped by `id`, else by `question`), every candidate's code is extracted the way
`codescaler` does it (`codescaler_cli.extraction.extract_code`), and ALL N candidates, valid or not (empty or
broken code is scored too), no deduplication, go through the model in one right-padded batch:

    texts = [tokenizer.apply_chat_template([{"role": "user", "content": q},
                                            {"role": "assistant", "content": code}], tokenize=False) ...]
    inputs = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=4096)
    with torch.no_grad():
        scores = model(**inputs).logits.squeeze(-1)

Writes one JSONL record per input record (the input plus `code`, `valid`, `score`) and a JSON object of what it
ran (`tokens`: real tokens, `padded_tokens`: rows x padded width, `batches`, `texts`, `seconds` in the model) to
`--stats FILE`, or to stderr as one line starting with `card-recipe-stats: ` when no file is given.

    python bench/card_recipe.py candidates.jsonl -r MODEL_DIR -o scores.jsonl --stats stats.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="JSONL with question, response (or code) and optionally id")
    parser.add_argument("-r", "--reward-model", required=True, help="local model directory (or hub id)")
    parser.add_argument("-o", "--output", default="-", help="scores as JSONL (default: stdout)")
    parser.add_argument("--stats", default=None, help="write run statistics (JSON) here; default: stderr")
    parser.add_argument("--max-length", type=int, default=4096, help="truncation length (upstream training: 4096)")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from codescaler_cli.extraction import check_code, extract_code

    groups: dict[tuple[str, object], list[dict]] = {}
    with open(args.input, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                key = ("id", record["id"]) if record.get("id") is not None else ("question", record["question"])
                groups.setdefault(key, []).append(record)

    tokenizer = AutoTokenizer.from_pretrained(args.reward_model)
    # float32 on CPU, as `codescaler rank --dtype auto` uses there.
    model = AutoModelForSequenceClassification.from_pretrained(args.reward_model, dtype=torch.float32)
    model.eval()

    stats = {"texts": 0, "tokens": 0, "padded_tokens": 0, "batches": 0, "seconds": 0.0}
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")
    try:
        for records in groups.values():
            extractions = [extract_code(r.get("response") or "") if r.get("code") is None else check_code(r["code"])
                           for r in records]
            texts = [tokenizer.apply_chat_template([{"role": "user", "content": r["question"]},
                                                    {"role": "assistant", "content": e.code}], tokenize=False)
                     for r, e in zip(records, extractions)]
            started = time.perf_counter()
            inputs = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=args.max_length)
            with torch.no_grad():
                scores = model(**inputs).logits.squeeze(-1)
            stats["seconds"] += time.perf_counter() - started
            stats["texts"] += len(texts)
            stats["tokens"] += int(inputs["attention_mask"].sum())
            stats["padded_tokens"] += int(inputs["input_ids"].numel())
            stats["batches"] += 1
            for record, extraction, score in zip(records, extractions, scores.reshape(-1).tolist()):
                out.write(json.dumps({**record, "code": extraction.code, "valid": extraction.valid,
                                      "score": score}) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if args.stats:
        with open(args.stats, "w", encoding="utf-8") as handle:
            json.dump(stats, handle)
    else:
        print("card-recipe-stats: " + json.dumps(stats), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
