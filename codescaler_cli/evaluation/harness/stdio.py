"""How a stdin problem's program meets its test's input, in the candidate's process: as LiveCodeBench's runner calls
it (`call_method` in `lcb_runner/evaluation/testing_util.py`), or as rllm's copy of that runner does (DeepCoder, the
CodeScaler paper).

The program was loaded once, as those runners load it: its statements wrapped in `wrapped_function()` (grading.py,
`lcb_stdin_program`). For each test the function is called with what it prints captured and the input served the
way those runners serve it, which is not a plain file on stdin:

- `sys.stdin` is replaced by an object over the input. LiveCodeBench's: `read()` gives the whole input,
  `readline()` the next line with its newline ('' at the end), `readlines()` the input split on newlines (without
  them), `buffer.read()` the input's bytes and `buffer.readline()` always its first line; everything else is a
  StringIO's over the input (so `input()` reads line by line, and iterating over it fails). rllm's: a plain
  StringIO over the input, with no `buffer`.
- The interpreter's own stdin object (which a program that did `from sys import stdin` holds) answers `read`,
  `readline` and `readlines` from the input too, its `readline` without newlines and raising at the end.
- `open(...)` returns a mock file whose contents are the input (`unittest.mock.mock_open`).
- `SystemExit` ends the function normally, whatever its code; what it printed until then is its output.

Standard library only, Python 3.8 and later (it runs under the sandbox's interpreter, not codescaler's).
"""

from __future__ import annotations

import contextlib
import io
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

LIVECODEBENCH = "livecodebench"
RLLM = "rllm"
FLAVOURS = (LIVECODEBENCH, RLLM)


class _InputBytes:
    """LiveCodeBench's `sys.stdin.buffer`: the whole input as bytes, and its first line, every time."""

    def __init__(self, text: str) -> None:
        self._data = text.encode("utf-8")

    def read(self, *args: Any) -> bytes:
        return self._data

    def readline(self, *args: Any) -> bytes:
        return self._data.split(b"\n", 1)[0] + b"\n"


class _LiveCodeBenchStdin:
    """LiveCodeBench's `sys.stdin` during a test (see the module docstring)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._lines = io.StringIO(text)
        self.buffer = _InputBytes(text)

    def read(self, *args: Any) -> str:
        return self._text

    def readline(self, *args: Any) -> str:
        return self._lines.readline(*args)

    def readlines(self, *args: Any) -> list:
        return self._text.split("\n")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lines, name)


def run_with_input(function: Callable[[], Any], text: str, flavour: str) -> str:
    """Call `function` (a loaded program's `wrapped_function`) with `text` served as its input the way `flavour`'s
    runner serves it; return what it printed. Its exceptions propagate, except SystemExit."""
    from unittest import mock

    lines = iter(text.split("\n"))
    replacement = _LiveCodeBenchStdin(text) if flavour == LIVECODEBENCH else io.StringIO(text)
    captured = io.StringIO()
    captured.close = lambda *args: None  # type: ignore[method-assign]  # a program closing stdout keeps its output
    if sys.stdin is None:  # no descriptor 0: the runners' process always has one (multiprocessing's /dev/null)
        sys.stdin = open("/dev/null")  # noqa: SIM115
    with _printing_to(captured), contextlib.ExitStack() as patches:
        # The order the runners' decorators take effect in: the interpreter's stdin object first, then the
        # replacement for sys.stdin, then open().
        patches.enter_context(mock.patch("sys.stdin.read", lambda *args: text))
        patches.enter_context(mock.patch("sys.stdin.readlines", lambda *args: text.split("\n")))
        patches.enter_context(mock.patch("sys.stdin.readline", lambda *args: next(lines)))
        patches.enter_context(mock.patch("sys.stdin", replacement))
        patches.enter_context(mock.patch("builtins.open", mock.mock_open(read_data=text)))
        try:
            function()
        except SystemExit:
            pass
    return captured.getvalue()


@contextlib.contextmanager
def _printing_to(stream: io.StringIO) -> Iterator[None]:
    saved = sys.stdout
    sys.stdout = stream
    try:
        yield
    finally:
        sys.stdout = saved
