"""The README's and the docs' examples run, on the tiny test models, and give output of the right shape.

Each page's runnable blocks (doc_examples.py says which are, and the markers that exempt one) run in order in a
fresh directory holding a copy of examples/ and the tiny models as models/tiny/{reward,generator,coder}. The hub
models the examples name are replaced by the tiny ones; CODESCALER_REWARD_MODEL points at the tiny reward model,
and CODESCALER_MODEL at the tiny coder for `generate` (the generator's default there).

Shell lines run one by one as the shell would, stage by stage: a `codescaler` stage in this process with Typer's
CliRunner (so torch, transformers and vLLM are imported once per session, not once per line), any other stage in
bash; stdout flows from stage to stage, and `> FILE` / `< FILE` work. A line ending in `&` starts a real process (a
server, shared by the pages that start the same one); the next line runs once its `/health` answers, and at the
end it must drain and exit 0 on SIGTERM. A line must exit 0, or the status its comment announces with the text of
its error (`# exit status 2: bad.jsonl:1: malformed JSON`), and its output must have its command's shape: JSONL
records with the command's fields, a table, JSON, or Python code. Python blocks run in this process. Each line's
seconds are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from doc_examples import (
    ROOT,
    Block,
    blocks,
    codescaler_command,
    command_lines,
    expected_status,
    leading_assignments,
    pages,
    stages,
    tokens,
)
from typer.testing import CliRunner

from codescaler_cli.cli import app

# The hub models the examples name, and the tiny model each stands in for.
STAND_INS = {
    "LARK-Lab/CodeScaler-1.7B": "reward",
    "LARK-Lab/CodeScaler-4B": "reward",
    "LARK-Lab/CodeScaler-8B": "reward",
    "Qwen/Qwen2.5-Coder-7B-Instruct": "coder",
}
SERVER_PORT = "8100"  # the port the examples give `codescaler serve`; a free one replaces it here

EXTRACTED = {"code", "valid"}
RANKED = EXTRACTED | {"score", "reward", "rank", "truncated"}
GENERATED = RANKED | {"prompt", "response", "sample", "seed", "finish_reason"}
TESTED = EXTRACTED | {"passed", "status", "tests_passed", "tests_total", "public_passed", "public_total"}


def _pages_with_examples() -> list[Any]:
    params = []
    for page in pages():
        runnable = [b for b in blocks(page) if b.runnable]
        if runnable:
            marks = [pytest.mark.vllm] if any(b.needs_vllm for b in runnable) else []
            params.append(pytest.param(page, id=str(page.relative_to(ROOT)), marks=marks))
    return params


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Examples:
    """What every page's examples run with: the stand-ins for the hub models, the environment, and the servers.

    A server (`codescaler serve ... &`) is one per distinct command line, shared by the pages that start the same
    one, on one port. Each is started when the module begins, so that its start-up (seconds: torch, the model)
    overlaps the first pages' examples; the line that starts it waits for its /health.
    """

    replacements: dict[str, str]
    env: dict[str, str]  # the overrides: the reward model, offline mode
    # The default generator of `generate` (CODESCALER_MODEL), set for that command alone: `eval` reads the variable
    # as -m, and would generate instead of testing the candidates it is given.
    generator: str
    server_dir: Path
    servers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def prepare(self, text: str) -> str:
        for old, new in self.replacements.items():
            text = text.replace(old, new)
        return text

    def full_env(self) -> dict[str, str]:
        env = {**os.environ, **self.env}
        env.pop("CODESCALER_CACHE", None)
        env.pop("CODESCALER_MODEL", None)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        return env

    def server(self, line: str) -> subprocess.Popen[bytes]:
        if line not in self.servers:
            self.servers[line] = subprocess.Popen(tokens(line)[:-1], cwd=self.server_dir, env=self.full_env(),
                                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                  stderr=subprocess.PIPE)
        return self.servers[line]


@pytest.fixture(scope="module")
def examples(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Examples]:
    """The examples' context; at the end, SIGTERM each server: it must drain and exit 0."""
    replacements = {name: str(tiny_models[kind]) for name, kind in STAND_INS.items()}
    replacements[SERVER_PORT] = str(_free_port())
    context = Examples(replacements, {"CODESCALER_REWARD_MODEL": str(tiny_models["reward"]), "HF_HUB_OFFLINE": "1"},
                       str(tiny_models["coder"]), tmp_path_factory.mktemp("servers"))
    for page in pages():
        for block in blocks(page):
            if block.runnable and block.language == "sh":
                for line in command_lines(block):
                    if tokens(line)[-1:] == ["&"]:
                        context.server(context.prepare(line))
    yield context
    failures = []
    for line, process in context.servers.items():
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
        if status != 0:
            failures.append(f"`{line}` exited {status} on SIGTERM")
    assert not failures, failures


@dataclass
class Page:
    """Where one page's examples run."""

    workdir: Path
    examples: Examples


@pytest.fixture
def page_dir(tmp_path: Path, tiny_models: dict[str, Path]) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    for name, path in tiny_models.items():
        (tmp_path / "models" / "tiny" / name).symlink_to(path)
    return tmp_path


@pytest.mark.parametrize("path", _pages_with_examples())
def test_examples_run(path: Path, page_dir: Path, examples: Examples, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("jq") is None:
        pytest.fail("the examples pipe through jq: install it (`make test` does, with apt-get)")
    page = Page(page_dir, examples)
    monkeypatch.chdir(page_dir)
    monkeypatch.delenv("CODESCALER_CACHE", raising=False)
    monkeypatch.delenv("CODESCALER_MODEL", raising=False)
    for name, value in examples.env.items():
        monkeypatch.setenv(name, value)
    for block in blocks(path):
        if not block.runnable:
            continue
        if block.language == "python":
            started = time.monotonic()
            run_python(block, page)
            print(f"{time.monotonic() - started:6.1f}s  {block.where} (python)")
        else:
            for line in command_lines(block):
                started = time.monotonic()
                run_line(block, examples.prepare(line), page)
                print(f"{time.monotonic() - started:6.1f}s  {block.where}: {line}")


def run_python(block: Block, page: Page) -> None:
    source = page.examples.prepare(block.text)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, block.where, "exec"), {"__name__": "__docs_example__"})
    if "print(" in source:
        assert out.getvalue().strip(), f"{block.where}: the example printed nothing"


# -- shell lines ------------------------------------------------------------------------------------------------


@dataclass
class Ran:
    """What one stage of a line did."""

    words: list[str]
    status: int
    stdout: bytes
    stderr: str


def run_line(block: Block, line: str, page: Page) -> None:
    where = f"{block.where}: `{line}`"
    words = tokens(line)
    if words and words[-1] == "&":
        wait_for_server(where, line, words[:-1], page.examples)
        return
    words, stdin, stdout_file = _redirections(where, words)
    pipeline = stages(words)
    data = (page.workdir / stdin).read_bytes() if stdin else None
    ran: list[Ran] = []
    for stage in pipeline:
        result = _run_stage(where, stage, data, page)
        ran.append(result)
        data = result.stdout
    expected, message = expected_status(line)
    main = next((r for r in ran if codescaler_command(r.words) is not None), ran[-1])
    for result in ran:
        wanted = expected if result is main else 0
        assert result.status == wanted, f"{where}: exit status {result.status}, not {wanted}\n{result.stderr[-3000:]}"
    if stdout_file and stdout_file != "/dev/null":
        (page.workdir / stdout_file).write_bytes(ran[-1].stdout)
    if expected:
        assert main.stdout == b"", f"{where}: a failing command wrote data to stdout"
        assert "error" in main.stderr and "Traceback" not in main.stderr, f"{where}: {main.stderr}"
        assert message in main.stderr, f"{where}: the error does not say {message!r}: {main.stderr}"
        return
    for result in ran:
        check_shape(where, result, page.workdir)


def _redirections(where: str, words: list[str]) -> tuple[list[str], str | None, str | None]:
    stdin = stdout = None
    kept: list[str] = []
    position = 0
    while position < len(words):
        if words[position] in ("<", ">"):
            assert position + 1 < len(words), f"{where}: redirection without a file"
            if words[position] == "<":
                stdin = words[position + 1]
            else:
                stdout = words[position + 1]
            position += 2
            continue
        assert words[position] not in (";", "&&", "||", ">>"), f"{where}: one command per line, please"
        kept.append(words[position])
        position += 1
    return kept, stdin, stdout


def _run_stage(where: str, stage: list[str], data: bytes | None, page: Page) -> Ran:
    found = codescaler_command(stage)
    if found is not None:
        assert found[0] != ["serve"], f"{where}: a server must run in the background: end the line with &"
        assigned, words = leading_assignments(stage)
        env: dict[str, str | None] = {
            "CODESCALER_CACHE": None,
            "CODESCALER_MODEL": page.examples.generator if found[0] == ["generate"] else None, **assigned}
        result = CliRunner().invoke(app, words[1:], input=data, env=env, catch_exceptions=False)
        return Ran(stage, result.exit_code, result.stdout_bytes, result.stderr)
    done = subprocess.run(["bash", "-c", shlex.join(stage)], input=data, cwd=page.workdir, env=page.examples.full_env(),
                          capture_output=True, timeout=600)
    return Ran(stage, done.returncode, done.stdout, done.stderr.decode(errors="replace"))


def wait_for_server(where: str, line: str, words: list[str], examples: Examples) -> None:
    """A `codescaler serve ... --port P &` line: its server (started with the module) answers /health."""
    assert "--port" in words, f"{where}: give the server a --port"
    port = words[words.index("--port") + 1]
    process = examples.server(line)
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            del examples.servers[line]
            pytest.fail(f"{where}: the server exited with {process.returncode}:\n{stderr[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{where}: the server did not answer /health in 300 s"
        time.sleep(0.2)


# -- output shapes ----------------------------------------------------------------------------------------------


def _option(words: list[str], *names: str) -> str | None:
    for position, word in enumerate(words[:-1]):
        if word in names:
            return words[position + 1]
        for name in names:
            if name.startswith("--") and word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def _records(where: str, text: str, fields: set[str]) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert records, f"{where}: no records"
    for record in records:
        assert isinstance(record, dict) and fields <= set(record), \
            f"{where}: a record lacks {sorted(fields - set(record))}: {record}"
    return records


def _json_values(where: str, text: str) -> list[Any]:
    decoder, values, position = json.JSONDecoder(), [], 0
    text = text.strip()
    while position < len(text):
        value, position = decoder.raw_decode(text, position)
        values.append(value)
        while position < len(text) and text[position].isspace():
            position += 1
    assert values, f"{where}: no output"
    return values


def check_shape(where: str, ran: Ran, workdir: Path) -> None:
    """The output a stage wrote (stdout, -o, --json, --plot) has the shape its command promises."""
    stdout = ran.stdout.decode()
    found = codescaler_command(ran.words)
    if found is None:
        program = Path(ran.words[0]).name if ran.words else ""
        if program == "jq":
            _json_values(where, stdout)
        elif program == "curl":
            for value in _json_values(where, stdout):
                assert not (isinstance(value, dict) and "error" in value), f"{where}: {value}"
        return
    path, words = found
    command = " ".join(path)
    output_format = _option(words, "--format", "-f") or "auto"
    fields = {"extract": EXTRACTED, "rank": RANKED, "generate": GENERATED, "eval": TESTED}.get(command)
    if command in ("extract", "rank") or (command == "generate" and (_option(words, "--problems", "-p")
                                                                      or output_format in ("jsonl", "json"))):
        if output_format == "table":
            assert stdout.strip(), f"{where}: no table"
        elif output_format == "json":
            value = json.loads(stdout)
            assert isinstance(value, list) and all(fields <= set(r) for r in value), f"{where}: {stdout[:500]}"
        elif stdout:  # `> /dev/null` leaves nothing to check on stdout
            _records(where, stdout, fields)  # type: ignore[arg-type]
    elif command == "generate":
        if output_format == "table":
            assert stdout.strip(), f"{where}: no table"
        else:
            assert stdout.strip(), f"{where}: no code on stdout"
            ast.parse(stdout)
    elif command == "eval":
        if _option(words, "--json") == "-":
            assert "strategies" in json.loads(stdout), f"{where}: {stdout[:500]}"
        else:
            assert "strategy" in stdout and "oracle" in stdout, f"{where}: no strategy table: {stdout[:500]}"
    elif command in ("env", "cache info"):
        value: Any = json.loads(stdout) if "--json" in words else stdout
        assert value and ("scores" in value if command == "cache info" else "torch" in value), f"{where}: {stdout}"
    output = _option(words, "--output", "-o")
    if output and fields:
        _records(f"{where} (-o {output})", (workdir / output).read_text(encoding="utf-8"), fields)
    report = _option(words, "--json") if command == "eval" else None
    if report and report != "-":
        assert "strategies" in json.loads((workdir / report).read_text(encoding="utf-8")), f"{where}: --json"
    plot = _option(words, "--plot")
    if plot:
        data = (workdir / plot).read_bytes()
        assert data and (not plot.endswith(".png") or data.startswith(b"\x89PNG")), f"{where}: --plot wrote no image"
