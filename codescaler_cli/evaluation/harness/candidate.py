"""The candidate's side of a judged run: the one program the sandbox starts for a candidate. It loads the
candidate's code and answers the judge's calls with plain values, and that is all it can do.

Nothing in this process is worth forging: it never holds a test's expected output, a comparison or a verdict, and
it has no channel to whoever records verdicts. The candidate's code runs here with every power over this process
(it may replace this file's functions, write to the judge's channel, exit at any moment); whatever it does, the
judge reads only values, one per call it made, decoded as inert data.

Run by the sandbox as `python -I -S -B candidate.py FD`, FD being the channel to the judge. Standard library only,
Python 3.8 and later (it runs under the sandbox's interpreter, not codescaler's).
"""

from __future__ import annotations

import builtins
import io
import os
import sys
import types

TYPE_CHECKING = False
if TYPE_CHECKING:  # not imported at run time: every import here delays every program's start
    from typing import Any, Dict, List

if __package__:
    from . import wire
else:  # run as a script in the sandbox, next to wire.py
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import wire

    del sys.path[0]

# What one call may print when the judge asks for its output (docstring examples): more is dropped.
_MAX_CAPTURED_CHARACTERS = 64 * 1024


class _CappedText(io.TextIOBase):
    """A stdout that keeps the first characters written to it."""

    def __init__(self) -> None:
        self.parts: List[str] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.size < _MAX_CAPTURED_CHARACTERS:
            kept = str(text)[: _MAX_CAPTURED_CHARACTERS - self.size]
            self.parts.append(kept)
            self.size += len(kept)
        return len(text)

    def text(self) -> str:
        return "".join(self.parts)


class _Program:
    """The loaded program's namespace, and the objects handed out as handles."""

    def __init__(self) -> None:
        self.namespace: Dict[str, Any] = {"__name__": "solution", "__builtins__": builtins}
        self.handles: Dict[int, Any] = {}

    def handle(self, value: Any) -> Dict[str, Any]:
        number = len(self.handles) + 1
        self.handles[number] = value
        return {"$ref": number, "type": type(value).__name__}

    def resolve(self, tagged: Dict[str, Any]) -> Any:
        """A `$ref` handed out earlier, or a `$object`: an instance of a class the test code defined (which the
        setup code defined here too), rebuilt from its attributes."""
        if "$ref" in tagged:
            value = self.handles.get(tagged["$ref"]) if type(tagged["$ref"]) is int else None
            if value is None:
                raise wire.ProtocolError("an unknown handle")
            return value
        attributes = wire.decode(tagged.get("attributes", {"$dict": []}), resolve=self.resolve)
        cls = self.namespace.get(str(tagged["$object"]))
        value = object.__new__(cls) if isinstance(cls, type) else types.SimpleNamespace()
        value.__dict__.update(attributes)
        return value

    def target(self, spec: Dict[str, Any]) -> Any:
        if "name" in spec:
            return self.namespace[spec["name"]]
        if "functional" in spec:
            # LiveCodeBench's functional tests: a method of a fresh `Solution` when there is one, else a function.
            name = spec["functional"]
            solution = self.namespace.get("Solution")
            if isinstance(solution, type) and hasattr(solution, name):
                return getattr(solution(), name)
            return self.namespace[name]
        return self.resolve({"$ref": spec.get("ref")})


def _answer(program: _Program, request: Dict[str, Any]) -> Dict[str, Any]:
    captured = _CappedText() if request.get("capture") else None
    stdout = sys.stdout
    try:
        if captured is not None:
            sys.stdout = captured
        if request.get("op") == "getattr":
            value = getattr(program.target(request["target"]), str(request["name"]))
        else:
            function = program.target(request["target"])
            args = wire.decode(request.get("args", []), resolve=program.resolve)
            kwargs = wire.decode(request.get("kwargs", {"$dict": []}), resolve=program.resolve)
            value = function(*args, **kwargs)
        reply: Dict[str, Any] = {"value": wire.encode(value, ref=program.handle)}
    except BaseException as exc:  # the candidate's exception, whatever it is, is the call's answer
        reply = {"raised": wire.describe_exception(exc)}
    finally:
        sys.stdout = stdout
    if captured is not None:
        reply["stdout"] = captured.text()
    return reply


def main(argv: List[str]) -> None:
    # The judge writes marshal, which this process may trust (wire.py); it reads this process's JSON.
    channel = wire.Channel(int(argv[1]), incoming=wire.MARSHAL)
    channel.send({"ready": True})
    request = channel.receive()
    program = _Program()
    sys.path[:] = [str(entry) for entry in request.get("path", sys.path)]
    sys.argv = ["solution.py"]
    try:
        exec(compile(request["source"], "solution.py", "exec"), program.namespace)
        if request.get("setup", "").strip():
            exec(compile(request["setup"], "<test setup>", "exec"), program.namespace)
    except BaseException as exc:
        channel.send({"load_error": wire.describe_exception(exc)})
        return
    channel.send({"loaded": sorted(name for name, value in list(program.namespace.items())
                                   if callable(value) and not name.startswith("__"))})
    while True:
        try:
            request = channel.receive()
        except wire.ChannelClosed:
            return
        channel.send(_answer(program, request))


if __name__ == "__main__":
    main(sys.argv)
