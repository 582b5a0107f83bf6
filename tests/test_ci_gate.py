"""The suite cannot pass by not running its vLLM tests: under CI a vLLM-backed test without vLLM fails.

Runs pytest in a subprocess where `import vllm` fails (a meta-path blocker in sitecustomize), once as CI and once
as a developer would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BLOCKER = '''
import sys

class _NoVllm:
    def find_spec(self, name, path=None, target=None):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("vllm blocked for this test")
        return None

sys.meta_path.insert(0, _NoVllm())
'''

TARGET = "tests/test_vllm_scorer.py::test_rank_cli_with_vllm_scorer_matches_transformers"


def _run_without_vllm(tmp_path: Path, *, ci: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key not in ("CI", "CODESCALER_REQUIRE_VLLM")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if ci:
        env["CI"] = "true"
    root = Path(__file__).parent.parent
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TARGET], cwd=root,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("ci", [True, False], ids=["ci", "developer"])
def test_vllm_tests_fail_under_ci_and_skip_elsewhere_without_vllm(tmp_path: Path, ci: bool) -> None:
    done = _run_without_vllm(tmp_path, ci=ci)
    output = done.stdout + done.stderr
    if ci:
        assert done.returncode != 0, output
        assert "CI requires the vLLM tests to run" in output and ("1 failed" in output or "1 error" in output)
    else:
        assert done.returncode == 0, output
        assert "1 skipped" in output and "vLLM cannot be imported" in output
