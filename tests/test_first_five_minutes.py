"""A newcomer's first minutes, as the README tells them: `make tiny-models`, then one command each, offline; and
`make demo` with the hub out of reach fails in seconds with the offline ways out.

Both run the Makefile's own recipes with `make` (the virtual environment is the one running the tests, so make's
install step is taken as done) and the commands as real processes, with the hub unreachable: nothing here may
reach, or wait for, the network.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from doc_examples import ROOT, Block, blocks, command_lines

VENV = Path(sys.executable).parent.parent
# The hub client alone spends ~25 s retrying an unreachable host; the answer must come well before that, even on
# a loaded machine (start-up and imports are most of it).
FAIL_FAST_SECONDS = 20.0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _offline_env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    """The environment of a machine without the hub: an empty cache, no HF_HUB_OFFLINE, an endpoint that refuses
    (or does not resolve), and the venv's commands first on PATH (as `source .venv/bin/activate` puts them)."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf-home"), "HF_ENDPOINT": endpoint,
           "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "CODESCALER_MODEL", "CODESCALER_REWARD_MODEL",
                 "CODESCALER_CACHE", "VLLM_CPU_KVCACHE_SPACE"):  # the README's lines must work without them
        env.pop(name, None)
    return env


def _make(target: str, workdir: Path, env: dict[str, str], *variables: str) -> subprocess.CompletedProcess[str]:
    """`make TARGET` with the Makefile's recipe as written; the venv is the tests' own, its install step done."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed: the README's path starts with it")
    return subprocess.run(["make", "-f", str(ROOT / "Makefile"), target, f"VENV={VENV}", "-o", f"{VENV}/.installed",
                           *variables], cwd=workdir, env=env, capture_output=True, text=True, timeout=900)


def _first_five_minutes() -> Block:
    readme = ROOT / "README.md"
    lines = readme.read_text(encoding="utf-8").splitlines()
    heading = next(n for n, line in enumerate(lines, start=1) if re.match(r"#+ .*first five minutes", line, re.I))
    return next(block for block in blocks(readme) if block.line > heading and block.language == "sh")


@pytest.mark.vllm
def test_the_readme_first_five_minutes_run_offline(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    """Every line of the README's path, as written, in a fresh directory: make builds the tiny coder too; generate
    prints valid code, eval a strategy table, with no hub to reach."""
    block = _first_five_minutes()
    lines = command_lines(block)
    assert lines[:2] == ["make tiny-models", "source .venv/bin/activate"], lines
    commands = [shlex.split(line)[:2] for line in lines[2:]]
    assert [c[0] for c in commands] == ["codescaler"] * len(commands)
    assert {c[1] for c in commands} >= {"extract", "rank", "generate", "eval"}, commands
    workdir = tmp_path / "clone"
    shutil.copytree(ROOT / "examples", workdir / "examples")
    (workdir / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "tiny_models.py", workdir / "tests" / "tiny_models.py")
    # The random models built for the session are the ones make would build; the trained coder make must build.
    (workdir / "models" / "tiny").mkdir(parents=True)
    for name in ("reward", "generator"):
        (workdir / "models" / "tiny" / name).symlink_to(tiny_models[name])
    env = _offline_env(tmp_path, f"http://127.0.0.1:{_closed_port()}")

    made = _make("tiny-models", workdir, env)
    assert made.returncode == 0, made.stdout + made.stderr
    assert (workdir / "models" / "tiny" / "coder" / "config.json").is_file(), made.stdout

    outputs = {}
    for line in lines[2:]:
        started = time.monotonic()
        done = subprocess.run(["bash", "-c", line], cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=600)
        print(f"{time.monotonic() - started:6.1f}s  {line}")
        assert done.returncode == 0, f"`{line}` exited {done.returncode}:\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr and "Retrying in" not in done.stderr, done.stderr
        outputs[shlex.split(line)[1]] = done.stdout
    code = outputs["generate"]
    assert "def add(a, b)" in code, code
    ast.parse(code)
    assert "valid" in outputs["extract"] and "score" in outputs["rank"]
    table = outputs["eval"]
    assert "strategy" in table and "oracle" in table, table
    reward_row = next(line for line in table.splitlines() if line.startswith("reward-model "))
    assert re.search(r"\d+\.\d", reward_row), table  # scored by the tiny reward model, not left out


@pytest.mark.parametrize("endpoint", ["refused", "unresolvable"])
def test_make_demo_without_the_hub_fails_in_seconds_naming_the_offline_ways(tmp_path: Path, endpoint: str) -> None:
    url = f"http://127.0.0.1:{_closed_port()}" if endpoint == "refused" else "https://hub.invalid"  # RFC 2606
    env = _offline_env(tmp_path, url)
    started = time.monotonic()
    done = _make("demo", ROOT, env)
    seconds = time.monotonic() - started
    assert done.returncode != 0, done.stdout
    assert "codescaler rank examples/candidates.jsonl" in done.stdout  # the demo's own command ran and failed
    assert seconds < FAIL_FAST_SECONDS, f"{seconds:.1f} s:\n{done.stderr}"
    assert "error: cannot load reward model 'LARK-Lab/CodeScaler-4B': the Hugging Face hub cannot be reached" \
        in done.stderr, done.stderr
    hint = next(line for line in done.stderr.splitlines() if line.startswith("hint: "))
    assert "make tiny-models" in hint and "HF_HUB_OFFLINE=1" in hint and "local model directory" in hint
    assert "Retrying in" not in done.stderr and "Traceback" not in done.stderr


def test_benchmark_data_without_the_hub_fails_in_seconds(tmp_path: Path) -> None:
    env = _offline_env(tmp_path, f"http://127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    done = subprocess.run(["codescaler", "eval", "examples/candidates.jsonl", "--benchmark", "livecodebench"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    assert done.returncode == 1 and seconds < FAIL_FAST_SECONDS, f"{seconds:.1f} s:\n{done.stderr}"
    assert "error: the Hugging Face hub cannot be reached" in done.stderr and "--problems" in done.stderr
    assert "Retrying in" not in done.stderr and "Traceback" not in done.stderr
