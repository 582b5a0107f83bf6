"""What matters when something does not work: versions, hardware, the sandbox, the Hugging Face cache and whether
the default models are in it. `collect_environment()` returns it as plain data (for `codescaler env --json` and bug
reports); `format_environment()` renders it for people.

Nothing here starts an engine or downloads anything. torch and transformers are imported (their versions and the
GPUs need them); vLLM is not (importing it takes seconds): its version is read from its `_version.py`.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from pathlib import Path
from typing import Any

from . import __version__

GiB = 1 << 30
# Environment variables that change what codescaler, vLLM or the hub do; shown when set.
RELEVANT_VARIABLES = (
    "CODESCALER_MODEL", "CODESCALER_REWARD_MODEL", "CODESCALER_DEBUG", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "CUDA_VISIBLE_DEVICES", "VLLM_CPU_KVCACHE_SPACE",
    "VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_LOGGING_LEVEL", "VLLM_TARGET_DEVICE",
)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _package_version(module: str) -> dict[str, Any]:
    """{"version": ...} for an importable module, {"installed": False, "error": ...} otherwise."""
    try:
        imported = __import__(module)
    except Exception as exc:  # ImportError, or a broken install failing while it imports
        return {"installed": False, "error": _first_line(exc)}
    return {"installed": True, "version": str(getattr(imported, "__version__", "unknown"))}


def vllm_info() -> dict[str, Any]:
    """vLLM's version and build without importing it.

    The CPU build is the `vllm-cpu` distribution, which provides the same `vllm` package; the version comes from
    the package (`vllm.__version__`, written in `vllm/_version.py`), never from a `vllm` distribution lookup.
    """
    try:
        spec = importlib.util.find_spec("vllm")
    except (ImportError, ValueError) as exc:  # ValueError: sys.modules["vllm"] is None (import blocked)
        return {"installed": False, "error": _first_line(exc)}
    if spec is None or not spec.submodule_search_locations:
        return {"installed": False, "error": "No module named 'vllm'"}
    package = Path(list(spec.submodule_search_locations)[0])
    version = "unknown"
    version_file = package / "_version.py"
    try:
        if version_file.is_file():
            loader_spec = importlib.util.spec_from_file_location("_codescaler_vllm_version", version_file)
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
            version = str(module.__version__)
        else:
            import vllm

            version = str(vllm.__version__)
    except Exception as exc:
        return {"installed": True, "version": "unknown", "error": _first_line(exc), "path": str(package)}
    distributions: list[str] = []
    try:
        from importlib.metadata import packages_distributions

        distributions = sorted(set(packages_distributions().get("vllm", [])))
    except Exception:
        pass
    cpu_build = any("cpu" in name for name in distributions) or "cpu" in version
    return {"installed": True, "version": version, "build": "cpu" if cpu_build else "gpu",
            "distribution": distributions[0] if len(distributions) == 1 else distributions or None,
            "path": str(package)}


def torch_info() -> dict[str, Any]:
    """torch's version and the CUDA devices it sees, with their memory."""
    info = _package_version("torch")
    if not info["installed"]:
        return info
    import torch

    cuda: dict[str, Any] = {"available": bool(torch.cuda.is_available()), "version": torch.version.cuda,
                            "devices": []}
    if cuda["available"]:
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            device: dict[str, Any] = {"index": index, "name": properties.name,
                                      "memory_gib": round(properties.total_memory / GiB, 1)}
            try:
                free, _ = torch.cuda.mem_get_info(index)
                device["free_gib"] = round(free / GiB, 1)
            except Exception:  # a busy or broken device still gets listed
                pass
            cuda["devices"].append(device)
    info["cuda"] = cuda
    info["threads"] = torch.get_num_threads()
    return info


def memory_info() -> dict[str, Any]:
    """RAM as vLLM's CPU engine sees it: the machine's, clamped to a container's limit."""
    total, available = None, None
    try:
        import psutil

        memory = psutil.virtual_memory()
        total, available = memory.total, memory.available
    except ImportError:
        try:
            pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
            total = pages * size
            available = os.sysconf("SC_AVPHYS_PAGES") * size
        except (ValueError, OSError, AttributeError):
            pass
    limit = _cgroup_limit()
    if limit is not None and total is not None and limit < total:
        total = limit
        available = min(available or limit, limit - (_cgroup_usage() or 0))
    info: dict[str, Any] = {"total_gib": round(total / GiB, 1) if total else None,
                            "available_gib": round(available / GiB, 1) if available else None,
                            "cpu_cores": os.cpu_count()}
    node = _numa_node_memory(0)
    if node is not None:
        # vLLM's CPU engine measures its memory share against NUMA node 0, which can be much less than the machine.
        info["numa_node0_total_gib"], info["numa_node0_available_gib"] = (round(node[0] / GiB, 1),
                                                                          round(node[1] / GiB, 1))
    return info


def _numa_node_memory(node: int) -> tuple[int, int] | None:
    """(total, available) bytes of one NUMA node, counted as vLLM counts them, or None without NUMA info."""
    try:
        lines = Path(f"/sys/devices/system/node/node{node}/meminfo").read_text().splitlines()
        values = {parts[2].rstrip(":"): int(parts[3]) * 1024 for parts in (line.split() for line in lines)
                  if len(parts) >= 4 and parts[3].isdigit()}
        available = sum(values[key] for key in ("MemFree", "Active(file)", "Inactive(file)", "SReclaimable"))
        return values["MemTotal"], available
    except (OSError, KeyError, ValueError, IndexError):
        return None


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_limit() -> int | None:
    return _read_int("/sys/fs/cgroup/memory.max") or _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")


def _cgroup_usage() -> int | None:
    return _read_int("/sys/fs/cgroup/memory.current") or _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes")


def sandbox_info() -> dict[str, Any]:
    """Whether bubblewrap works here, and the isolation, interpreter and limit mechanisms (cgroups, sized tmpfs,
    rlimits) that candidates get under `eval` (codescaler_cli.evaluation.sandbox.sandbox_mechanisms)."""
    from .evaluation.sandbox import sandbox_mechanisms

    return sandbox_mechanisms()


def hub_info() -> dict[str, Any]:
    """Where the Hugging Face cache is and whether downloads are allowed. Tokens are neither read nor shown."""
    info: dict[str, Any] = {"offline": _truthy(os.environ.get("HF_HUB_OFFLINE"))
                            or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))}
    try:
        from huggingface_hub import constants

        info["cache"] = str(constants.HF_HUB_CACHE)
        info["endpoint"] = str(constants.ENDPOINT)
    except ImportError:
        hf_home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
        info["cache"] = os.environ.get("HF_HUB_CACHE", str(Path(hf_home) / "hub"))
    return info


def model_info(model: str, source: str) -> dict[str, Any]:
    """Whether a model (hub id or directory) is available without a download."""
    info: dict[str, Any] = {"model": model, "source": source}
    path = Path(model).expanduser()
    if path.exists() or model.startswith(("/", "./", "../", "~")) or model.count("/") > 1:
        info["kind"] = "directory"
        info["available"] = (path / "config.json").is_file()
        info["where"] = str(path.resolve()) if path.exists() else None
        if not info["available"]:
            info["detail"] = "no such directory" if not path.exists() else "no config.json in it"
        return info
    info["kind"] = "hub"
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json")
    except Exception as exc:  # an invalid id, or huggingface_hub missing
        info.update(available=False, detail=_first_line(exc))
        return info
    info["available"] = isinstance(found, str)
    if isinstance(found, str):
        info["where"] = str(Path(found).parent)
    else:
        info["detail"] = "not in the local cache (downloaded on first use)"
    return info


def default_models() -> dict[str, dict[str, Any]]:
    """The models `generate` and `rank` use when none is given: the environment's, else the built-in ones."""
    from .generation import DEFAULT_GENERATOR_MODEL
    from .scoring import DEFAULT_REWARD_MODEL

    chosen = {}
    for role, variable, default in (("generator", "CODESCALER_MODEL", DEFAULT_GENERATOR_MODEL),
                                    ("reward", "CODESCALER_REWARD_MODEL", DEFAULT_REWARD_MODEL)):
        value = os.environ.get(variable, "").strip()
        chosen[role] = model_info(value, variable) if value else model_info(default, "built-in default")
    return chosen


def _notes(report: dict[str, Any]) -> list[str]:
    """What in the report is likely to stop a run, and what to do about it."""
    notes = []
    vllm = report["vllm"]
    torch = report["torch"]
    if not vllm["installed"]:
        notes.append("vLLM is not installed: `generate` (without --base-url) and `--scorer vllm` need it; "
                     "pip install 'codescaler[cpu]' on CPU machines, 'codescaler[vllm]' on GPUs")
    elif torch.get("installed") and vllm.get("build") == "gpu" and not torch.get("cuda", {}).get("available"):
        notes.append("the GPU build of vLLM is installed but torch sees no CUDA device: on a CPU-only machine "
                     "install 'codescaler[cpu]' instead")
    if not torch.get("installed"):
        notes.append(f"torch cannot be imported ({torch.get('error')}): reinstall codescaler's dependencies")
    if not report["transformers"].get("installed"):
        notes.append(f"transformers cannot be imported ({report['transformers'].get('error')}); if it mentions "
                     "torchvision, uninstall torchvision torchaudio torchcodec (the vllm-cpu install pulls "
                     "builds that do not match the CPU torch)")
    if not report["sandbox"]["works"]:
        notes.append("bubblewrap is not usable, so `eval` runs candidates in a weaker fallback sandbox: "
                     "apt-get install bubblewrap (" + report["sandbox"]["detail"] + ")")
    if "NOT blocked" in report["sandbox"].get("syscalls", ""):
        notes.append("programs of `eval` can use the kernel keyrings, which one program of a zygote slot could use "
                     "to pass data to the next: pip install pyseccomp and apt-get install libseccomp2 ("
                     + report["sandbox"]["syscalls"] + ")")
    if report["sandbox"].get("cgroups_unavailable"):
        notes.append("memory and process limits of `eval` apply to each process, not to a program as a whole: "
                     + report["sandbox"]["cgroups_unavailable"])
    for role, model in report["models"].items():
        if not model.get("available") and model.get("kind") == "hub" and report["hub"]["offline"]:
            notes.append(f"the default {role} model {model['model']} is not cached and HF_HUB_OFFLINE is set: "
                         "pass a local model or download it first")
    if (vllm["installed"] and not torch.get("cuda", {}).get("available")
            and not os.environ.get("VLLM_CPU_KVCACHE_SPACE")):
        notes.append("vLLM on CPU: codescaler gives each engine a 1 GiB KV cache (or one full-length sequence) "
                     "unless VLLM_CPU_KVCACHE_SPACE (GiB) or --gpu-memory-utilization says otherwise")
    return notes


def collect_environment() -> dict[str, Any]:
    """Everything `codescaler env` shows, as JSON-ready data."""
    report: dict[str, Any] = {
        "codescaler": __version__,
        "python": {"version": platform.python_version(), "executable": sys.executable,
                   "platform": platform.platform()},
        "torch": torch_info(),
        "transformers": _package_version("transformers"),
        "vllm": vllm_info(),
        "memory": memory_info(),
        "sandbox": sandbox_info(),
        "hub": hub_info(),
        "models": default_models(),
        "variables": {name: os.environ[name] for name in RELEVANT_VARIABLES if name in os.environ},
    }
    report["notes"] = _notes(report)
    return report


def _version_text(info: dict[str, Any]) -> str:
    if not info.get("installed"):
        return f"not installed ({info.get('error')})"
    return str(info.get("version"))


def format_environment(report: dict[str, Any]) -> str:
    """The report as aligned text lines."""
    torch, vllm, memory, sandbox, hub = (report[key] for key in ("torch", "vllm", "memory", "sandbox", "hub"))
    rows: list[tuple[str, str]] = [
        ("codescaler", report["codescaler"]),
        ("python", f"{report['python']['version']} ({report['python']['executable']}) on "
                   f"{report['python']['platform']}"),
        ("torch", _version_text(torch)),
        ("transformers", _version_text(report["transformers"])),
    ]
    if vllm.get("installed"):
        build = "CPU build" if vllm.get("build") == "cpu" else "GPU build"
        where = f", distribution {vllm['distribution']}" if vllm.get("distribution") else ""
        rows.append(("vllm", f"{vllm['version']} ({build}{where})"))
    else:
        rows.append(("vllm", f"not installed ({vllm.get('error')})"))
    cuda = torch.get("cuda") or {}
    if cuda.get("available"):
        for device in cuda["devices"]:
            free = f", {device['free_gib']} GiB free" if "free_gib" in device else ""
            rows.append((f"cuda:{device['index']}", f"{device['name']}, {device['memory_gib']} GiB{free} "
                                                   f"(CUDA {cuda.get('version')})"))
    else:
        rows.append(("cuda", "no CUDA device (CPU only)" if torch.get("installed") else "unknown (no torch)"))
    node = (f"; NUMA node 0 (what vLLM on CPU counts): {memory['numa_node0_total_gib']} GiB, "
            f"{memory['numa_node0_available_gib']} GiB available" if "numa_node0_total_gib" in memory else "")
    rows.append(("memory", f"{memory['total_gib']} GiB, {memory['available_gib']} GiB available{node}; "
                           f"{memory['cpu_cores']} CPU cores"))
    if sandbox["bwrap"]:
        rows.append(("bwrap", f"{sandbox['bwrap']} ({'works' if sandbox['works'] else 'fails: ' + sandbox['detail']})"))
    else:
        rows.append(("bwrap", "not found (apt-get install bubblewrap)"))
    if sandbox.get("isolation"):
        rows.extend([("sandbox", f"{sandbox['isolation']}: {sandbox['view']}"),
                     ("sandbox python", sandbox["interpreter"]), ("sandbox memory", sandbox["memory"]),
                     ("sandbox processes", sandbox["processes"]), ("sandbox files", sandbox["filesystem"]),
                     ("sandbox start-up", sandbox["startup"]), ("sandbox syscalls", sandbox["syscalls"])])
    rows.append(("hf cache", f"{hub.get('cache')}" + (" (offline: HF_HUB_OFFLINE)" if hub["offline"] else "")))
    for role, model in report["models"].items():
        state = f"cached at {model['where']}" if model.get("available") else model.get("detail", "not available")
        rows.append((f"{role} model", f"{model['model']} ({model['source']}): {state}"))
    for name, value in report["variables"].items():
        rows.append((name, value))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines.extend(f"note: {note}" for note in report["notes"])
    return "\n".join(lines)
