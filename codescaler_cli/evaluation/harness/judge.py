"""The judge: where tests run and verdicts are decided, in a sandbox of its own that no candidate can reach.

One judge server runs per `Sandbox`. For every program the host sends it two descriptors: a channel to the host
(the test specification comes in, verdicts go out) and a channel to the candidate's process. The server forks a
judge for that program, which runs the tests: the test code (HumanEval's `check`, MBPP's asserts, docstring
examples) runs here, and every name the candidate defines is a proxy whose calls cross to the candidate's process
as plain values; functional tests send the arguments and compare the value that comes back. Expected outputs,
assertions and comparisons never leave this process, and the candidate's process holds no channel to the host.

Run by the sandbox as `python -I -S -B judge.py FD`, FD being the control socket. Standard library only, Python 3.8
and later (it runs under the sandbox's interpreter, not codescaler's).
"""

from __future__ import annotations

import array
import ast
import builtins
import contextlib
import errno
import io
import json
import os
import resource
import signal
import socket
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

if __package__:
    from . import comparisons, wire
else:  # run as a script in the sandbox, next to wire.py
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import comparisons
    import wire

    del sys.path[0]

# Outcomes a test reports that are not statuses: the candidate's process is gone, and the host knows why.
GONE = "gone"
# The builtin exception classes a candidate's exception may name (its MRO's builtins: a handful) that are tried.
_MAX_EXCEPTION_BASES = 8


class _TestTimeout(BaseException):
    """A test ran out of time (raised by the interval timer, wherever the test is)."""


class _ProgramUnusable(BaseException):
    """The candidate's process ended, or wrote something that is not an answer: no later call can be trusted.

    A BaseException, so test code's `except Exception` cannot swallow it (and if a bare `except` does, the
    judge still knows)."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _ProgramExit(BaseException):
    """The candidate's function raised SystemExit, KeyboardInterrupt or the like: it ends the test, as it would
    end an in-process test, but never this process."""


class _Remote(wire.Remote):
    """A handle on an object in the candidate's process that test code may call or ask for attributes (never
    compare by value: its `__eq__` is never run)."""

    __slots__ = ("_judge",)

    def __init__(self, judge: "_Judge", ref: int, type_name: str) -> None:
        super().__init__(ref, type_name)
        self._judge = judge

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._judge.call({"ref": self.ref}, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._judge.request({"op": "getattr", "target": {"ref": self.ref}, "name": name})


class _Function:
    """What test code sees for a function (or class) the candidate defines: calling it is a call across."""

    def __init__(self, judge: "_Judge", target: Dict[str, Any], name: str) -> None:
        self._judge = judge
        self._target = target
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._judge.call(self._target, args, kwargs)

    def __repr__(self) -> str:
        return f"<function {self.__name__} in the program>"


class _Judge:
    """Runs one program's tests against its candidate process and reports each verdict to the host."""

    def __init__(self, host: wire.Channel, program: wire.Channel, spec: Dict[str, Any]) -> None:
        self.host = host
        self.program = program
        self.spec = spec
        self.timeout = float(spec["timeout"])
        # A limit on each call to the candidate's code, within a test's (EvalPlus: one per input of its check).
        self.call_timeout: Optional[float] = float(spec["call_timeout"]) if spec.get("call_timeout") else None
        self.capture = False  # docstring examples show what the candidate prints
        self.unusable: Optional[_ProgramUnusable] = None
        self.timed_out = False
        self.trusted_module = "tests"

    # -- talking to the candidate ------------------------------------------------------------------------------

    def _receive(self) -> Any:
        if self.unusable is not None:
            raise self.unusable
        try:
            return self.program.receive()
        except wire.ChannelClosed:
            self.unusable = _ProgramUnusable(GONE, "the program's process ended")
        except wire.ProtocolError as exc:
            self.unusable = _ProgramUnusable("error", f"the program did not answer with a value: {exc}")
        except OSError as exc:
            self.unusable = _ProgramUnusable(GONE, f"the program's process ended ({exc.strerror})")
        raise self.unusable

    def _send(self, message: Dict[str, Any]) -> None:
        if self.unusable is not None:
            raise self.unusable
        try:
            self.program.send(message)
        except OSError as exc:
            self.unusable = _ProgramUnusable(GONE, f"the program's process ended ({exc.strerror})")
            raise self.unusable from None

    def request(self, message: Dict[str, Any]) -> Any:
        """Send one request and decode its answer: the value, or the candidate's exception raised here."""
        self._send(message)
        reply = self._receive()
        if type(reply) is not dict:
            self.unusable = _ProgramUnusable("error", "the program did not answer with a value")
            raise self.unusable
        if self.capture and isinstance(reply.get("stdout"), str):
            sys.stdout.write(reply["stdout"])
        try:
            if "raised" in reply:
                raise_program_exception(reply["raised"])
            return wire.decode(reply.get("value"), resolve=self._handle)
        except wire.ProtocolError as exc:
            self.unusable = _ProgramUnusable("error", f"the program did not answer with a value: {exc}")
            raise self.unusable from None

    def call(self, target: Dict[str, Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        try:
            encoded_args = wire.encode(list(args), ref=self._object)
            encoded_kwargs = wire.encode(dict(kwargs), ref=self._object)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cannot pass this argument to the program: {exc}") from None
        with self._call_timer():
            return self.request({"op": "call", "target": target, "args": encoded_args, "kwargs": encoded_kwargs,
                                 "capture": self.capture})

    @contextlib.contextmanager
    def _call_timer(self) -> Any:
        """Within the test's timer, `call_timeout` for one call: the test's timer is set to what is left of it
        afterwards (the same handler ends either as a timeout)."""
        left = signal.getitimer(signal.ITIMER_REAL)[0]
        if self.call_timeout is None or 0 < left <= self.call_timeout:
            yield
            return
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, self.call_timeout)
        try:
            yield
        finally:
            if not self.timed_out:
                signal.setitimer(signal.ITIMER_REAL, max(left - (time.monotonic() - started), 1e-6) if left else 0)

    def _handle(self, tagged: Dict[str, Any]) -> Any:
        if "$ref" not in tagged or type(tagged["$ref"]) is not int:
            raise wire.ProtocolError("a malformed handle")
        return _Remote(self, tagged["$ref"], str(tagged.get("type", "object"))[:100])

    def _object(self, value: Any) -> Dict[str, Any]:
        """An instance of a class the test code defined (e.g. MBPP's setup code building a tree) crosses as its
        class name and attributes; the setup code defined the same class in the candidate's process."""
        cls = type(value)
        if cls.__module__ != self.trusted_module or not hasattr(value, "__dict__"):
            raise TypeError(f"a {cls.__name__} object cannot be sent")
        return {"$object": cls.__qualname__, "attributes": wire.encode(dict(vars(value)), ref=self._object)}

    # -- running tests -----------------------------------------------------------------------------------------

    def run(self) -> None:
        spec = self.spec
        try:
            with self._timer(float(spec["startup_timeout"])):
                hello = self._receive()
            if hello != {"ready": True}:
                raise _ProgramUnusable("error", "the program's process did not start the harness")
            self.host.send({"event": "ready"})
            self._send({"source": spec["source"], "setup": spec.get("setup", ""), "path": spec.get("path", [])})
            # Everything the candidate's process sends is decoded under a timer: its error's description too,
            # which it writes as it likes.
            with self._timer(self.timeout):
                loaded = self._receive()
                if type(loaded) is dict and "load_error" in loaded:
                    status, detail = describe_program_exception(loaded["load_error"])
                    raise _ProgramUnusable("error" if status == "failed" else status, detail)
                names = loaded.get("loaded") if type(loaded) is dict else None
                if type(names) is not list or not all(type(name) is str for name in names):
                    raise _ProgramUnusable("error", "the program's process did not report what it defines")
        except BaseException as exc:
            status, detail = self._status_of(exc)
            self.host.send({"event": "load_failed", "status": status, "detail": detail})
            return
        self.host.send({"event": "loaded"})
        for phase in spec["phases"]:
            try:
                with self._timer(self.timeout):
                    namespace = self._namespace(names)
            except BaseException as exc:  # the problem's own code failed: no candidate can pass
                status, detail = self._status_of(exc)
                self.host.send({"event": "load_failed", "status": "error", "detail": f"the problem's code: {detail}"})
                return
            for index, test in enumerate(phase["tests"]):
                status, detail, seconds = self._run_test(namespace, test)
                self.host.send({"event": "test", "phase": phase["name"], "index": index, "status": status,
                                "seconds": seconds, "detail": detail[:300]})
                if status in ("timeout", GONE) or self.unusable is not None:
                    # The process is busy or gone, or its channel out of step: nothing more can run in it.
                    return
            self.host.send({"event": "phase_done", "phase": phase["name"]})
        self.host.send({"event": "done"})

    def _namespace(self, names: List[str]) -> Dict[str, Any]:
        """The test code's globals: the problem's own code (HumanEval's prompt with its helpers, MBPP's setup),
        then a proxy for every callable the candidate defines that the problem's code does not (and for the entry
        point, which the prompt defines as a stub). A builtin's name is never the candidate's: the tests' own
        `abs`, `set` or `zip` would otherwise run in the candidate's process, which could answer them as it likes
        (and see the expected outputs passed to them)."""
        namespace: Dict[str, Any] = {"__name__": self.trusted_module, "__builtins__": builtins}
        trusted = self.spec.get("trusted", "")
        if trusted.strip():
            exec(compile(trusted, "<problem>", "exec"), namespace)
        entry_point = self.spec.get("entry_point")
        for name in names:
            if name == entry_point or (name not in namespace and not hasattr(builtins, name)):
                namespace[name] = _Function(self, {"name": name}, name)
        return namespace

    def _run_test(self, namespace: Dict[str, Any], test: Dict[str, Any]) -> Tuple[str, str, float]:
        started = time.perf_counter()
        self.timed_out = False
        try:
            with self._timer(self.timeout):
                if test["kind"] == "assert":
                    exec(compile(test["input"], "<test>", "exec"), namespace)
                    ok, detail = True, ""
                elif test["kind"] == "example":
                    ok, detail = self._run_example(namespace, test["input"], test["output"])
                elif test["kind"] == "stdin":
                    ok, detail = self._run_stdin(test["input"], test["output"])
                else:
                    ok, detail = self._run_functional(test["input"], test["output"])
            status = "passed" if ok else "failed"
        except BaseException as exc:
            status, detail = self._status_of(exc)
        # Test code that swallowed our own exceptions does not get to pass.
        if self.unusable is not None:
            status, detail = self.unusable.status, self.unusable.detail
        elif self.timed_out:
            status, detail = "timeout", "timed out"
        return status, detail, time.perf_counter() - started

    def _run_functional(self, arguments: str, expected: str) -> Tuple[bool, str]:
        args = comparisons.lcb_call_arguments(arguments)
        result = self.call({"functional": self.spec["fn_name"], "solution": bool(self.spec.get("solution_class"))},
                           tuple(args), {})
        return self._compare("functional", result, expected)

    def _run_stdin(self, text: str, expected: str) -> Tuple[bool, str]:
        """A stdin test: the program's wrapped function runs with `text` as its input; what it printed is
        compared."""
        printed = self.request({"op": "stdin", "input": text, "flavour": self.spec["stdin_input"]})
        if type(printed) is not str:
            self.unusable = _ProgramUnusable("error", "the program did not answer with its output")
            raise self.unusable
        return self._compare("stdin", printed, expected)

    def _compare(self, kind: str, got: Any, expected: str) -> Tuple[bool, str]:
        options = dict(self.spec["compare"])
        rule = str(options.pop(kind))
        options.pop("stdin" if kind == "functional" else "functional", None)
        return COMPARISONS[rule](got, expected, options)

    def _run_example(self, namespace: Dict[str, Any], source: str, want: str) -> Tuple[bool, str]:
        captured = io.StringIO()
        self.capture = True
        try:
            with contextlib.redirect_stdout(captured):
                try:
                    code = compile(source, "<example>", "eval")
                except SyntaxError:
                    exec(compile(source, "<example>", "exec"), namespace)
                    value = None
                else:
                    value = eval(code, namespace)
        finally:
            self.capture = False
        shown = captured.getvalue() + ("" if value is None else repr(value))
        if _shown(shown) == _shown(want):
            return True, ""
        if not want.strip() and value is True:
            # `>>> f(x) == y` with no output line: the example states a fact, and it holds.
            return True, ""
        try:
            if value is not None and ast.literal_eval(want.strip()) == value:
                return True, ""
        except Exception:
            pass
        return False, "expected " + _shown(want)[:80] + ", got " + _shown(shown)[:80]

    @contextlib.contextmanager
    def _timer(self, seconds: float) -> Any:
        def expire(signum: int, frame: Any) -> None:
            self.timed_out = True
            raise _TestTimeout()

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def _status_of(self, exc: BaseException) -> Tuple[str, str]:
        if isinstance(exc, _TestTimeout):
            return "timeout", "timed out"
        if isinstance(exc, _ProgramUnusable):
            return exc.status, exc.detail
        return status_of_exception(exc)


def compare_lcb_value(result: Any, expected: str, options: Dict[str, Any]) -> Tuple[bool, str]:
    """LiveCodeBench's functional verdict (`comparisons.lcb_functional_equal`)."""
    if comparisons.lcb_functional_equal(expected, result):
        return True, ""
    return False, "expected " + _shown(expected)[:80] + ", got " + _shown(_preview(result))[:80]


def compare_lcb_output(printed: str, expected: str, options: Dict[str, Any]) -> Tuple[bool, str]:
    """LiveCodeBench's stdin verdict (`comparisons.lcb_stdin_equal`)."""
    if comparisons.lcb_stdin_equal(expected, printed):
        return True, ""
    return False, "wrong answer: expected " + repr(_shown(expected)[:40]) + ", got " + repr(_shown(printed)[:40])


def _preview(value: Any) -> str:
    """A returned value, shown for a failed test's detail. Showing it never decides the verdict: a value neither
    JSON nor repr() can render (an int over Python's digit limit for str(), a repr that raises) is shown by its
    type."""
    for render in (json.dumps, repr):
        try:
            return render(value)
        except Exception:
            continue
    return f"<a {type(value).__name__} that cannot be shown>"


# How a test's result (a functional call's value, a stdin program's output) is compared with its expected output,
# by name: the host's `comparison_for` picks one per kind of test for each problem, from the problem's grading rule,
# with options (a tolerance, say). A benchmark's own rule is one function here.
COMPARISONS: Dict[str, Callable[[Any, str, Dict[str, Any]], Tuple[bool, str]]] = {
    "lcb_value": compare_lcb_value, "lcb_output": compare_lcb_output}


def status_of_exception(exc: BaseException) -> Tuple[str, str]:
    """A test's status from the exception that ended it: an assertion is a wrong answer; a resource limit seen as
    an exception names the limit; anything else is an error."""
    if isinstance(exc, _ProgramExit):
        return "error", str(exc)
    name = getattr(exc, "program_type", None) or type(exc).__name__
    try:
        text = f"{name}: {exc}".strip().rstrip(":")
    except Exception:
        text = name
    if isinstance(exc, MemoryError):
        return "memory", text
    if isinstance(exc, BlockingIOError) and getattr(exc, "errno", None) == errno.EAGAIN:
        return "processes", text  # fork refused: the process limit
    if getattr(exc, "errno", None) in (errno.EFBIG, errno.ENOSPC):
        return "disk", text  # the file-size limit, or a full /tmp or work directory
    if isinstance(exc, AssertionError):
        return "failed", text
    return "error", text


def raise_program_exception(description: Any) -> None:
    """Raise, here, the exception the candidate's function raised there: the nearest builtin exception class it
    derives from, with its arguments (plain data) or its message, so test code that expects an exception sees
    one. The candidate's own class never crosses."""
    if type(description) is not dict:
        raise wire.ProtocolError("a malformed exception")
    name = str(description.get("type", "Exception"))[:100]
    message = str(description.get("message", ""))[:1000]
    bases = description.get("builtin")
    try:  # once, whatever the number of bases tried
        arguments: Any = wire.decode(description.get("args"))
    except wire.ProtocolError:
        arguments = None
    # The candidate writes this list: only an MRO's first few entries are ever tried.
    for base in bases[:_MAX_EXCEPTION_BASES] if type(bases) is list else []:
        cls = getattr(builtins, str(base), None)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            continue
        if not issubclass(cls, Exception):  # SystemExit, KeyboardInterrupt, GeneratorExit
            raise _ProgramExit(f"{name}: {message}".rstrip(": "))
        exc = _construct(cls, arguments, message)
        if exc is not None:
            exc.program_type = name  # type: ignore[attr-defined]
            raise exc
    raise _ProgramExit(f"{name}: {message}")


def _construct(cls: type, arguments: Any, message: str) -> Optional[BaseException]:
    for attempt in (lambda: cls(*arguments), lambda: cls(message)):
        try:
            exc = attempt()
        except Exception:
            continue
        if isinstance(exc, BaseException):
            return exc
    return None


def describe_program_exception(description: Any) -> Tuple[str, str]:
    """The status and detail of an exception the candidate's process reported (loading failed)."""
    try:
        raise_program_exception(description)
    except _TestTimeout:
        raise
    except _ProgramExit as exc:
        return "error", str(exc)
    except wire.ProtocolError as exc:
        return "error", f"the program did not describe its error: {exc}"
    except BaseException as exc:
        return status_of_exception(exc)
    return "error", "unknown error"


def _shown(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------------------------
# The server


def judge_program(host_fd: int, program_fd: int) -> None:
    """Judge one program: read its specification from the host, run it against the candidate's process."""
    host = wire.Channel(host_fd)
    program = wire.Channel(program_fd, max_frame=wire.UNTRUSTED_FRAME_BYTES, outgoing=wire.MARSHAL)
    try:
        spec = host.receive()
        # The host waits `cpu_seconds` for this program at most: a judge never outlives that by spinning.
        cpu_seconds = int(spec.get("cpu_seconds", 0))
        if cpu_seconds > 0:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        _Judge(host, program, spec).run()
    except (wire.ChannelClosed, BrokenPipeError):
        pass  # the host gave up on this program (its deadline, or an interrupt)


def _receive_descriptors(control: socket.socket) -> Tuple[bytes, List[int]]:
    fds = array.array("i")
    message, ancillary, _, _ = control.recvmsg(64, socket.CMSG_SPACE(2 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return message, list(fds)


def serve(control_fd: int, settings: Dict[str, Any]) -> None:
    """Fork a judge for every program the host announces; end when the host closes the control socket.

    `settings`: the interpreter's search `path` (test code may import its packages: EvalPlus's checks use numpy),
    and the modules to `preload` once here rather than in every judge."""
    wire.set_dumpable(False)
    wire.preload(settings)
    control = socket.socket(fileno=control_fd)
    # Judges are never waited for: the kernel reaps them.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        message, fds = _receive_descriptors(control)
        if not message:
            return
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            continue
        pid = _fork()
        if pid is None:  # no process to be had: this program's host channel closes, and it errs
            for fd in fds:
                os.close(fd)
            continue
        if pid == 0:
            try:
                control.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                judge_program(*fds)
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)


def _fork() -> Optional[int]:
    """fork(), retried for a while when the process limit refuses it (judges of earlier programs still exiting)."""
    for _ in range(200):
        try:
            return os.fork()
        except BlockingIOError:
            time.sleep(0.01)
    return None


if __name__ == "__main__":
    serve(int(sys.argv[1]), json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
