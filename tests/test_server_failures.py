"""Servers that are down or hang: a clear error naming the URL, and Ctrl-C that does not wait for requests.

The hanging server is a fault injector (it answers the start-up check, then never answers a request). Nothing here
needs vLLM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import EXAMPLES
from helpers.servers import free_port
from typer.testing import CliRunner

from codescaler_cli.backends.http import normalise_base_url
from codescaler_cli.cli import app

runner = CliRunner()


def test_base_urls_with_and_without_v1_mean_the_same_server() -> None:
    assert normalise_base_url("http://host:8000") == "http://host:8000/v1"
    assert normalise_base_url("http://host:8000/") == "http://host:8000/v1"
    assert normalise_base_url("http://host:8000/v1/") == "http://host:8000/v1"
    assert normalise_base_url("https://proxy.example/models/qwen/v1") == "https://proxy.example/models/qwen/v1"


def test_generator_server_down_at_start_exits_1_naming_the_url(coder_dir: Path, reward_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = runner.invoke(app, ["generate", "Write add(a, b)", "--base-url", url, "-r", str(reward_dir)])
    assert result.exit_code == 1 and result.stdout == ""
    assert f"generator server {url} is not reachable" in result.stderr and "Traceback" not in result.stderr


def test_reward_server_down_at_start_exits_1_naming_the_url(reward_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["rank", str(EXAMPLES / "candidates.jsonl"), "-r", str(reward_dir),
                                 "--reward-url", url, "-f", "jsonl"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"reward server {url}/v1 is not reachable" in result.stderr and "hint:" in result.stderr
    assert "Traceback" not in result.stderr


class HangingServer:
    """Answers GET /v1/models, then holds every POST open without answering (until closed)."""

    def __init__(self) -> None:
        self.posts = threading.Event()
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                body = json.dumps({"object": "list", "data": [{"id": "tiny", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                server.posts.set()
                server.release.wait(120)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("command", ["rank", "generate"])
def test_ctrl_c_during_requests_exits_130_at_once(command: str, reward_dir: Path, tmp_path: Path) -> None:
    server = HangingServer()
    if command == "rank":
        args = ["rank", str(EXAMPLES / "candidates.jsonl"), "-r", str(reward_dir), "--reward-url", server.url,
                "--timeout", "600", "-f", "jsonl"]
    else:
        args = ["generate", "Write add(a, b)", "--base-url", server.url, "-r", str(reward_dir), "--timeout", "600",
                "-n", "4", "--concurrency", "2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "codescaler_cli", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True)
    try:
        assert server.posts.wait(120), "the command never sent a request"
        time.sleep(0.5)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=90)
        waited = time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            process.kill()
        server.close()
    assert process.returncode == 130, stderr
    # The server holds every request 120 s and --timeout is 600 s: an exit well before that did not wait for them.
    # (The bound leaves room for the interpreter's own shutdown, seconds on a loaded machine.)
    assert waited < 60.0, f"exit took {waited:.1f}s after Ctrl-C: in-flight requests were waited for"
    assert "interrupted" in stderr and "Traceback" not in stderr
