"""Start `codescaler serve` as a real subprocess on 127.0.0.1 for tests, and stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from servers import free_port


@dataclass
class Served:
    url: str
    process: subprocess.Popen
    log: Path


def start_serve(model: Path, *extra: str, log: Path, startup_timeout: float = 120.0) -> Served:
    import httpx

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "codescaler_cli", "serve", "-r", str(model), "--host", "127.0.0.1",
               "--port", str(port), *extra]
    log_file = open(log, "wb")
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}:\n" + log.read_text(errors="replace")[-3000:])
        try:
            if httpx.get(url + "/health", timeout=2.0).status_code == 200:
                return Served(url, process, log)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_serve(Served(url, process, log))
            raise RuntimeError("serve did not start:\n" + log.read_text(errors="replace")[-3000:])
        time.sleep(0.2)


def stop_serve(served: Served) -> int:
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
        try:
            served.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            served.process.kill()
            served.process.wait()
    return served.process.returncode


@contextmanager
def serving(model: Path, *extra: str, log: Path) -> Iterator[Served]:
    served = start_serve(model, *extra, log=log)
    try:
        yield served
    finally:
        stop_serve(served)
