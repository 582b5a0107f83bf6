#!/usr/bin/env python
"""Benchmark reward scoring end to end: the model card recipe against `codescaler rank` with each scorer.

One run builds a realistic best-of-N workload (bench/workload.py: problem statements of a few hundred tokens,
programs of very uneven length with a long tail past 2,000 tokens, ~25% duplicates that differ only in
comments/spacing, ~10% without valid code) and a local reward model of tens of millions of parameters
(tests/tiny_models.build_reward_model, cached under bench/.cache/, git-ignored, or --model-dir), then times
whole processes (wall clock and CPU time, `--repeat` runs each, median reported, repetitions interleaved so
load drifts on a shared machine hit every row alike):

  (a) card recipe   python bench/card_recipe.py FILE -r MODEL  (all N candidates of a problem in one padded batch)
  (b) rank          codescaler rank FILE -r MODEL -f jsonl -o /dev/null -q   [--scorer vllm] [--reward-url URL]

`--scorer vllm` and `--reward-url` rows run only when `codescaler rank --help` lists the option. The
`--reward-url` row starts `python -m vllm.entrypoints.openai.api_server --runner pooling` on 127.0.0.1 (not
timed, warmed up with one request), resets its prefix cache before each run (so no run reuses the previous
one's), and stops it at the end; its CPU time includes the server's.

Token counts come from the tools themselves: card_recipe.py's stats; for the default scorer its own
`ScoringStats` in an in-process accounting pass after the timed runs (not timed), which also checks its scores
against the card recipe's; for the server, its Prometheus counters (prompt tokens minus prefix-cache hits). For
`--scorer vllm` the table shows the tokens sent unless `--accounting all` (one more full scoring run per row).
The floor is what must be scored at least: each problem's prefix (the chat up to the assistant's content) once
plus each unique valid program's remaining tokens.

Defaults are sized for a 2-core CPU to finish in about 6-10 minutes: 8 problems x 16 candidates and a 21M
parameter model (hidden 512, 4 layers, 8 heads / 4 kv, head_dim 64; vocab 16384: with the tiny 2,048-token
vocabulary code and prose take ~1.2-1.4x more tokens than with a real one, and embedding rows cost no compute).
`--problems 16 --layers 8` is closer to the issue's sizes and takes about 3x longer.

    .venv/bin/python bench/bench_scoring.py                 # table on stdout, progress on stderr
    .venv/bin/python bench/bench_scoring.py --json          # machine-readable result on stdout
    .venv/bin/python bench/bench_scoring.py --problems 2 --repeat 1 --rows card,transformers   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT / "tests"))  # tiny_models
sys.path.insert(0, str(BENCH_DIR))  # workload

BAR = 4.0  # the bar: rank (default scorer) at least this much faster than the card recipe
AIM = 6.0
MAX_LENGTH = 4096
ROW_NAMES = ("card", "transformers", "vllm", "remote")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    import torch
    import transformers

    cpu = platform.processor() or "unknown"
    physical: set[tuple[str, str]] = set()
    try:
        physical_id = core_id = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name":
                cpu = value
            elif key == "physical id":
                physical_id = value
            elif key == "core id":
                core_id = value
                physical.add((physical_id, core_id))
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        memory_gib = None
    return {
        "cpu": cpu, "logical_cpus": os.cpu_count(), "physical_cores": len(physical) or None, "usable_cpus": usable,
        "memory_gib": memory_gib, "python": platform.python_version(), "torch": torch.__version__,
        "transformers": transformers.__version__, "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def load_snapshot() -> dict[str, Any]:
    """Load average and CPU pressure (PSI): other work on a shared machine shows up here."""
    snapshot: dict[str, Any] = {}
    try:
        snapshot["loadavg"] = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        pass
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0].split()
        snapshot["cpu_pressure_some"] = {k: float(v) for k, v in (item.split("=") for item in first[1:4])}
    except (OSError, IndexError, ValueError):
        pass
    return snapshot


# --------------------------------------------------------------------------------------------- model


def model_params(args: argparse.Namespace) -> dict[str, int]:
    return {"hidden_size": args.hidden_size, "layers": args.layers, "heads": args.heads, "kv_heads": args.kv_heads,
            "head_dim": args.head_dim, "vocab_size": args.vocab_size}


def ensure_model(model_dir: Path | None, params: dict[str, int]) -> Path:
    """Build the reward model once (in a temp sibling, renamed into place); reuse it when its marker matches."""
    import tiny_models

    if model_dir is None:
        tag = "-".join(f"{k[0]}{v}" for k, v in params.items())
        model_dir = BENCH_DIR / ".cache" / f"reward-{tag}"
    marker = model_dir / tiny_models.MARKER_NAME
    if marker.is_file():
        built = json.loads(marker.read_text())
        if all(built.get(k) == v for k, v in params.items()):
            return model_dir
        raise SystemExit(f"{model_dir} holds a model built with other sizes ({built}); "
                         "pass another --model-dir or delete it")
    if (model_dir / "config.json").is_file():
        log(f"using the model in {model_dir} as it is (not built by this script; the size flags do not apply)")
        return model_dir
    if model_dir.exists() and any(model_dir.iterdir()):
        raise SystemExit(f"{model_dir} is not empty and holds no model; pass an empty or new --model-dir")
    log(f"building the reward model in {model_dir} ...")
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".reward-", dir=model_dir.parent))
    try:
        tiny_models.build_reward_model(tmp, **params)
        if model_dir.exists():
            model_dir.rmdir()  # empty, checked above
        os.replace(tmp, model_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model_dir


def count_params(model_dir: Path) -> int:
    """Parameter count from the safetensors header (no model load)."""
    total = 0
    for path in model_dir.glob("*.safetensors"):
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= dim
                total += count
    return total


# --------------------------------------------------------------------------------------------- workload facts


@dataclass
class WorkloadFacts:
    problems: int
    n: int
    candidates: int
    valid: int
    duplicates: int
    invalid: int
    unique_valid: int
    question_tokens: list[int]
    code_tokens: list[int]
    truncated_unique: int
    floor_tokens: int
    sent_tokens: int  # full (truncated) text tokens of the unique valid programs: what vLLM backends are sent
    card_tokens: int = 0
    card_padded_tokens: int = 0


def workload_facts(path: Path, model_dir: Path, problems: int, n: int) -> WorkloadFacts:
    """Token facts of the workload, computed here independently of codescaler's scorers (tokenizer only)."""
    from transformers import AutoTokenizer

    from codescaler_cli.extraction import dedup_key, extract_code

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    sentinel = "\uffffBENCH\uffff"

    def render(question: str, code: str) -> str:
        return tokenizer.apply_chat_template([{"role": "user", "content": question},
                                              {"role": "assistant", "content": code}], tokenize=False)

    groups: dict[str, list[dict]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        groups.setdefault(record["id"], []).append(record)
    facts = WorkloadFacts(problems=problems, n=n, candidates=0, valid=0, duplicates=0, invalid=0, unique_valid=0,
                          question_tokens=[], code_tokens=[], truncated_unique=0, floor_tokens=0, sent_tokens=0)
    for records in groups.values():
        question = records[0]["question"]
        facts.question_tokens.append(len(tokenizer(question)["input_ids"]))
        text = render(question, sentinel)
        prefix = tokenizer(text[: text.index(sentinel)])["input_ids"]
        facts.floor_tokens += len(prefix)
        seen: set[str] = set()
        for record in records:
            facts.candidates += 1
            extraction = extract_code(record["response"])
            facts.code_tokens.append(len(tokenizer(extraction.code)["input_ids"]) if extraction.code else 0)
            if not extraction.valid:
                facts.invalid += 1
                continue
            facts.valid += 1
            key = dedup_key(extraction.code)
            if key in seen:
                facts.duplicates += 1
                continue
            seen.add(key)
            facts.unique_valid += 1
            ids = tokenizer(render(question, extraction.code), truncation=True, max_length=MAX_LENGTH)["input_ids"]
            facts.truncated_unique += len(tokenizer(render(question, extraction.code))["input_ids"]) > MAX_LENGTH
            facts.sent_tokens += len(ids)
            # Where the ids do not start with the prefix (BPE merged across it) the whole text must run.
            facts.floor_tokens += len(ids) - len(prefix) if ids[: len(prefix)] == prefix else len(ids)
    return facts


# --------------------------------------------------------------------------------------------- rows


@dataclass
class Row:
    name: str
    label: str
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None
    failed: str | None = None
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    tokens: int | None = None
    padded_tokens: int | None = None
    token_source: str = ""
    token_mark: str = ""
    score_check: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu_seconds) if self.cpu_seconds else None


def rank_help() -> str:
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run([str(codescaler_bin()), "rank", "--help"], capture_output=True, text=True, env=env)
    return done.stdout + done.stderr


def codescaler_bin() -> Path:
    candidate = Path(sys.executable).parent / "codescaler"
    return candidate if candidate.exists() else Path(shutil.which("codescaler") or "codescaler")


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost"})
    return env


def vllm_env() -> dict[str, str]:
    return {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),
            "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class VllmServer:
    """`python -m vllm.entrypoints.openai.api_server --runner pooling` on 127.0.0.1, in its own process group."""

    def __init__(self, model_dir: Path, log_path: Path, timeout: float) -> None:
        self.port = free_port()
        self.log_path = log_path
        command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                   "--runner", "pooling", "--host", "127.0.0.1", "--port", str(self.port), "--dtype", "float32",
                   "--max-model-len", str(MAX_LENGTH)]
        self.log_file = open(log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self.log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL,
                                        # dev mode: /reset_prefix_cache, so no rep reuses the previous one's cache
                                        env={**base_env(), **vllm_env(), "VLLM_SERVER_DEV_MODE": "1"},
                                        start_new_session=True)
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        self._wait(timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _wait(self, timeout: float) -> None:
        opener = self.opener
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM server exited with {self.process.returncode}: " + self.log_tail())
            try:
                with opener.open(f"http://127.0.0.1:{self.port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vLLM server not healthy after {timeout:.0f}s: " + self.log_tail())
            time.sleep(0.5)

    def warm_up(self, model: str) -> None:
        """One small /classify request, so the timed runs meet a server that has served before (as in use)."""
        body = json.dumps({"model": model, "input": ["def f():\n    return 1\n"], "use_activation": False}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/classify", data=body,
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with self.opener.open(request, timeout=120) as answer:
                answer.read()
        except OSError as exc:
            log(f"warm-up request failed: {exc}")

    def reset_prefix_cache(self) -> bool:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/reset_prefix_cache", data=b"",
                                         method="POST")
        try:
            with self.opener.open(request, timeout=30) as answer:
                return bool(json.loads(answer.read() or b"{}").get("success", answer.status == 200))
        except (OSError, ValueError):
            return False

    def counters(self) -> dict[str, float]:
        """vLLM's Prometheus counters of prompt tokens: all, and those served from its prefix cache."""
        wanted = {"vllm:prompt_tokens_total": "prompt", "vllm:prompt_tokens_cached_total": "cached"}
        found = {"prompt": 0.0, "cached": 0.0}
        try:
            with self.opener.open(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as answer:
                text = answer.read().decode("utf-8", "replace")
        except OSError:
            return {}
        for line in text.splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in wanted:
                found[wanted[name]] += float(line.rsplit(" ", 1)[1])
        return found

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)  # the server we started, and only its children
                self.process.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait()
        self.log_file.close()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of the live processes of a process group (the vLLM server and its engine)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 12 and int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def run_timed(row: Row, log_dir: Path, rep: int, server: "VllmServer | None" = None) -> tuple[float, float, float]:
    """Run the row's command once as a whole process: (wall seconds, CPU seconds, of which the server's).

    Raises on a non-zero exit.

    CPU seconds are the process's (and its children's) user + system time, plus the server's for the server row:
    on a machine shared with other work they show how much of the wall time was actually computing.
    """
    err_path = log_dir / f"{row.name}-{rep}.stderr"
    server_cpu = group_cpu_seconds(server.process.pid) if server is not None else 0.0
    with open(err_path, "wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(row.command, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
                                   env={**base_env(), **row.env})
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    server_cpu = group_cpu_seconds(server.process.pid) - server_cpu if server is not None else 0.0
    if process.returncode != 0:
        tail = err_path.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"exit status {process.returncode}: {tail}")
    return seconds, usage.ru_utime + usage.ru_stime + server_cpu, server_cpu


# --------------------------------------------------------------------------------------------- accounting


def accounting_pass(kind: str, workload: Path, model_dir: Path, url: str | None) -> tuple[Any, dict[int, float]]:
    """Score the workload in-process through codescaler's pipeline; the scorer's stats and scores by line."""
    from codescaler_cli.pipeline import extract_all, score_groups
    from codescaler_cli.records import group_candidates, read_candidates

    candidates = extract_all(read_candidates(str(workload), require_question=True))
    groups = group_candidates(candidates)
    try:
        from codescaler_cli.scoring import ScorerConfig, open_scorer
    except ImportError:  # before the scorer registry existed
        if kind != "transformers":
            raise
        from codescaler_cli.scoring.transformers_backend import TransformersScorer

        scorer = TransformersScorer(str(model_dir), device="cpu", max_length=MAX_LENGTH)
    else:
        if kind == "vllm":
            for key, value in vllm_env().items():
                os.environ.setdefault(key, value)
        scorer = open_scorer(ScorerConfig(model=str(model_dir), kind="vllm" if kind == "vllm" else "transformers",
                                          device="cpu", max_length=MAX_LENGTH, urls=[url] if url else []))
    try:
        # Only the candidate each distinct program was scored as (the first of its dedup key in its problem):
        # duplicates get that score too, which the card recipe, scoring their own text, does not reproduce.
        scores: dict[int, float] = {}
        for ranked in score_groups(groups, scorer):
            seen: set[str] = set()
            for candidate in sorted(ranked, key=lambda c: c.index):
                if candidate.score is not None and candidate.dedup_key not in seen:
                    seen.add(candidate.dedup_key)
                    scores[candidate.line] = candidate.score
        return scorer.stats, scores
    finally:
        scorer.close()


def compare_scores(card: dict[int, float], tool: dict[int, float]) -> str:
    common = [line for line in tool if line in card]
    if not common:
        return "no scores to compare"
    worst = max(abs(card[line] - tool[line]) for line in common)
    return (f"max |score - card recipe| = {worst:.1e} over the {len(common)} unique valid programs "
            "(duplicates share their first copy's score by design, so they are not compared)")


def read_card_scores(path: Path) -> dict[int, float]:
    scores = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        record = json.loads(line)
        if record.get("valid"):
            scores[number] = record["score"]
    return scores


# --------------------------------------------------------------------------------------------- output


def fmt_int(value: int | None) -> str:
    return f"{value:,}" if value is not None else "-"


def render_table(result: dict[str, Any]) -> str:
    m, w, model = result["machine"], result["workload"], result["model"]
    load = result["load"]
    lines = [
        f"machine: {m['cpu']}, {m['usable_cpus']} usable CPUs ({m['logical_cpus']} logical, "
        f"{m['physical_cores'] or '?'} physical cores), {m['memory_gib']} GiB",
        f"         python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads"
        f"{', OMP_NUM_THREADS=' + m['omp_num_threads'] if m['omp_num_threads'] else ''}), "
        f"transformers {m['transformers']}",
        f"load:    before {load['before'].get('loadavg')}, after {load['after'].get('loadavg')} (1/5/15 min); "
        f"CPU pressure avg60 before/after {load['before'].get('cpu_pressure_some', {}).get('avg60', '?')}%/"
        f"{load['after'].get('cpu_pressure_some', {}).get('avg60', '?')}%",
        f"model:   {model['dir']} ({model['params'] / 1e6:.1f}M params: hidden {model['hidden_size']}, "
        f"{model['layers']} layers, {model['heads']} heads / {model['kv_heads']} kv, head_dim {model['head_dim']}, "
        f"vocab {model['vocab_size']}), float32",
        f"workload: {w['problems']} problems x {w['n']} = {w['candidates']} candidates (seed {w['seed']}): "
        f"{w['valid']} valid, {w['invalid']} without valid code, {w['duplicates']} duplicates of an earlier "
        f"candidate, {w['unique_valid']} unique valid programs ({w['truncated_unique']} cut at {MAX_LENGTH} tokens)",
        f"          question tokens {w['question_tokens']['min']}-{w['question_tokens']['max']} "
        f"(median {w['question_tokens']['median']}); code tokens median {w['code_tokens']['median']}, "
        f"p90 {w['code_tokens']['p90']}, max {w['code_tokens']['max']}, {w['code_tokens']['over_2000']} over 2,000",
        f"repeats: {result['repeat']} per row, interleaved; wall seconds of whole processes (start-up, model load, "
        "extraction, scoring, output); CPU s = their user+system time (+ the server's for --reward-url)",
        "",
    ]
    header = ["", "wall s (median)", "runs (s)", "CPU s (median)", "tokens run (non-pad)", "padded tokens",
              "padded/floor", "speedup vs (a)"]
    body = []
    card_median = next((r["median"] for r in result["rows"] if r["name"] == "card" and r["median"]), None)
    floor = result["floor_tokens"]
    for row in result["rows"]:
        if row["skipped"] or row["failed"]:
            body.append([row["label"], "skipped: " + row["skipped"] if row["skipped"] else "FAILED: " + row["failed"]])
            continue
        median = row["median"]
        speedup = f"{card_median / median:.2f}x" if card_median and median else "-"
        padded = row["padded_tokens"]
        body.append([row["label"], f"{median:.1f}", " ".join(f"{s:.1f}" for s in row["seconds"]),
                     f"{row['cpu_median']:.1f}" if row["cpu_median"] is not None else "-",
                     fmt_int(row["tokens"]) + row["token_mark"], fmt_int(padded) + row["token_mark"],
                     f"{padded / floor:.2f}" if padded and floor else "-", speedup])
    body.append(["floor (prefix once + unique valid programs)", "", "", "", fmt_int(floor), fmt_int(floor), "1.00", ""])
    widths = [max(len(header[i]), *(len(r[i]) for r in body if len(r) > i)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        if len(cells) == 2:  # a skipped / failed row: one message across the columns
            return f"{cells[0]:<{widths[0]}}  {cells[1]}"
        return "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells))

    lines.append(line(header))
    lines.append("  ".join("-" * w for w in widths))
    lines += [line(r) for r in body]
    lines.append("")
    for row in result["rows"]:
        if row["token_source"] and not row["skipped"] and not row["failed"]:
            lines.append(f"tokens {row['label']}: {row['token_source']}")
        if row["score_check"]:
            lines.append(f"scores {row['label']}: {row['score_check']}")
    verdict = result.get("verdict")
    if verdict:
        lines.append("")
        lines.append(verdict)
    for note in result["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--problems", type=int, default=12,
                        help="problems in the workload (8 keeps a default run near 10 minutes on 2 cores; use 16 "
                        "where time allows, start-up then weighs less)")
    parser.add_argument("--n", type=int, default=16, help="candidates per problem (best-of-N)")
    parser.add_argument("--seed", type=int, default=0, help="workload seed")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per row; the median is reported")
    parser.add_argument("--rows", default=",".join(ROW_NAMES),
                        help="rows to run, comma-separated from: card, transformers, vllm, remote")
    parser.add_argument("--accounting", choices=("all", "transformers", "none"), default="transformers",
                        help="in-process passes (not timed) reading each scorer's own token stats and checking its "
                        "scores against the card recipe; 'all' adds the vLLM rows (a full scoring run each)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="reward model directory (built there if missing); default bench/.cache/reward-<sizes>")
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--vocab-size", type=int, default=16384)
    parser.add_argument("--server-timeout", type=float, default=300.0, help="seconds to wait for the vLLM server")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (workload, outputs, logs)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout instead of the table")
    args = parser.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = set(rows) - set(ROW_NAMES)
    if unknown:
        parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
    args.rows = rows
    if args.repeat < 1 or args.problems < 1 or args.n < 1:
        parser.error("--repeat, --problems and --n must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    from workload import build_workload

    notes: list[str] = []
    load_before = load_snapshot()
    machine = machine_info()
    params = model_params(args)
    model_dir = ensure_model(args.model_dir, params)
    n_params = count_params(model_dir)
    if not 10_000_000 <= n_params < 100_000_000:
        notes.append(f"the model has {n_params / 1e6:.1f}M parameters, not tens of millions")

    work = Path(tempfile.mkdtemp(prefix="codescaler-bench-"))
    server: VllmServer | None = None
    try:
        workload_path = work / "candidates.jsonl"
        summary = build_workload(workload_path, problems=args.problems, n=args.n, seed=args.seed)
        facts = workload_facts(workload_path, model_dir, args.problems, args.n)
        log(f"workload: {workload_path} ({facts.candidates} candidates, {facts.invalid} invalid, "
            f"{facts.duplicates} duplicates); model {model_dir} ({n_params / 1e6:.1f}M params)")

        help_text = rank_help()
        rank_base = [str(codescaler_bin()), "rank", str(workload_path), "-r", str(model_dir), "-f", "jsonl",
                     "-o", os.devnull, "-q"]
        card_out = work / "card-scores.jsonl"
        rows: list[Row] = []
        if "card" in args.rows:
            rows.append(Row("card", "(a) card recipe (bench/card_recipe.py)",
                            [sys.executable, str(BENCH_DIR / "card_recipe.py"), str(workload_path), "-r",
                             str(model_dir), "-o", str(card_out), "--stats", str(work / "card-stats.json")]))
        if "transformers" in args.rows:
            rows.append(Row("transformers", "(b) codescaler rank (transformers)", rank_base))
        if "vllm" in args.rows:
            row = Row("vllm", "(b) codescaler rank --scorer vllm", rank_base + ["--scorer", "vllm"], env=vllm_env())
            if "--scorer" not in help_text:
                row.skipped = "`codescaler rank --help` lists no --scorer option"
            rows.append(row)
        if "remote" in args.rows:
            row = Row("remote", "(b) codescaler rank --reward-url (vLLM server)", [])
            if "--reward-url" not in help_text:
                row.skipped = "`codescaler rank --help` lists no --reward-url option"
            else:
                log("starting the vLLM pooling server on 127.0.0.1 (not timed) ...")
                try:
                    server = VllmServer(model_dir, work / "vllm-server.log", args.server_timeout)
                    server.warm_up(str(model_dir))
                    row.command = rank_base + ["--reward-url", server.url]
                except (RuntimeError, OSError) as exc:
                    row.failed = f"server did not start: {exc}"
            rows.append(row)

        server_counts: list[tuple[float, float]] = []  # per remote rep: prompt tokens, of which prefix-cached
        server_cpu_start = group_cpu_seconds(server.process.pid) if server is not None else 0.0
        server_busy = 0.0
        for rep in range(1, args.repeat + 1):
            for row in rows:
                if row.skipped or row.failed:
                    continue
                row_server = server if row.name == "remote" else None
                before: dict[str, float] = {}
                if row_server is not None:
                    if not row_server.reset_prefix_cache():
                        notes.append(f"rep {rep}: could not reset the vLLM server's prefix cache")
                    before = row_server.counters()
                try:
                    seconds, cpu, in_server = run_timed(row, work, rep, row_server)
                    server_busy += in_server
                except RuntimeError as exc:
                    row.failed = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else "failed"
                    log(f"[{row.name} {rep}/{args.repeat}] FAILED: {exc}")
                    continue
                row.seconds.append(seconds)
                row.cpu_seconds.append(cpu)
                if row_server is not None and before:
                    after = row_server.counters()
                    if after:
                        server_counts.append((after["prompt"] - before["prompt"], after["cached"] - before["cached"]))
                log(f"[{row.name} {rep}/{args.repeat}] {seconds:.1f}s wall, {cpu:.1f}s CPU")

        if server is not None:
            idle = group_cpu_seconds(server.process.pid) - server_cpu_start - server_busy
            if idle > 5:
                notes.append(f"the idle vLLM server used {idle:.0f} CPU seconds while the other rows ran")

        # Token counts, from the tools themselves.
        card_scores: dict[int, float] = {}
        for row in rows:
            if row.name == "card" and row.seconds:
                stats = json.loads((work / "card-stats.json").read_text())
                row.tokens, row.padded_tokens = stats["tokens"], stats["padded_tokens"]
                row.token_source = (f"card_recipe.py's count: {stats['batches']} batch(es), one per problem, "
                                    f"attention-mask ones / rows x padded width")
                facts.card_tokens, facts.card_padded_tokens = row.tokens, row.padded_tokens
                card_scores = read_card_scores(card_out)
        for row in rows:
            if row.name == "card" or row.skipped or row.failed or not row.seconds:
                continue
            if row.name == "remote" and server_counts:
                # The server knows what it ran: prompt tokens minus those served from its prefix cache.
                prompt, cached = server_counts[-1]
                row.tokens = row.padded_tokens = int(prompt - cached)
                row.token_source = (f"the server's Prometheus counters over the last run: {int(prompt):,} prompt "
                                    f"tokens sent, {int(cached):,} of them served from its prefix cache (reset "
                                    "before each run), the rest run; vLLM does not pad")
            elif row.name in ("vllm", "remote") and args.accounting != "all":
                row.tokens = row.padded_tokens = facts.sent_tokens
                row.token_mark = "*"
                row.token_source = ("* tokens SENT (unique valid texts, full length, computed here); the engine runs "
                                    "fewer, by what its prefix cache reuses (--accounting all measures it)")
            if args.accounting == "none" or (args.accounting == "transformers" and row.name != "transformers"):
                continue
            log(f"accounting pass for {row.name} (in-process, not timed) ...")
            try:
                url = server.url if server is not None and row.name == "remote" else None
                stats, scores = accounting_pass(row.name, workload_path, model_dir, url)
            except Exception as exc:  # report, don't lose the timings
                row.score_check = f"accounting pass failed: {type(exc).__name__}: {exc}"
                continue
            if card_scores:
                row.score_check = compare_scores(card_scores, scores)
            if row.name == "remote" and server_counts:
                continue  # the client's stats only know what it sent; the server's counters are better
            row.tokens, row.padded_tokens, row.token_mark = stats.tokens, stats.padded_tokens, ""
            row.token_source = (f"the scorer's own ScoringStats: {stats.batches} batch(es), {stats.texts} texts, "
                                + (f"{stats.prefix_tokens:,} prompt tokens served from vLLM's prefix cache (not run)"
                                   if row.name == "vllm" else
                                   f"{stats.prefix_tokens:,} of the tokens run are the shared prefixes, once each"))
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    def quantiles(values: list[int]) -> dict[str, int]:
        ordered = sorted(values)
        return {"min": ordered[0], "median": int(statistics.median(ordered)),
                "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], "max": ordered[-1],
                "over_2000": sum(v > 2000 for v in ordered)}

    result: dict[str, Any] = {
        "machine": machine,
        "load": {"before": load_before, "after": load_snapshot()},
        "model": {"dir": str(model_dir), "params": n_params, **params},
        "workload": {"seed": args.seed, **{k: v for k, v in asdict(facts).items()
                                          if k not in ("question_tokens", "code_tokens")},
                     "question_tokens": quantiles(facts.question_tokens), "code_tokens": quantiles(facts.code_tokens),
                     "generator": {"fresh": summary.fresh, "duplicates": summary.duplicates,
                                   "invalid": summary.invalid}},
        "repeat": args.repeat,
        "floor_tokens": facts.floor_tokens,
        "rows": [{**asdict(row), "median": row.median, "cpu_median": row.cpu_median} for row in rows],
        "notes": notes,
        "bench_seconds": round(time.perf_counter() - started, 1),
    }
    card = next((r for r in rows if r.name == "card" and r.median), None)
    default = next((r for r in rows if r.name == "transformers" and r.median), None)
    if card and default:
        speedup = card.median / default.median
        result["speedup_transformers"] = round(speedup, 2)
        result["verdict"] = (f"bar: codescaler rank (default scorer) is {speedup:.2f}x faster than the card recipe "
                             f"end to end: {'MEETS' if speedup >= BAR else 'MISSES'} the {BAR:g}x bar"
                             f"{' and the ' + format(AIM, 'g') + 'x aim' if speedup >= AIM else ''}.")
    notes.append(f"bench ran {result['bench_seconds']:.0f}s in all")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render_table(result))
    return 0


if __name__ == "__main__":  # vLLM engines spawn workers: keep the entry point guarded
    sys.exit(main())
