"""A persistent cache of reward scores and generated samples: one SQLite file in a directory (`--cache DIR`).

Scores are keyed by what determines them: the reward model (hub id at its resolved commit, or a local
directory's content hash), its dtype, `--max-length`, the question and the exact program text scored. Samples are
keyed by the generator, the conversation, the sampling settings and the sample's own seed (vLLM's sample j of a
request seeded s is the sample seeded s+j), so a run with a larger `-n` reuses the samples a smaller one drew.

The scorer and generator wrappers here open the real backend only on a miss: re-ranking known candidates loads
no model at all. Failed items (an `error`, a non-finite score) are never cached. SQLite in WAL mode with a busy
timeout lets several runs on one machine share a cache; every write is one short transaction, and opening
retries the locks SQLite does not wait for, so runs started together never fail on them.

A cache is a convenience, never a reason for a run to fail: one that cannot be opened or written (a full disk, a
read-only directory) or that turns out corrupt is a warning, and the run goes on without it (without writing to
it, when only writing fails). `codescaler cache clear` removes a corrupt cache file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..backends.http import normalise_base_url
from ..errors import StorageError
from ..generation.base import GenerationRequest, GenerationStats, Generator, ProgressCallback, Sample, SamplingSettings
from ..scoring.base import ScoreRequest, ScoreResult, Scorer, ScoringStats
from .reporter import SILENT, Reporter

CACHE_FILE = "codescaler-cache.sqlite3"
SCHEMA_VERSION = 1
# Files at most this large are hashed whole for a local model's identity; larger ones (weights) by their size and
# their first and last blocks, so a run does not spend a minute reading 16 GB of weights to name them.
WHOLE_HASH_LIMIT = 64 << 20
SAMPLED_BLOCK = 8 << 20
_LOOKUP_BATCH = 500  # keys per SELECT ... IN (...): well under SQLite's parameter limit
# Seconds a connection waits for another's write, and opening retries a lock held by another process.
OPEN_TIMEOUT = 60.0


# SQLite's primary result codes for a file that is not (or no longer) a sound database.
_CORRUPT = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def cache_file(directory: Path) -> Path:
    return Path(directory) / CACHE_FILE


class CacheCorrupt(StorageError):
    """The cache file is damaged (or not a cache at all): `codescaler cache clear` removes it."""


def corrupt(exc: BaseException) -> bool:
    """Whether a database error says the file is corrupt or not a database."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _CORRUPT
    return "malformed" in str(exc) or "not a database" in str(exc)


def storage_error(directory: Path, exc: BaseException, doing: str) -> StorageError:
    """A failed database operation as the error a person can act on: a corrupt file (named, with the command that
    removes it), or one that cannot be used (a full disk, no permission, a lock held too long)."""
    path = cache_file(directory)
    if corrupt(exc):
        return CacheCorrupt(f"the cache {path} is corrupt ({exc})",
                            f"`codescaler cache clear {directory}` removes it")
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return StorageError(f"cannot {doing} the cache {path}: {detail}",
                        "free some space, or give --cache a writable directory (or unset CODESCALER_CACHE)")


class Cache:
    """The cache database in `directory` (created when missing), with hit and miss counts for this process.

    Opening raises StorageError (CacheCorrupt for a damaged file). During a run, a failed read or write is told
    through `reporter` once and the cache steps aside: reads answer nothing after a corrupt or unreadable file,
    writes are dropped after any failure; the run's own results are never lost to its cache.
    """

    def __init__(self, directory: Path | str, *, reporter: Reporter = SILENT) -> None:
        self.directory = Path(directory)
        self.reporter = reporter
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db: sqlite3.Connection | None = _open_database(cache_file(self.directory))
        except (OSError, sqlite3.Error) as exc:
            raise storage_error(self.directory, exc, "open") from None
        self.readable = self.writable = True
        self.score_hits = self.score_misses = 0
        self.sample_hits = self.sample_misses = 0

    def _step_aside(self, exc: sqlite3.Error, doing: str) -> None:
        """After a failed read or write: warn once, stop writing, and stop reading when the file is damaged."""
        if self.writable or (self.readable and doing == "read"):
            error = storage_error(self.directory, exc, doing)
            continuing = ("this run goes on without it" if isinstance(error, CacheCorrupt) or doing == "read"
                          else "this run goes on, without caching what it computes")
            self.reporter.warn(f"{error.message}; {continuing} ({error.hint})")
        self.writable = False
        if doing == "read" or corrupt(exc):
            self.readable = False

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- scores ----------------------------------------------------------------------------------------------------

    def _lookup(self, query: str, keys: Sequence[bytes]) -> Iterator[tuple[Any, ...]]:
        """Rows of `query` (SELECT ... WHERE key IN ({marks})) for `keys`, in batches; none once reads failed."""
        if not self.readable or self._db is None:
            return
        try:
            for start in range(0, len(keys), _LOOKUP_BATCH):
                batch = list(keys[start:start + _LOOKUP_BATCH])
                yield from self._db.execute(query.format(marks=",".join("?" * len(batch))), batch).fetchall()
        except sqlite3.Error as exc:
            self._step_aside(exc, "read")

    def _store(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if not self.writable or self._db is None:
            return
        try:
            with self._db:
                self._db.executemany(statement, rows)
        except sqlite3.Error as exc:
            self._step_aside(exc, "write to")

    def get_scores(self, keys: Sequence[bytes]) -> dict[bytes, tuple[float, bool]]:
        return {bytes(key): (float(score), bool(truncated)) for key, score, truncated in
                self._lookup("SELECT key, score, truncated FROM scores WHERE key IN ({marks})", keys)}

    def put_scores(self, items: Sequence[tuple[bytes, float, bool]]) -> None:
        now = time.time()
        self._store("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)",
                    [(key, score, int(truncated), now) for key, score, truncated in items])

    # -- samples ---------------------------------------------------------------------------------------------------

    def get_samples(self, keys: Sequence[bytes]) -> dict[bytes, Sample]:
        return {bytes(key): Sample(text=bytes(text).decode("utf-8", "surrogatepass"), finish_reason=finish_reason,
                                   tokens=int(tokens)) for key, text, finish_reason, tokens in
                self._lookup("SELECT key, text, finish_reason, tokens FROM samples WHERE key IN ({marks})", keys)}

    def put_samples(self, items: Sequence[tuple[bytes, Sample]]) -> None:
        now = time.time()
        self._store("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?)",
                    [(key, (sample.text or "").encode("utf-8", "surrogatepass"), sample.finish_reason,
                      sample.tokens, now) for key, sample in items])

    # -- maintenance -----------------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """How many scores and samples the cache holds, and its size on disk; StorageError when it cannot say."""
        assert self._db is not None
        try:
            scores = self._db.execute("SELECT count(*) FROM scores").fetchone()[0]
            samples = self._db.execute("SELECT count(*) FROM samples").fetchone()[0]
        except sqlite3.Error as exc:
            raise storage_error(self.directory, exc, "read") from None
        return {"path": str(cache_file(self.directory)), "scores": int(scores), "samples": int(samples),
                "bytes": cache_size(self.directory)}

    def clear(self, what: str = "all") -> None:
        """Delete the scores, the samples or both, and give the space back; StorageError when that fails."""
        assert self._db is not None
        try:
            with self._db:
                if what in ("all", "scores"):
                    self._db.execute("DELETE FROM scores")
                if what in ("all", "samples"):
                    self._db.execute("DELETE FROM samples")
            self._db.execute("VACUUM")
        except sqlite3.Error as exc:
            raise storage_error(self.directory, exc, "clear") from None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def cache_size(directory: Path) -> int:
    """Bytes the cache's files (the database, its write-ahead log and index) take on disk."""
    return sum(os.path.getsize(path) for path in Path(directory).glob(CACHE_FILE + "*") if path.is_file())


def remove_cache(directory: Path) -> int:
    """Delete the cache's files (a corrupt cache: nothing in it can be trusted); the bytes they took."""
    size = cache_size(directory)
    for path in Path(directory).glob(CACHE_FILE + "*"):
        path.unlink(missing_ok=True)
    return size


def _open_database(path: Path) -> sqlite3.Connection:
    """Connect in WAL mode with the tables made, however many processes open the same new cache at once.

    The busy timeout makes a connection wait for another's write, but SQLite answers SQLITE_BUSY at once, without
    waiting, to a switch into WAL mode that races another connection (and to the first reads of a database
    another process is setting up). Those are retried here from a fresh connection, with jittered backoff.
    """
    deadline = time.monotonic() + OPEN_TIMEOUT
    delay = 0.005
    while True:
        db = sqlite3.connect(path, timeout=OPEN_TIMEOUT, isolation_level=None, check_same_thread=False)
        try:
            _prepare(db)
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            if not _busy(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 0.25)


def _prepare(db: sqlite3.Connection) -> None:
    # WAL is a property of the file: once one process switched it, the others find it set and skip the switch.
    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        db.execute("PRAGMA journal_mode = WAL")
    # NORMAL in WAL mode: a power cut may lose the last transactions, never corrupt the file.
    db.execute("PRAGMA synchronous = NORMAL")
    with db:
        db.execute("CREATE TABLE IF NOT EXISTS scores (key BLOB PRIMARY KEY, score REAL NOT NULL, "
                   "truncated INTEGER NOT NULL, created REAL NOT NULL) WITHOUT ROWID")
        db.execute("CREATE TABLE IF NOT EXISTS samples (key BLOB PRIMARY KEY, text BLOB NOT NULL, "
                   "finish_reason TEXT, tokens INTEGER NOT NULL, created REAL NOT NULL) WITHOUT ROWID")
        db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))


def _busy(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED (any extended code): another connection holds the lock for now."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


@contextmanager
def cache_of(cache: Cache | Path | str | None, reporter: Reporter = SILENT) -> Iterator[Cache | None]:
    """The cache a run uses: one passed in (its owner closes it), or one opened in a directory for this run, which
    tells `reporter` when it fails. A cache that cannot be opened is a warning: the run goes on without one."""
    if cache is None or isinstance(cache, Cache):
        yield cache
        return
    try:
        opened = Cache(cache, reporter=reporter)
    except StorageError as exc:
        reporter.warn(f"{exc.message}; this run goes on without it ({exc.hint})")
        yield None
        return
    with opened:
        yield opened


def cache_key(*parts: Any) -> bytes:
    """A fixed-size key of JSON-able parts (ASCII escapes, so lone surrogates in user text hash fine)."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=True, separators=(",", ":")).encode("ascii")).digest()


# -------------------------------------------------------------------------------------------------------------------
# What names a model in a key.

_fingerprints: dict[tuple[str, str | None], str] = {}


def model_fingerprint(model: str, revision: str | None = None) -> str:
    """A model's identity for cache keys: a local directory's content hash, or a hub id at its resolved commit.

    A hub id is resolved through the local Hugging Face cache only (no network); when the model was never
    downloaded, the id and the revision as given stand in.
    """
    key = (model, revision)
    if key in _fingerprints:
        return _fingerprints[key]
    path = Path(model).expanduser()
    if path.is_dir():
        fingerprint = "dir:" + directory_hash(path)
    else:
        fingerprint = f"hub:{model}@{_resolved_commit(model, revision) or revision or 'main'}"
    _fingerprints[key] = fingerprint
    return fingerprint


def directory_hash(directory: Path) -> str:
    """The hash of a model directory's files: names and contents (large files by size and first/last blocks)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative.startswith(".") or "/." in relative:
            continue  # e.g. .cache/ or editor files: not part of the model
        size = path.stat().st_size
        digest.update(f"{relative}\0{size}\0".encode("utf-8", "surrogatepass"))
        with open(path, "rb") as handle:
            if size <= WHOLE_HASH_LIMIT:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            else:
                digest.update(handle.read(SAMPLED_BLOCK))
                handle.seek(size - SAMPLED_BLOCK)
                digest.update(handle.read(SAMPLED_BLOCK))
    return digest.hexdigest()[:32]


def _resolved_commit(model: str, revision: str | None) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(model, "config.json", revision=revision)
    except Exception:  # an id that is not a valid repo name, an unreadable cache...: no commit to name
        return None
    if isinstance(found, str):
        parts = Path(found).parts
        if "snapshots" in parts:
            return parts[parts.index("snapshots") + 1]
    return None


# -------------------------------------------------------------------------------------------------------------------
# Backends that consult the cache first.


class CachedScorer:
    """A scorer that answers from the cache and sends only the misses to `inner` (opened lazily by its owner)."""

    def __init__(self, inner: Scorer, cache: Cache, identity: Sequence[Any]) -> None:
        self.inner = inner
        self.cache = cache
        self.identity = list(identity)

    @property
    def stats(self) -> ScoringStats:
        return self.inner.stats

    def key(self, request: ScoreRequest) -> bytes:
        return cache_key("score", *self.identity, request.question, request.code)

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressCallback | None = None) -> list[ScoreResult]:
        keys = [self.key(request) for request in requests]
        found = self.cache.get_scores(keys)
        results: list[ScoreResult | None] = [None] * len(requests)
        misses: list[int] = []
        for position, key in enumerate(keys):
            if key in found:
                score, truncated = found[key]
                results[position] = ScoreResult(score=score, truncated=truncated)
            else:
                misses.append(position)
        self.cache.score_hits += len(requests) - len(misses)
        self.cache.score_misses += len(misses)
        if progress is not None and len(misses) < len(requests):
            progress(len(requests) - len(misses))
        if misses:
            computed = self.inner.score([requests[i] for i in misses], progress)
            if len(computed) != len(misses):  # zip would pair later scores with the wrong requests
                raise RuntimeError(f"the scorer returned {len(computed)} results for {len(misses)} texts")
            store = []
            for position, result in zip(misses, computed):
                results[position] = result
                if result.error is None and result.score is not None and math.isfinite(result.score):
                    store.append((keys[position], result.score, result.truncated))
            if store:
                self.cache.put_scores(store)
        return [result for result in results if result is not None]

    def close(self) -> None:
        self.inner.close()


class CachedGenerator:
    """A generator that answers from the cache and opens the real one (`open_inner()`) only on a miss.

    A request with missing samples is re-sent from its first missing sample on (seed s+j, n-j samples), which vLLM
    samples exactly as the tail of the full request.
    """

    def __init__(self, open_inner: Callable[[], Generator], cache: Cache, identity: Sequence[Any]) -> None:
        self._open_inner = open_inner
        self.inner: Generator | None = None
        self.cache = cache
        self.identity = list(identity)

    @property
    def stats(self) -> GenerationStats:
        return self.inner.stats if self.inner is not None else GenerationStats()

    def key(self, request: GenerationRequest, settings: SamplingSettings, seed: int) -> bytes:
        return cache_key("sample", *self.identity, request.messages, settings.temperature, settings.top_p,
                         settings.max_tokens, seed)

    def generate(self, requests: Sequence[GenerationRequest], settings: SamplingSettings,
                 progress: ProgressCallback | None = None) -> list[list[Sample]]:
        keys = [[self.key(request, settings, request.seed + j) for j in range(request.n)] for request in requests]
        found = self.cache.get_samples([key for per_request in keys for key in per_request])
        results: list[list[Sample]] = []
        tails: list[tuple[int, int]] = []  # (request position, first missing sample)
        for position, per_request in enumerate(keys):
            samples = [found.get(key) for key in per_request]
            first_missing = next((j for j, sample in enumerate(samples) if sample is None), len(samples))
            results.append([sample for sample in samples[:first_missing] if sample is not None])
            if first_missing < len(samples):
                tails.append((position, first_missing))
            self.cache.sample_hits += first_missing
            self.cache.sample_misses += len(samples) - first_missing
        if progress is not None:
            progress(sum(len(r) for r in results))
        if tails:
            if self.inner is None:
                self.inner = self._open_inner()
            sent = [GenerationRequest(requests[position].messages, requests[position].n - start,
                                      requests[position].seed + start) for position, start in tails]
            outputs = self.inner.generate(sent, settings, progress)
            store = []
            for (position, start), samples in zip(tails, outputs):
                results[position].extend(samples)
                for j, sample in enumerate(samples):
                    if sample.error is None and sample.text is not None:
                        store.append((keys[position][start + j], sample))
            if store:
                self.cache.put_samples(store)
        return results

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def generator_identity(config: Any) -> list[Any]:
    """What, besides the conversation, settings and seed, a sample depends on (a `GeneratorConfig`)."""
    if config.urls:
        # A served model is named by the server; without a name, the servers themselves are what we know.
        return ["server", config.model, config.endpoint, config.tokenizer,
                None if config.model else sorted(config.urls)]
    from ..generation.base import DEFAULT_GENERATOR_MODEL

    return ["vllm", model_fingerprint(config.model or DEFAULT_GENERATOR_MODEL, config.revision), config.dtype,
            config.max_model_len]


def scorer_identity(config: Any) -> list[Any]:
    """What, besides the texts, a reward score depends on (a `ScorerConfig`). Scores from servers are keyed by the
    servers too: -r names only the tokenizer there, and two servers may serve different checkpoints under one
    name."""
    servers = config.urls
    where: Any = ["servers", *sorted(normalise_base_url(url) for url in servers)] if servers else config.dtype
    # No model on servers: the one they serve, which the servers' addresses stand for.
    model = model_fingerprint(config.model, config.revision) if config.model is not None else None
    return [model, where, config.max_length]
