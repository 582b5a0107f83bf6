"""Watching a CLI run in a subprocess: files it writes, read without racing it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def read_or_empty(path: Path) -> bytes:
    """A file's bytes, or none if it does not exist (yet, or any more): one look, so a run that creates, replaces or
    removes the file between two looks cannot fail the caller."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


@contextmanager
def reaped(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """The process; on the way out, killed and collected if it still runs (a failing test leaves nothing behind)."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def wait_for_lines(process: subprocess.Popen[str], output: Path, lines: int, timeout: float = 300.0) -> None:
    """Until `output` holds `lines` whole lines, the process ends, or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if read_or_empty(output).count(b"\n") >= lines:
            return
        time.sleep(0.02)


def wait_for_file(process: subprocess.Popen[str], path: Path, timeout: float = 300.0) -> None:
    """Until `path` exists; fails the test when the process ends first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the process ended (status {process.returncode}) before {path} existed"
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout:.0f}s"
        time.sleep(0.02)
