"""Benchmark files from the Hugging Face hub, fetched the way the rest of the ecosystem fetches data: huggingface_hub's
cache (`HF_HOME`, `HF_HUB_CACHE`), a pinned commit, offline from the cache with `HF_HUB_OFFLINE=1`, huggingface_hub's
own progress bars on stderr while downloading, and failures classified as model loads are (`loading.load_error`),
with hints written for datasets.

The environment is read at each call, not when huggingface_hub was imported, so a script (or a test) that sets
`HF_HOME` or `HF_HUB_OFFLINE` after importing codescaler is obeyed. A pinned commit never changes, so files already in
the cache are used without asking the hub anything.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataLoadError
from ..backends.loading import GATED, NO_NETWORK, NOT_FOUND, hub_unreachable, load_error, quiet_hub_client


@dataclass(frozen=True)
class HubFiles:
    """Files of one hub repository at one commit: exact names or fnmatch patterns (e.g. `lcbv5/test-*.parquet`)."""

    repo_id: str
    revision: str
    patterns: tuple[str, ...]
    repo_type: str = "dataset"

    @property
    def url(self) -> str:
        kind = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        return f"https://huggingface.co/{kind}{self.repo_id}"


def hub_cache_dir() -> Path:
    """huggingface_hub's cache directory, as it resolves it: HF_HUB_CACHE, else $HF_HOME/hub, else
    $XDG_CACHE_HOME/huggingface/hub or ~/.cache/huggingface/hub."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.path.expandvars(os.path.expanduser(os.environ[name])))
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(home))) / "hub"


def offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set to a true value: use the cache, never the network."""
    return any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def snapshot_dir(files: HubFiles) -> Path:
    """Where huggingface_hub keeps this commit's files: <cache>/<type>s--<owner>--<name>/snapshots/<revision>."""
    folder = f"{files.repo_type}s--{files.repo_id.replace('/', '--')}"
    return hub_cache_dir() / folder / "snapshots" / files.revision


def cached_files(files: HubFiles) -> list[Path] | None:
    """The cached files, in pattern order (each pattern's matches sorted), or None when any is missing."""
    return _matching(snapshot_dir(files), files.patterns)


def fetch_files(files: HubFiles) -> list[Path]:
    """The files, from the cache or downloaded into it (progress on stderr). Raises DataLoadError with a hint."""
    cached = cached_files(files)
    if cached is not None:
        return cached
    from huggingface_hub import snapshot_download

    quiet_hub_client()
    reason = None if offline() else hub_unreachable()
    if reason is not None:  # in seconds, not after the hub client's retries
        download = f"hf download {files.repo_id} --repo-type {files.repo_type} --revision {files.revision}"
        raise DataLoadError(f"the Hugging Face hub cannot be reached ({reason}) and {files.repo_id} is not in the "
                            "local cache", "check the network or proxy (HTTPS_PROXY, HF_ENDPOINT), or fill the cache "
                            f"elsewhere (`{download}`) and copy it to {hub_cache_dir()}; with a filled cache set "
                            "HF_HUB_OFFLINE=1; or evaluate on a local file with --problems", NO_NETWORK)
    try:
        folder = snapshot_download(files.repo_id, repo_type=files.repo_type, revision=files.revision,
                                   cache_dir=str(hub_cache_dir()), local_files_only=offline(),
                                   allow_patterns=list(files.patterns))
    except Exception as exc:  # huggingface_hub's errors, classified below like model loads
        raise data_error(files, exc) from exc
    found = _matching(Path(str(folder)), files.patterns)
    if found is None:
        raise DataLoadError(
            f"{files.repo_id} at revision {files.revision[:12]} has no file matching "
            f"{', '.join(files.patterns)}", f"see {files.url}/tree/{files.revision}", NOT_FOUND)
    return found


def _matching(folder: Path, patterns: tuple[str, ...]) -> list[Path] | None:
    if not folder.is_dir():
        return None
    names = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    found: list[Path] = []
    for pattern in patterns:
        matches = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
        if not matches:
            return None
        found.extend(folder / name for name in matches)
    return found


def data_error(files: HubFiles, exc: BaseException) -> DataLoadError:
    """A hub failure as a one-line cause and a hint that fits datasets (not models)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    where = f"{files.repo_id} (revision {files.revision[:12]})"
    download = f"hf download {files.repo_id} --repo-type {files.repo_type} --revision {files.revision}"
    if "IncompleteSnapshotError" in names:
        return DataLoadError(f"{where}: the cached copy is incomplete (an interrupted download?)",
                             f"download it again with network access: {download}", NOT_FOUND)
    cause_class = load_error("benchmark data", files.repo_id, exc).cause_class
    local_miss = bool(names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"})
    if cause_class == NOT_FOUND and local_miss and offline():
        return DataLoadError(f"{where} is not in the local Hugging Face cache ({hub_cache_dir()}), and HF_HUB_OFFLINE "
                             "forbids downloading it",
                             f"download it once with network access (`codescaler benchmarks --download NAME`, or "
                             f"`{download}`), or point HF_HOME at the cache that holds it", NOT_FOUND)
    if cause_class == NOT_FOUND:
        if "RevisionNotFoundError" in names:
            return DataLoadError(f"{where}: the pinned revision does not exist in the repository",
                                 f"see {files.url}/commits/main; the repository may have been rewritten",
                                 NOT_FOUND)
        return DataLoadError(f"{where}: not found on the Hugging Face hub",
                             f"check {files.url}; a renamed or private repository needs `hf auth login`", NOT_FOUND)
    if cause_class == NO_NETWORK:
        return DataLoadError(f"the Hugging Face hub could not be reached and {where} is not in the local cache",
                             "check the network or proxy (HTTPS_PROXY, HF_ENDPOINT), or fill the cache elsewhere "
                             f"(`{download}`) and copy it to {hub_cache_dir()}; with a filled cache set "
                             "HF_HUB_OFFLINE=1", NO_NETWORK)
    if cause_class == GATED:
        return DataLoadError(f"access denied to {where}: the dataset is gated or private",
                             f"accept its conditions on {files.url} and log in with `hf auth login` (or set "
                             "HF_TOKEN)", GATED)
    lines = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return DataLoadError(f"cannot fetch {where}: {detail}",
                         "rerun with --debug for details; check HF_HOME, HF_HUB_OFFLINE and the network", cause_class)


__all__ = ["HubFiles", "cached_files", "data_error", "fetch_files", "hub_cache_dir", "offline", "snapshot_dir"]
