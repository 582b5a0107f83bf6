"""`codescaler env`: versions, hardware, sandbox, hub cache and default models, as text or JSON, with and without
vLLM installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codescaler_cli import __version__
from codescaler_cli.cli import app

ROOT = Path(__file__).parent.parent
runner = CliRunner()


def test_env_json_reports_what_is_installed(monkeypatch: pytest.MonkeyPatch, reward_dir: Path) -> None:
    monkeypatch.setenv("CODESCALER_REWARD_MODEL", str(reward_dir))
    monkeypatch.delenv("CODESCALER_MODEL", raising=False)
    result = runner.invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["codescaler"] == __version__
    assert report["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    import torch
    import transformers

    assert report["torch"]["version"] == torch.__version__ and report["transformers"]["version"] == transformers.__version__
    assert report["torch"]["cuda"]["available"] == torch.cuda.is_available()
    try:
        import vllm
    except ImportError:  # the report must then say so (the case without vLLM is also tested in a subprocess)
        assert not report["vllm"]["installed"]
    else:
        assert report["vllm"]["installed"] and report["vllm"]["version"] == vllm.__version__
        assert report["vllm"]["build"] == ("gpu" if torch.cuda.is_available() else "cpu")
    # The reward model from the environment is a local directory with a config: available. The generator is the
    # built-in hub default, which the offline test machine does not have: named, and a note says why it matters.
    assert report["models"]["reward"] == {"model": str(reward_dir), "source": "CODESCALER_REWARD_MODEL",
                                          "kind": "directory", "available": True, "where": str(reward_dir.resolve())}
    from codescaler_cli.generation import DEFAULT_GENERATOR_MODEL

    generator = report["models"]["generator"]
    assert generator["model"] == DEFAULT_GENERATOR_MODEL and generator["source"] == "built-in default"
    assert generator["available"] is False
    assert report["hub"]["offline"] is True and report["variables"]["HF_HUB_OFFLINE"] == "1"
    assert any("not cached and HF_HUB_OFFLINE is set" in note for note in report["notes"])
    assert report["sandbox"]["works"] is bubblewrap_runs_a_program(), report["sandbox"]
    assert report["memory"]["cpu_cores"] == os.cpu_count()


def bubblewrap_runs_a_program() -> bool:
    """Whether bwrap, if there is one, runs a program here with a read-only root and no network (as eval runs it)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False
    done = subprocess.run([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net",
                           "--unshare-pid", sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True,
                          timeout=60)
    return done.returncode == 0 and done.stdout == "42\n"


def test_env_says_why_bubblewrap_does_not_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap at all
    sandbox = json.loads(runner.invoke(app, ["env", "--json"]).stdout)["sandbox"]
    assert (sandbox["bwrap"], sandbox["works"], sandbox["isolation"]) == (None, False, "fallback"), sandbox
    assert sandbox["detail"] == "bubblewrap (bwrap) is not installed", sandbox
    # One that cannot make namespaces, as in a locked-down container; where the unprivileged uid a run gets as root
    # can start it (pytest's own directories are root's alone).
    bin_dir = Path(tempfile.mkdtemp(prefix="codescaler-fake-bwrap-"))
    bin_dir.chmod(0o755)
    broken = bin_dir / "bwrap"
    broken.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    try:
        sandbox = json.loads(runner.invoke(app, ["env", "--json"]).stdout)["sandbox"]
    finally:
        shutil.rmtree(bin_dir)
    assert (sandbox["bwrap"], sandbox["works"], sandbox["isolation"]) == (str(broken), False, "fallback"), sandbox
    assert "No permissions to create new namespace" in sandbox["detail"], sandbox


def test_env_text_is_one_line_per_item(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODESCALER_MODEL", "/nonexistent/generator")
    result = runner.invoke(app, ["env"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    names = [line.split()[0] for line in lines if not line.startswith("note:")]
    for name in ("codescaler", "python", "torch", "transformers", "vllm", "memory", "bwrap"):
        assert name in names, result.stdout
    generator = next(line for line in lines if line.startswith("generator model"))
    assert "/nonexistent/generator (CODESCALER_MODEL): no such directory" in generator


BLOCK_VLLM_AND_RUN_ENV = """
import sys
sys.modules["vllm"] = None  # `import vllm` now raises ImportError, as on a machine without it
from codescaler_cli.cli import main
sys.argv = ["codescaler", "env", "--json"]
main()
"""


def test_env_without_vllm_and_with_a_cached_hub_model(tmp_path: Path) -> None:
    # A hub model in the cache layout huggingface_hub writes (refs/main -> snapshots/<commit>/config.json).
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--someone--tiny-coder"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(tmp_path / "hf"),
           "CODESCALER_MODEL": "someone/tiny-coder"}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run([sys.executable, "-c", BLOCK_VLLM_AND_RUN_ENV], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["vllm"]["installed"] is False
    assert any(note.startswith("vLLM is not installed") for note in report["notes"])
    assert report["hub"]["cache"] == str(tmp_path / "hf" / "hub")
    generator = report["models"]["generator"]
    assert generator["available"] is True and generator["source"] == "CODESCALER_MODEL"
    assert generator["where"] == str(repo / "snapshots" / commit)


def test_help_stays_light() -> None:
    # `env` is registered with the other commands; importing the CLI must still not import the heavy libraries.
    done = subprocess.run([sys.executable, "-c", "import sys; from codescaler_cli.cli import app; "
                           "print(sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules))"],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr
    result = runner.invoke(app, ["env", "--help"])
    assert result.exit_code == 0 and "--json" in result.stdout
