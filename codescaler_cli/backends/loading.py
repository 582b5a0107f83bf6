"""Loading models the same way in every backend: device and dtype choices, config checks, and load errors that say
what went wrong and what to do about it.

A model can fail to load for a handful of reasons that need different fixes (a typo in the path, no network, a
gated model, too little memory, a model of the wrong kind, damaged files, a library too old for the model).
`load_error` tells them apart from the exception types and the exception chain first and the message text second,
so the hint printed under the error names the fix for that cause, not a generic checklist.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, debug_enabled

# The causes `load_error` tells apart (the `cause_class` of the error it returns).
NOT_FOUND = "not_found"
NO_NETWORK = "no_network"
GATED = "gated"
MEMORY = "memory"
ARCHITECTURE = "architecture"
CORRUPT = "corrupt"
VERSION = "version"
UNKNOWN = "unknown"
CAUSE_CLASSES = (NOT_FOUND, NO_NETWORK, GATED, MEMORY, ARCHITECTURE, CORRUPT, VERSION, UNKNOWN)


class ClassifiedLoadError(ModelLoadError):
    """A ModelLoadError that knows which kind of cause it has (one of CAUSE_CLASSES)."""

    def __init__(self, message: str, hint: str | None, cause_class: str) -> None:
        super().__init__(message, hint)
        self.cause_class = cause_class


# The devices and dtypes a model can be asked for ("auto": the best this machine has).
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(device: str) -> str:
    """'auto' means CUDA when available, else CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"--device {device} requested but no CUDA GPU is available",
                             "use --device cpu (or auto)")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    """'auto' means bfloat16 on GPU and float32 on CPU (where bf16 matmuls are slow and less exact)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise ModelLoadError(f"unknown dtype '{dtype}'", "use auto, float32, bfloat16 or float16") from None


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom_type is not None and isinstance(exc, oom_type)) or "out of memory" in str(exc).lower()


# -- classifying load failures ---------------------------------------------------------------------------------

def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it was raised from or during, outermost first, each once."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _type_names(exc: BaseException) -> set[str]:
    # By name, so classifying never imports torch, safetensors or huggingface_hub just to get a class object.
    return {cls.__name__ for cls in type(exc).__mro__}


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _looks_like_path(model: str) -> bool:
    """Hub ids are `name` or `owner/name`; anything else (or an existing path) is meant as a directory."""
    return (model.startswith(("/", "./", "../", "~", ".\\")) or model.count("/") > 1 or "\\" in model
            or Path(model).expanduser().exists())


# Message fragments, lower case, per cause. Checked only when no exception type settled the cause.
_MEMORY_TEXT = ("out of memory", "less than desired cpu memory utilization", "no available memory for the cache",
                "kv cache is needed", "less than requested memory for kv", "cannot allocate memory",
                "insufficient memory", "not enough memory")
_GATED_TEXT = ("gated repo", "access to model", "is restricted", "401 client error", "403 client error",
               "unauthorized", "you are trying to access a gated")
_VERSION_TEXT = ("does not recognize this architecture", "your version of transformers is out of date",
                 "requires transformers", "please upgrade", "newer version of transformers")
_ARCHITECTURE_TEXT = ("are not supported for now", "unrecognized configuration class", "is not supported",
                      "cannot find model module", "no model architecture", "not a sequence-classification")
_CORRUPT_TEXT = ("error while deserializing header", "incomplete metadata", "file not fully covered",
                 "headertoolarge", "invalidheader", "metadataincompletebuffer", "not a valid json file",
                 "unexpected end of file", "invalid load key", "pytorchstreamreader failed", "unable to load weights",
                 "safetensors_rust", "is corrupted")
_NETWORK_TEXT = ("couldn't connect to", "connection refused", "connection error", "failed to establish",
                 "name or service not known", "temporary failure in name resolution", "network is unreachable",
                 "timed out", "max retries exceeded", "connecterror")
_NOT_FOUND_TEXT = ("repository not found", "does not appear to have a file named config.json", "no such file",
                   "is not a local folder and is not a valid model identifier", "repo id must be in the form",
                   "invalid repository id", "revision not found", "404 client error")


def _classify_type(link: BaseException) -> str | None:
    """The cause an exception's type shows, exactly; None when its type says nothing specific."""
    names = _type_names(link)
    if names & {"OutOfMemoryError", "MemoryError"}:
        return MEMORY
    if "GatedRepoError" in names:  # a subclass of RepositoryNotFoundError: check it first
        return GATED
    if names & {"OfflineModeIsEnabled", "LocalEntryNotFoundError"}:
        # Not in the local cache: either downloads are switched off (the model may well exist) or the hub could
        # not be reached. (Before EntryNotFoundError, which LocalEntryNotFoundError subclasses.)
        return NOT_FOUND if _offline() or "OfflineModeIsEnabled" in names else NO_NETWORK
    if names & {"RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError",
                "RemoteEntryNotFoundError", "HFValidationError"}:
        return NOT_FOUND
    if names & {"SafetensorError", "SafetensorsParsingError", "JSONDecodeError", "UnpicklingError", "BadZipFile"}:
        return CORRUPT
    if names & {"ConnectError", "ConnectionError", "ConnectTimeout", "Timeout", "ProxyError"}:
        return NO_NETWORK
    if "HfHubHTTPError" in names:
        status = getattr(getattr(link, "response", None), "status_code", None)
        if status in (401, 403):
            return GATED
        if status == 404:
            return NOT_FOUND
    return None


def _classify_text(link: BaseException) -> str | None:
    """The cause an exception's message names, the most specific first ("does not recognize this architecture"
    is a version problem, not an architecture one)."""
    text = f"{type(link).__name__}: {link}".lower()
    for cause_class, fragments in ((MEMORY, _MEMORY_TEXT), (GATED, _GATED_TEXT), (VERSION, _VERSION_TEXT),
                                   (CORRUPT, _CORRUPT_TEXT), (ARCHITECTURE, _ARCHITECTURE_TEXT),
                                   (NOT_FOUND, _NOT_FOUND_TEXT), (NO_NETWORK, _NETWORK_TEXT)):
        if any(fragment in text for fragment in fragments):
            return NOT_FOUND if cause_class == NO_NETWORK and _offline() else cause_class
    return None


def _classify(model: str, exc: BaseException) -> tuple[str, BaseException]:
    """(cause class, the exception in the chain that shows it).

    The exception raised is asked first, then what it was raised from, then what was being handled when it was
    raised: libraries try and swallow lookups on the way (vLLM probes the hub for optional files), so an
    exception deep in `__context__` can be a harmless miss, not the reason the load failed. For each one the type
    is exact where the message text is a guess.
    """
    for link in _chain(exc):
        cause_class = _classify_type(link) or _classify_text(link)
        if cause_class is not None:
            return cause_class, link
    return UNKNOWN, exc


def _first_line(exc: BaseException) -> str:
    """The line of an exception's message that says what happened, at most about 200 characters."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    line = lines[0]
    # pydantic (vLLM's configs) starts with "1 validation error for ModelConfig" and puts the reason below.
    if re.match(r"\d+ validation errors? for ", line) and len(lines) > 1:
        line = re.sub(r"^(Value|Assertion) error, ", "", lines[1])
    line = re.sub(r"\s*Supported architectures:.*$", "", line)  # vLLM lists ~300 names
    if len(line) > 200:
        cut = line.find(". ", 40)
        line = line[: cut + 1] if 0 < cut < 200 else line[:197] + "..."
    return line


def _config_value(model: str, key: str) -> Any:
    """A value from a local model directory's config.json, or None."""
    try:
        return json.loads((Path(model).expanduser() / "config.json").read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def _installed(distribution: str) -> str:
    try:
        from importlib.metadata import version

        return version(distribution)
    except Exception:
        return "not installed"


def _memory_hint(kind: str, text: str) -> str:
    text = text.lower()
    if "less than desired cpu memory utilization" in text:
        return ("on CPU, --gpu-memory-utilization is the share of this machine's RAM vLLM reserves, and that much "
                "is not free: leave the option unset (codescaler then sizes the KV cache from "
                "VLLM_CPU_KVCACHE_SPACE, 1 GiB by default), pass a lower value such as 0.5, or free memory")
    if "kv cache is needed" in text or "maximum model length" in text:
        longest = re.search(r"estimated maximum model length is (\d+)", text)
        room = f" (the memory holds about {longest.group(1)} tokens)" if longest else ""
        return (f"lower --max-model-len{room}, or give the KV cache more memory: a higher --gpu-memory-utilization "
                "on a GPU, a larger VLLM_CPU_KVCACHE_SPACE (GiB) on CPU")
    if "less than requested memory for kv" in text or "no available memory for the cache" in text:
        return ("the KV cache does not fit in the free memory: lower VLLM_CPU_KVCACHE_SPACE (GiB) on CPU or "
                "--gpu-memory-utilization on a GPU, lower --max-model-len, or free memory held by other processes")
    if "(vllm)" in kind.lower():
        return ("the model does not fit: lower --max-model-len, lower --gpu-memory-utilization if another process "
                "shares the GPU, use more GPUs with --tensor-parallel-size, or a smaller model")
    return ("the model does not fit in memory: lower --max-batch-tokens, use --dtype bfloat16 on a GPU, "
            "a smaller model, or --device cpu")


def _example_model(kind: str) -> str:
    return "LARK-Lab/CodeScaler-4B" if "reward" in kind else "Qwen/Qwen2.5-Coder-7B-Instruct"


def load_error(kind: str, model: str, exc: BaseException) -> ModelLoadError:
    """A one-line cause and a hint for a model that could not be loaded, matched to the kind of failure.

    The returned error has `cause_class`, one of CAUSE_CLASSES.
    """
    if _looks_like_path(model) and not Path(model).expanduser().exists():
        return ClassifiedLoadError(
            f"cannot load {kind} '{model}': no such directory",
            "check the path (a directory with config.json and the weights), or pass a Hugging Face hub id "
            f"such as {_example_model(kind)}", NOT_FOUND)
    local = Path(model).expanduser().is_dir()
    if local and not (Path(model).expanduser() / "config.json").is_file():
        return ClassifiedLoadError(
            f"cannot load {kind} '{model}': not a model directory (no config.json)",
            "pass the directory that holds config.json and the weights (a local model or a hub snapshot)", NOT_FOUND)
    cause_class, link = _classify(model, exc)
    cause = _first_line(link)
    if cause_class == NOT_FOUND:
        if "RevisionNotFoundError" in _type_names(link) or "revision" in cause.lower():
            hint = "check --revision: a branch, tag or commit that exists in the model's hub repository"
        elif _offline():
            cause = "not in the local Hugging Face cache, and HF_HUB_OFFLINE forbids downloading it"
            hint = ("check the id's spelling; download it once with network access (unset HF_HUB_OFFLINE, "
                    f"e.g. `hf download {model}`), point HF_HOME at the cache that holds it, or pass a local "
                    "directory (`make tiny-models` builds tiny ones in models/tiny)")
        else:
            hint = ("check the spelling of the hub id (owner/name) or the directory; a private model needs "
                    "`hf auth login` (or HF_TOKEN)")
    elif cause_class == NO_NETWORK:
        cause = "the Hugging Face hub could not be reached and the model is not in the local cache"
        hint = offline_ways_out(REWARD if "reward" in kind.lower() else GENERATOR)
    elif cause_class == GATED:
        cause = "access denied: the model is gated or private"
        hint = (f"'{model}' is gated or private: accept its conditions on https://huggingface.co/{model} and "
                "log in with `hf auth login` (or set HF_TOKEN)")
    elif cause_class == MEMORY:
        hint = _memory_hint(kind, f"{link}")
    elif cause_class == ARCHITECTURE:
        if "(vllm)" in kind.lower():
            hint = ("vLLM cannot run this architecture: use a model vLLM supports, or for reward models the "
                    "transformers scorer (--scorer transformers); a reward model goes to -r, a generator to -m")
        else:
            hint = ("this is not the kind of model expected here: pass a sequence-classification reward model "
                    "(e.g. LARK-Lab/CodeScaler-4B) with -r and a chat/instruct generator with -m")
    elif cause_class == CORRUPT:
        hint = ("the model files are damaged or incomplete (an interrupted download or copy?): "
                + ("copy the directory again" if local else
                   f"remove it from the cache (`hf cache rm model/{model}`) and download it again"))
    elif cause_class == VERSION:
        saved_with = _config_value(model, "transformers_version") if local else None
        installed = _installed("transformers")
        saved = f" (it was saved with transformers {saved_with}; this is {installed})" if saved_with else \
            f" (installed: transformers {installed})"
        hint = f"the model needs a newer library than the one installed{saved}: pip install -U transformers vllm"
    else:
        hint = ("pass a local model directory, or a Hugging Face hub id reachable from this machine "
                "(check the network, HF_HOME and HF_HUB_OFFLINE, and --revision); rerun with --debug for details")
    return ClassifiedLoadError(f"cannot load {kind} '{model}': {cause}", hint, cause_class)


# -- the hub, reached fast or not at all -------------------------------------------------------------------------

# Seconds a connection to the hub (or the proxy in front of it) may take before the hub counts as unreachable.
HUB_PROBE_TIMEOUT = 5.0
_hub_probes: dict[tuple[str, int], str | None] = {}


def quiet_hub_client() -> None:
    """Keep huggingface_hub's own warnings ("Retrying in 1s [Retry 1/5]") off stderr, where the progress display
    is; --debug (or HF_HUB_VERBOSITY) brings them back. Our error says what went wrong, once."""
    if not debug_enabled() and "HF_HUB_VERBOSITY" not in os.environ:
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub (HF_ENDPOINT, through HTTPS_PROXY when set) cannot be reached from here, or None
    when a TCP connection to it opens within HUB_PROBE_TIMEOUT seconds. Asked once per process and address.

    The hub client retries an unreachable host for about 25 s per file before it gives up; a failed name lookup or
    a refused connection here takes milliseconds, a silent network at most HUB_PROBE_TIMEOUT seconds.
    """
    import socket
    import threading
    import urllib.request
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    endpoint = urlsplit(constants.ENDPOINT)
    host = endpoint.hostname or ""
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    proxy = None if urllib.request.proxy_bypass(host) else urllib.request.getproxies().get(endpoint.scheme)
    if proxy:  # the proxy is what this machine connects to
        address = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = address.hostname or "", address.port or 80
    key = (host, port)
    if key not in _hub_probes:
        outcome: list[str | None] = []

        def probe() -> None:
            try:
                socket.create_connection(key, timeout=HUB_PROBE_TIMEOUT).close()
                outcome.append(None)
            except OSError as exc:
                outcome.append(exc.strerror or str(exc) or type(exc).__name__)

        # A name lookup has no timeout of its own: the probe runs on a thread that is given up on.
        thread = threading.Thread(target=probe, name="codescaler-hub-probe", daemon=True)
        thread.start()
        thread.join(HUB_PROBE_TIMEOUT + 1.0)
        where = f"{host}:{port}" + (" (the proxy)" if proxy else "")
        _hub_probes[key] = f"{where}: {outcome[0]}" if outcome and outcome[0] else \
            (None if outcome else f"{where}: no answer in {HUB_PROBE_TIMEOUT:g} s")
    return _hub_probes[key]


def _flag(role: str) -> str:
    return "-r" if role == REWARD else "-m"


def offline_ways_out(role: str) -> str:
    """What to do when a hub model cannot be had: the ways to run without the hub."""
    flag = _flag(role)
    local = "models/tiny/reward" if role == REWARD else "models/tiny/coder"
    return (f"offline, pass a local model directory ({flag} /path/to/model), try every command on tiny local models "
            f"(`make tiny-models`, then {flag} {local}), or set HF_HUB_OFFLINE=1 with a Hugging Face cache that "
            "holds the model (HF_HOME); otherwise check the network or proxy (HTTPS_PROXY, HF_ENDPOINT)")


# -- what kind of model: read before anything loads --------------------------------------------------------------

REWARD, GENERATOR = "reward model", "generator model"
# Architectures that score a text rather than write one: never a generator.
_SCORING_HEADS = ("ForSequenceClassification", "ForRewardModel", "ForTokenClassification")


def model_config(model: str, revision: str | None = None, *, role: str = REWARD) -> dict[str, Any]:
    """A model's config.json, from its directory, the Hugging Face cache, or (reached fast) the hub.

    Raises a ClassifiedLoadError (the same causes and hints as a failed load) when there is none: no such
    directory, not in the cache while offline, the hub unreachable (in seconds, not after the hub client's
    retries), gated, not found.
    """
    quiet_hub_client()
    path = Path(model).expanduser()
    if path.is_dir() or _looks_like_path(model):
        config_file = path / "config.json"
        if not config_file.is_file():
            raise load_error(role, model, FileNotFoundError(f"{config_file}: no such file"))
    else:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(model, "config.json", revision=revision)
        except Exception as exc:  # an id huggingface_hub refuses (bad characters, too many slashes)
            raise load_error(role, model, exc) from exc
        if isinstance(cached, str):
            config_file = Path(cached)
        else:
            reason = None if _offline() else hub_unreachable()
            if reason is not None:
                raise ClassifiedLoadError(
                    f"cannot load {role} '{model}': the Hugging Face hub cannot be reached ({reason}) and the "
                    "model is not in the local cache", offline_ways_out(role), NO_NETWORK)
            try:
                config_file = Path(hf_hub_download(model, "config.json", revision=revision))
            except Exception as exc:
                raise load_error(role, model, exc) from exc
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise load_error(role, model, exc) from exc
    if not isinstance(config, dict):
        raise load_error(role, model, ValueError(f"{config_file} is not a valid JSON file"))
    return config


def check_model(model: str, revision: str | None, role: str) -> None:
    """The one check of a model's kind, from its config.json, before any weights load or engine starts: a
    generator passed as the reward model (or a reward model as the generator) fails here, naming the swap.

    A reward model is a sequence classifier with exactly one label; a generator is anything that is not a
    classifier. Unreadable configs raise the same errors a load would (see `model_config`), in seconds.
    """
    config = model_config(model, revision, role=role)
    architectures = [name for name in config.get("architectures") or [] if isinstance(name, str)]
    scores = any(name.endswith(_SCORING_HEADS) for name in architectures)
    swap = "swap -m and -r: the reward model (e.g. LARK-Lab/CodeScaler-4B) goes to -r, the generator to -m"
    if role == REWARD and architectures and not any(name.endswith("ForSequenceClassification")
                                                     for name in architectures):
        kind = "a generator" if any(name.endswith(("ForCausalLM", "ForConditionalGeneration"))
                                    for name in architectures) else "not a reward model"
        raise ClassifiedLoadError(f"'{model}' is {kind} ({architectures[0]}), not a sequence-classification "
                                  "reward model", swap, ARCHITECTURE)
    if role == GENERATOR and scores:
        raise ClassifiedLoadError(f"'{model}' is a reward model ({architectures[0]}), not a generator", swap,
                                  ARCHITECTURE)
    if role == REWARD:
        labels = config.get("id2label")
        count = len(labels) if isinstance(labels, dict) else config.get("num_labels", 1)
        if count != 1:
            raise ClassifiedLoadError(f"reward model '{model}' has {count} labels, expected 1",
                                      "use a sequence-classification reward model with a single score head",
                                      ARCHITECTURE)


__all__ = ["ARCHITECTURE", "CAUSE_CLASSES", "CORRUPT", "ClassifiedLoadError", "GATED", "GENERATOR", "MEMORY",
           "NOT_FOUND", "NO_NETWORK", "REWARD", "UNKNOWN", "VERSION", "check_model", "hub_unreachable",
           "is_out_of_memory", "load_error", "model_config", "offline_ways_out", "quiet_hub_client",
           "resolve_device", "resolve_dtype"]
