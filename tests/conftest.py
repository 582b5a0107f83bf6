"""Shared fixtures: tiny real models built locally once per test session, and the servers several modules use.

Nothing here downloads anything: the hub is unreachable on test machines, so HF_HUB_OFFLINE is forced on.

Tests marked `vllm` need the vLLM engine. Without vLLM they are skipped on a developer's machine, but they FAIL
under CI (CI=true or CODESCALER_REQUIRE_VLLM=1): a capability's tests must not pass by not running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# vLLM's CPU engine on a small machine: 1 GiB KV cache, engine in-process (fast start, clean exit).
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

TESTS = Path(__file__).parent


def _vllm_required() -> bool:
    return any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}
               for name in ("CI", "CODESCALER_REQUIRE_VLLM"))


def _vllm_missing() -> str | None:
    try:
        import vllm  # noqa: F401
    except Exception as exc:  # ImportError, or a broken build that fails to import
        return f"vLLM cannot be imported ({type(exc).__name__}: {exc})"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture of a vLLM-backed test: skip it without vLLM on a developer's machine, fail it under CI."""
    if item.get_closest_marker("vllm") is None:
        return
    missing = _vllm_missing()
    if missing is None:
        return
    if _vllm_required():
        pytest.fail(f"{missing}, but CI requires the vLLM tests to run: install the `cpu` (CPU) or `vllm` (GPU) "
                    "extra", pytrace=False)
    pytest.skip(f"{missing}; install the `cpu` or `vllm` extra")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Under CI a vLLM-backed test that skips itself (for whatever reason) is a failure, not a pass."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("vllm") and _vllm_required():
        report.outcome = "failed"
        report.longrepr = f"vLLM-backed test skipped under CI: {report.longrepr}"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"reward": dir, "generator": dir}: random tiny Qwen3 models and a BPE tokenizer, built in seconds."""
    from tiny_models import build_tiny_models

    root = os.environ.get("CODESCALER_TEST_MODELS")
    return build_tiny_models(Path(root) if root else tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def reward_dir(tiny_models: dict[str, Path]) -> Path:
    return tiny_models["reward"]


@pytest.fixture(scope="session")
def coder_dir(tiny_models: dict[str, Path]) -> Path:
    """A tiny generator trained to answer any prompt with one of tiny_models.CODER_RESPONSES."""
    return tiny_models["coder"]


@pytest.fixture(scope="session")
def tester_dir(tiny_models: dict[str, Path]) -> Path:
    """A tiny generator trained to answer any prompt with one of tiny_models.TESTER_RESPONSES (asserts of add)."""
    from tiny_models import build_tiny_model

    return build_tiny_model(tiny_models["coder"].parent, "tester")


# Servers more than one module needs are started once per session (each takes seconds to minutes on a CPU).


@pytest.fixture(scope="session")
def coder_server(coder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM's OpenAI-compatible server running the tiny coder; its base URL (…/v1)."""
    from helpers.servers import vllm_server

    with vllm_server(coder_dir, "--max-model-len", "512", log=tmp_path_factory.mktemp("coder") / "server.log") \
            as url:
        yield url


@pytest.fixture(scope="session")
def pooling_server(reward_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM's server running the tiny reward model with `--runner pooling` (what --reward-url scores on); …/v1."""
    from helpers.servers import vllm_server

    with vllm_server(reward_dir, "--runner", "pooling", "--max-model-len", "1024",
                     log=tmp_path_factory.mktemp("pooling") / "server.log") as url:
        yield url


@pytest.fixture(scope="session")
def reward_serve(reward_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`codescaler serve` on the tiny reward model with its default settings; its URL."""
    from helpers.servers import serving

    with serving(reward_dir, log=tmp_path_factory.mktemp("serve") / "serve.log") as served:
        yield served.url
