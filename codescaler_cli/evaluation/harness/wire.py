"""What crosses between the host, the judge and a candidate's process: length-prefixed frames on a file descriptor,
and Python values encoded as plain data.

Plain data means: None, bool, int, float, complex, str, bytes, and lists, tuples, dicts, sets and frozensets of
plain data. Tuples, sets, dicts with any keys, big integers and bytes are tagged JSON objects (`{"$tuple": [...]}`),
so a decoded value has exactly the type that was encoded. Decoding builds only these types (and `Remote` handles,
see below): whatever bytes the other side writes, what comes out is inert data, never an object with methods of
its author's choosing. An object that is not plain data stays where it lives and crosses as a handle
(`{"$ref": n}`), which the receiving side may only pass back or ask about by name.

Frames are JSON wherever the reader does not trust the writer (the judge reading a candidate's process). The judge
writes to a candidate's process in `marshal`, which that process may trust: it then needs neither the `json`
module nor `re` (a third of a small program's start-up), and writes its JSON with `_json_text` below.

This module is run inside the sandbox by `candidate.py` and `judge.py` under whatever interpreter the sandbox
uses, so it imports only the standard library (cheap modules only, at import), and runs on Python 3.8 and later.
"""

from __future__ import annotations

import binascii
import marshal
import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # not imported at run time: `typing` costs a candidate's process several milliseconds
    from typing import Any, Callable, Dict, List, Optional

try:  # the C function the json module escapes strings with
    from _json import encode_basestring_ascii as _quote
except ImportError:  # pragma: no cover - every CPython has it
    from json.encoder import py_encode_basestring_ascii as _quote

JSON = "json"
MARSHAL = "marshal"
# The most one frame may hold when its writer is not trusted (a candidate's return value).
UNTRUSTED_FRAME_BYTES = 16 * 1024 * 1024
# Deeper values are refused: nothing honest nests this deep, and decoding stays far from the recursion limit.
MAX_DEPTH = 200
# Integers beyond this many bits cross as hexadecimal (JSON's decimal digits are capped by Python 3.11+).
_INLINE_INT_BITS = 63
_HEADER_BYTES = 4  # a frame: its length (big-endian), then that many bytes


class ProtocolError(Exception):
    """The other side wrote something that is not a well-formed frame or plain value."""


class ChannelClosed(Exception):
    """The other side closed its end (it exited, or was killed)."""


class Channel:
    """Frames over one file descriptor (a socket or pipe), in both directions, each direction JSON or marshal.

    With a `deadline` (a `time.monotonic()` value), sending and receiving raise TimeoutError once it passes.
    """

    def __init__(self, fd: int, *, max_frame: Optional[int] = None, deadline: Optional[float] = None,
                 incoming: str = JSON, outgoing: str = JSON) -> None:
        self.fd = fd
        self.max_frame = max_frame
        self.deadline = deadline
        self.incoming = incoming
        self.outgoing = outgoing

    def send(self, message: Any) -> None:
        if self.outgoing == MARSHAL:
            data = marshal.dumps(message)
        else:
            data = _json_text(message).encode("ascii")
        view = memoryview(len(data).to_bytes(_HEADER_BYTES, "big") + data)
        while view:
            self._wait(for_reading=False)
            written = os.write(self.fd, view)
            view = view[written:]

    def receive(self) -> Any:
        """The next message; raises ChannelClosed at the end of the stream, ProtocolError on garbage."""
        length = int.from_bytes(self._read_exactly(_HEADER_BYTES, at_start=True), "big")
        if self.max_frame is not None and length > self.max_frame:
            raise ProtocolError(f"a message of {length} bytes is over the limit of {self.max_frame}")
        data = self._read_exactly(length, at_start=False)
        if self.incoming == MARSHAL:  # only ever from a trusted writer (see the module docstring)
            return marshal.loads(data)
        import json

        try:
            return json.loads(data.decode("utf-8", "surrogatepass"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ProtocolError(f"a message is not JSON ({type(exc).__name__})") from None

    def _wait(self, *, for_reading: bool) -> None:
        if self.deadline is None:
            return
        import select
        import time

        poller = select.poll()
        poller.register(self.fd, select.POLLIN if for_reading else select.POLLOUT)
        left = self.deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise TimeoutError("the deadline passed")

    def _read_exactly(self, size: int, *, at_start: bool) -> bytes:
        chunks: List[bytes] = []
        missing = size
        while missing:
            self._wait(for_reading=True)
            chunk = os.read(self.fd, min(missing, 1 << 20))
            if not chunk:
                if at_start and missing == size:
                    raise ChannelClosed()
                raise ProtocolError("the stream ended inside a message")
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def _json_text(value: Any) -> str:
    """`value` (None, bool, int, finite float, str, and lists and str-keyed dicts of them: what `encode` makes
    and the messages around it) as JSON text, without importing `json`."""
    kind = type(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        return float.__repr__(value)
    if kind is str:
        return _quote(value)
    if kind is list or kind is tuple:
        return "[" + ",".join([_json_text(item) for item in value]) + "]"
    if kind is dict:
        return "{" + ",".join([_quote(str(key)) + ":" + _json_text(item) for key, item in value.items()]) + "}"
    raise TypeError(f"cannot write a {kind.__name__} as JSON")


class Remote:
    """A handle on an object that stays in the other process. It compares equal only to itself (the same handle
    number): no method of the object ever runs on this side."""

    __slots__ = ("ref", "type_name")

    def __init__(self, ref: int, type_name: str) -> None:
        self.ref = ref
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name} object in the program>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Remote) and other.ref == self.ref

    def __hash__(self) -> int:
        return hash(("Remote", self.ref))


def encode(value: Any, *, ref: Optional[Callable[[Any], Any]] = None, depth: int = 0) -> Any:
    """`value` as JSON-ready plain data. Subclasses of the plain types cross as their base type; numpy scalars as
    the Python number they hold. `ref(obj)` gives the encoding of anything else (a handle, or an error)."""
    if depth > MAX_DEPTH:
        raise ValueError("the value is nested too deeply to send")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if value.bit_length() <= _INLINE_INT_BITS else {"$int": hex(value)}
    if kind is float:
        return value if value == value and value not in (float("inf"), float("-inf")) else {"$float": repr(value)}
    if kind is list:
        return [encode(item, ref=ref, depth=depth + 1) for item in value]
    if kind is tuple:
        return {"$tuple": [encode(item, ref=ref, depth=depth + 1) for item in value]}
    if kind is dict:
        return {"$dict": [[encode(k, ref=ref, depth=depth + 1), encode(v, ref=ref, depth=depth + 1)]
                          for k, v in value.items()]}
    if kind is set or kind is frozenset:
        return {"$" + kind.__name__: [encode(item, ref=ref, depth=depth + 1) for item in value]}
    if kind is bytes:
        return {"$bytes": binascii.b2a_base64(value, newline=False).decode("ascii")}
    if kind is complex:
        return {"$complex": [encode(value.real), encode(value.imag)]}
    base = _plain_base(value)
    if base is not None:
        return encode(base(value), ref=ref, depth=depth + 1)
    numeric = _numpy_scalar(value)
    if numeric is not None:
        return encode(numeric, ref=ref, depth=depth + 1)
    if isinstance(value, Remote):
        return {"$ref": value.ref}
    if ref is None:
        raise TypeError(f"a {kind.__name__} object cannot be sent")
    return ref(value)


def _plain_base(value: Any) -> Optional[type]:
    # bool is final, so an int subclass here is something like IntEnum: it crosses as the int it is.
    for base in (int, float, complex, str, bytes, list, tuple, dict, frozenset, set):
        if isinstance(value, base):
            return base
    if isinstance(value, bytearray):
        return bytes
    return None


def _numpy_scalar(value: Any) -> Any:
    kind = type(value)
    if kind.__module__ != "numpy" or not hasattr(value, "item") or getattr(value, "shape", None) != ():
        return None
    item = value.item()
    return item if type(item) in (bool, int, float, complex, str, bytes) else None


def decode(data: Any, *, resolve: Optional[Callable[[Dict[str, Any]], Any]] = None, depth: int = 0) -> Any:
    """Plain data back into a value. `resolve(tagged)` decodes `$ref` (and `$object`) tags; without it they are
    refused. Raises ProtocolError on anything malformed."""
    if depth > MAX_DEPTH:
        raise ProtocolError("a value is nested too deeply")
    kind = type(data)
    if data is None or kind in (bool, int, float, str):
        return data
    if kind is list:
        return [decode(item, resolve=resolve, depth=depth + 1) for item in data]
    if kind is not dict or len(data) < 1:
        raise ProtocolError("a value is not plain data")
    tag = next(iter(data))
    body = data[tag]
    try:
        if tag == "$tuple":
            return tuple(decode(item, resolve=resolve, depth=depth + 1) for item in _list(body))
        if tag == "$dict":
            return {decode(k, resolve=resolve, depth=depth + 1): decode(v, resolve=resolve, depth=depth + 1)
                    for k, v in (_pair(item) for item in _list(body))}
        if tag == "$set":
            return {decode(item, resolve=resolve, depth=depth + 1) for item in _list(body)}
        if tag == "$frozenset":
            return frozenset(decode(item, resolve=resolve, depth=depth + 1) for item in _list(body))
        if tag == "$int" and type(body) is str:
            return int(body, 16)
        if tag == "$float" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "$bytes" and type(body) is str:
            return binascii.a2b_base64(body.encode("ascii"))
        if tag == "$complex":
            real, imag = _pair(body)
            if type(real) in (int, float) and type(imag) in (int, float):
                return complex(real, imag)
        if tag in ("$ref", "$object") and resolve is not None:
            return resolve(data)
    except (TypeError, ValueError, binascii.Error):  # e.g. an unhashable dict key or set member
        raise ProtocolError(f"a malformed {tag} value") from None
    raise ProtocolError(f"a value is not plain data ({tag[:20]!r})")


def _list(body: Any) -> List[Any]:
    if type(body) is not list:
        raise ProtocolError("a malformed value")
    return body


def _pair(item: Any) -> List[Any]:
    if type(item) is not list or len(item) != 2:
        raise ProtocolError("a malformed value")
    return item


def describe_exception(exc: BaseException) -> Dict[str, Any]:
    """An exception as plain data: its type's name, the builtin exceptions it derives from (first the nearest),
    its arguments when they are plain, and its message."""
    builtin_bases = [cls.__name__ for cls in type(exc).__mro__
                     if cls.__module__ == "builtins" and issubclass(cls, BaseException)]
    try:
        args = encode(exc.args)
    except (TypeError, ValueError, RecursionError):
        args = None
    try:
        message = str(exc)
    except Exception:  # a __str__ that raises
        message = ""
    return {"type": type(exc).__name__, "builtin": builtin_bases, "args": args, "message": message[:1000]}


def set_dumpable(dumpable: bool) -> None:
    """Make this process (and the processes it forks) dumpable or not. A non-dumpable process cannot be traced by a
    process of the same user, nor its memory or descriptors opened under /proc. The judge and the zygote make
    themselves so: in the fallback a candidate may run as the judge's user, and in a zygote's sandbox it always
    runs as the zygote's; the zygote's children become dumpable again, as any fresh process is."""
    import ctypes

    pr_set_dumpable = 4
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_dumpable, int(dumpable), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")
