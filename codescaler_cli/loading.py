"""Loading models the same way in every backend: device and dtype choices, config checks, and load errors that say
what went wrong and what to do about it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ModelLoadError


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


def load_error(kind: str, model: str, exc: BaseException) -> ModelLoadError:
    """A one-line cause and a hint for a model that could not be loaded."""
    cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if model.startswith(("/", "./", "../", "~")) and not Path(model).expanduser().exists():
        cause = "no such directory"
    return ModelLoadError(
        f"cannot load {kind} '{model}': {cause}",
        "pass a local model directory, or a Hugging Face hub id reachable from this machine "
        "(check the network, HF_HOME and HF_HUB_OFFLINE, and --revision)",
    )


def check_reward_config(model: str, config: Any) -> None:
    """A reward model here is a sequence classifier with exactly one label."""
    architectures = list(getattr(config, "architectures", None) or [])
    if architectures and not any(name.endswith("ForSequenceClassification") for name in architectures):
        raise ModelLoadError(f"'{model}' is a {architectures[0]}, not a sequence-classification reward model",
                             "pass a reward model (e.g. LARK-Lab/CodeScaler-4B) with -r; the generator goes to -m")
    if getattr(config, "num_labels", 1) != 1:
        raise ModelLoadError(f"reward model '{model}' has {config.num_labels} labels, expected 1",
                             "use a sequence-classification reward model with a single score head")
