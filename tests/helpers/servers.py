"""Real servers on 127.0.0.1 for tests: vLLM's OpenAI-compatible server, `codescaler serve` as a subprocess, and a
fault-injecting proxy in front of either.

The proxy is the only fake: it forwards to the real server, but fails chosen requests (HTTP 500, 429 or a
dropped connection) so retries and failover can be tested against the real thing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def vllm_server(model: Path, *extra: str, log: Path, startup_timeout: float = 240.0) -> Iterator[str]:
    """Start `python -m vllm.entrypoints.openai.api_server` on 127.0.0.1; yield its base URL (…/v1)."""
    import httpx

    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
           "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
               "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager", *extra]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env)
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"vLLM server exited with {process.returncode}:\n"
                                       + log.read_text(errors="replace")[-3000:])
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("vLLM server did not start:\n" + log.read_text(errors="replace")[-3000:])
                time.sleep(0.5)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class FaultProxy:
    """Forwards HTTP requests to `target`; `fault(n, path, body)` returns 'drop', an HTTP status, or None to forward.

    `n` counts the requests that can be faulted (start-up checks of /health and /v1/models are always forwarded).
    """

    def __init__(self, target: str, fault: Callable[[int, str, bytes], object]) -> None:
        import httpx

        self.target = target.rstrip("/")
        self.fault = fault
        self.count = 0
        self.seen: list[tuple[str, object]] = []
        lock = threading.Lock()
        client = httpx.Client(timeout=120.0)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                action = None
                if self.path not in ("/health", "/v1/models"):  # start-up checks are never faulted or counted
                    with lock:
                        proxy.count += 1
                        number = proxy.count
                    action = proxy.fault(number, self.path, body)
                proxy.seen.append((self.path, action))
                if action == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.connection.close()
                    return
                if isinstance(action, int):
                    self.send_response(action)
                    self.send_header("content-type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": "injected fault"}')
                    return
                answer = client.request(method, proxy.target + self.path, content=body,
                                        headers={"content-type": "application/json"})
                self.send_response(answer.status_code)
                self.send_header("content-type", answer.headers.get("content-type", "application/json"))
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
