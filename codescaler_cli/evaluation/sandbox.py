"""Run untrusted programs, each as its own process in a fresh directory, under bubblewrap when it is available.

With bubblewrap ("bwrap" isolation) a program sees a minimal view of the host (view.py): the interpreter, its
standard library and packages and the system libraries, read-only, and its own work directory; /tmp, /dev/shm and
the work directory are tmpfs mounts of a bounded size; the network, PIDs, IPC and hostname are unshared. Without it
("fallback") a program still gets its own temporary directory, a scrubbed environment and resource limits, but it
sees the host's files, can reach the network and write wherever its user may: callers must say which isolation a
run had.

Limits are per program, not per process, where the kernel's control groups can be used (resources.py): all of a
program's processes together stay within its memory budget (including what it writes to its tmpfs mounts) and its
number of processes. rlimits bound each process too: CPU seconds, address space, file size, and, without control
groups, the number of processes of its user. A wall-clock timeout kills the whole program. Over a limit, the
outcome says which: `memory`, `processes`, `disk` or `timeout`.

Run as root, a program runs under an unprivileged uid of its own (a fresh one for every run): as root it could
undo its limits, and the kernel does not enforce RLIMIT_NPROC for uid 0. Fresh, because every bwrap run leaves a
zombie of its uid for the machine's PID 1 to reap, which a container's PID 1 may do slowly.

Programs whose tests are code or function calls do not run their tests themselves: `run_judged` starts the
candidate's process with a channel to the judge (harness/judge.py), a process of its own in a sandbox of its own,
which runs the tests and reports verdicts on a channel the candidate's process never holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import itertools
import json
import marshal
import os
import re
import resource
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .harness import wire
from .resources import Cgroups, GroupUsage, ProgramGroup, open_cgroups
from .view import Interpreter, probe_interpreter, view_arguments

ISOLATIONS = ("auto", "bwrap", "fallback")

# What a finished process amounted to, before any test compares its output. The limit outcomes name the limit.
EXITED = "exited"
TIMEOUT = "timeout"
MEMORY = "memory"
PROCESSES = "processes"
DISK = "disk"
KILLED = "killed"

# Where a sandbox looks for an interpreter the unprivileged sandbox user can execute, after our own.
_SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")
# Output kept per stream: enough for any test's expected output; the rest is cut (and the file limit caps it).
_MAX_CAPTURE_BYTES = 4 * 1024 * 1024
# Seconds a process gets beyond its own timeout to start the interpreter and exit.
_STARTUP_GRACE = 2.0
# Inside the bwrap sandbox: the program's work directory, and where codescaler's harness is (read-only).
SANDBOX_WORK_DIR = "/sandbox"
SANDBOX_HARNESS_DIR = "/codescaler"
_HARNESS_FILES = ("wire.py", "candidate.py", "judge.py", "zygote.py", "comparisons.py", "stdio.py")
# The judge's own budget: it holds test data and the values candidates return, one program per job at a time.
_JUDGE_MEMORY_PER_JOB = 1024**3
_JUDGE_TMP_BYTES = 16 * 1024**2
# A zygote's own budget: a pre-imported interpreter (its programs each have a group of their own).
_ZYGOTE_MEMORY = 512 * 1024**2
# Seconds a zygote may take to start, to fork, or to clean up after a program, before its slot is replaced.
_ZYGOTE_SECONDS = 30.0
# System calls that fail with EPERM in the sandbox (a seccomp filter, under bwrap): the kernel's keyrings are per
# uid and user namespace, not per sandbox, so keys one program of a zygote's slot stores (in its user, user-session
# or persistent keyring) would be there for the next. No program, judge or zygote needs them.
_DENIED_SYSCALLS = ("add_key", "request_key", "keyctl")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one program run.

    `memory_bytes` bounds all of the program's processes together under control groups (and each process's address
    space in any case); `processes` counts its processes and threads; `disk_bytes` is the size of each of its work
    directory, /tmp and /dev/shm under bubblewrap (tmpfs, whose contents count against `memory_bytes` under control
    groups); `file_bytes` caps any one file it writes.
    """

    timeout: float = 10.0
    memory_bytes: int = 2 * 1024**3
    processes: int = 32
    file_bytes: int = 64 * 1024**2
    disk_bytes: int = 256 * 1024**2

    def with_timeout(self, seconds: float) -> Limits:
        return dataclasses.replace(self, timeout=seconds)


@dataclass(frozen=True)
class Program:
    """One program to run: its files (name → text; `main.py` is run), its stdin and its limits."""

    files: dict[str, str]
    stdin: str = ""
    limits: Limits = field(default_factory=Limits)
    entry: str = "main.py"


class Stopped(Exception):
    """The sandbox was stopped (the run is being interrupted): no program runs any more."""


@dataclass
class RunResult:
    """What one run did: `exited` (see `returncode`), `timeout`, `memory`, `processes` or `disk` (over that limit),
    or `killed` (a signal). `detail` says which limit, in words, when one stopped it."""

    outcome: str
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    isolation: str
    detail: str = ""
    peak_memory_bytes: int | None = None
    peak_processes: int | None = None

    @property
    def last_error_line(self) -> str:
        """The last line of stderr (a traceback's exception line), for messages."""
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""


@dataclass
class JudgedRun:
    """A judged run: the judge's events as they arrived (seconds since the run started, event) and what became of
    the candidate's process (`fate.outcome` is `exited` when it was still alive when the judge finished, and was
    then stopped)."""

    events: list[tuple[float, dict[str, Any]]]
    fate: RunResult
    deadline_passed: bool


@dataclass(frozen=True)
class Mechanisms:
    """Which mechanisms enforce isolation and limits in a sandbox, for `codescaler env`, reports and docs."""

    isolation: str
    view: str
    memory: str
    processes: str
    filesystem: str
    interpreter: str
    startup: str
    syscalls: str = ""
    cgroups_unavailable: str = ""

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


class Sandbox:
    """Runs programs in isolation, `jobs` at a time. Use `run_many` for parallel runs; close (or `with`) at the end.

    isolation: "bwrap" (refuse to run without it), "fallback" (never use it; testable where bwrap exists) or
    "auto" (bwrap when it works here, else the fallback). `python` is the interpreter programs run under (default:
    ours when the sandbox user can run it, else the system's python3). `preload`: modules the programs import
    (a benchmark's import header: numpy, pandas), imported once by each zygote and by the judge's server rather
    than by every program.
    """

    def __init__(self, *, isolation: str = "auto", jobs: int | None = None, python: str | None = None,
                 preload: Sequence[str] = ()) -> None:
        if isolation not in ISOLATIONS:
            raise UsageError(f"unknown isolation '{isolation}'", f"use one of: {', '.join(ISOLATIONS)}")
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        self.preload = tuple(preload)
        self._root = Path(tempfile.mkdtemp(prefix="codescaler-sandbox-"))
        # The sandbox user must reach its work directory and the harness through this one, but not list it.
        os.chmod(self._root, 0o711)
        self._harness = self._root / "harness"
        self._harness.mkdir(mode=0o755)
        os.chmod(self._harness, 0o755)
        for name in _HARNESS_FILES:
            (self._harness / name).write_bytes((files(__package__) / "harness" / name).read_bytes())
            os.chmod(self._harness / name, 0o644)
        self._as_root = os.geteuid() == 0
        # A fresh random uid range per sandbox, and a new uid from it for every run: no other process on the
        # machine shares these uids, so RLIMIT_NPROC counts only the program and killing "every process of the
        # uid" kills only its own.
        self._uids = itertools.count(1_000_000 + secrets.randbelow(1_000_000_000))
        self._uid_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.jobs)
        # Stopped (an interrupt): running programs are killed and no new one starts.
        self._stopped = threading.Event()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._running_lock = threading.Lock()
        self.reason = ""
        self._bwrap: str | None = None
        self._cgroups: Cgroups | None = None
        self.cgroups_unavailable = ""
        self._view: list[str] = []
        self._no_nested_userns: list[str] = []
        self._judge: _JudgeServer | None = None
        self._judge_lock = threading.Lock()
        # Zygotes (harness/zygote.py) ready to fork a candidate's process, and those doing so now.
        self._free_slots: list[_Slot] = []
        self._busy_slots: set[_Slot] = set()
        self._slot_lock = threading.Lock()
        self.zygote_problem = ""  # why candidate processes are started on their own, when they are
        self._syscall_filter: bytes | None = None
        self.syscall_filter_unavailable = ""  # why programs may use the kernel keyrings under bwrap, when they may
        try:
            self._cgroups, self.cgroups_unavailable = open_cgroups()
            self._syscall_filter, self.syscall_filter_unavailable = _syscall_filter()
            self.isolation, self.interpreter = self._choose(isolation, python)
            self.python = self.interpreter.executable
            self._compile_harness()
            self._judge = self._start_judge()
        except BaseException:
            self.close()
            raise

    # -- choosing how to isolate ------------------------------------------------------------------------------

    def _choose(self, requested: str, python: str | None) -> tuple[str, Interpreter]:
        probed: dict[str, Interpreter | None] = {}
        problem = "no interpreter found"

        def interpreters() -> Iterator[Interpreter]:
            """The candidate interpreters that run at all, each asked about itself once (and only when needed)."""
            nonlocal problem
            for path in [python] if python else _interpreters():
                if path not in probed:
                    try:
                        probed[path] = probe_interpreter(path)
                    except UsageError as exc:
                        if python:
                            raise
                        probed[path], problem = None, exc.message
                if probed[path] is not None:
                    yield probed[path]  # type: ignore[misc]

        if requested in ("auto", "bwrap"):
            self._bwrap = shutil.which("bwrap")
            if self._bwrap is None:
                self.reason = "bubblewrap (bwrap) is not installed"
            else:
                self._no_nested_userns = _nested_userns_option(self._bwrap)
                for interpreter in interpreters():
                    problem = self._probe("bwrap", interpreter) or ""
                    if not problem:
                        return "bwrap", interpreter
                    self.reason = problem
            if requested == "bwrap":
                raise UsageError(f"cannot isolate programs with bubblewrap: {self.reason}",
                                 "install it (apt-get install bubblewrap) or run without --require-isolation "
                                 "to use the weaker fallback")
        for interpreter in interpreters():
            problem = self._probe("fallback", interpreter) or ""
            if not problem:
                return "fallback", interpreter
        raise UsageError(f"cannot run programs: no Python interpreter works in the sandbox ({problem})",
                         "install python3 where every user may run it (e.g. /usr/bin/python3), or pass "
                         "--python / Sandbox(python=...)")

    def _probe(self, isolation: str, interpreter: Interpreter) -> str | None:
        """Run a one-line program; None when it worked, else what went wrong."""
        self.isolation, self.interpreter, self.python = isolation, interpreter, interpreter.executable
        self._view = view_arguments(interpreter, {str(self._harness): SANDBOX_HARNESS_DIR}) \
            if isolation == "bwrap" else []
        result = self.run(Program({"main.py": "print('ok')"}, limits=Limits(timeout=20.0)))
        if result.outcome == EXITED and result.returncode == 0 and result.stdout.strip() == "ok":
            return None
        detail = result.last_error_line or f"{result.outcome}, exit status {result.returncode}"
        return f"{isolation} with {interpreter.executable}: {detail}"

    def preload_settings(self) -> str:
        """What the judge's server and the zygotes import before their first program (their last argument)."""
        return json.dumps({"path": list(self.interpreter.search_path), "preload": list(self.preload)})

    def _compile_harness(self) -> None:
        """Byte-compile the harness with the sandbox's interpreter: every candidate's process loads it, and
        compiling it there each time would be a third of a small program's start-up."""
        subprocess.run([self.python, "-I", "-S", "-c", "import compileall, sys; compileall.compile_dir(sys.argv[1], "
                        "quiet=2, legacy=False)", str(self._harness)], capture_output=True, timeout=120, check=False)
        for path in self._harness.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)

    # -- running -----------------------------------------------------------------------------------------------

    def run(self, program: Program) -> RunResult:
        """Run one program (blocking); waits for a free slot when `jobs` runs are already going.

        Raises Stopped once `stop()` was called.
        """
        with self._slots:
            if self._stopped.is_set():
                raise Stopped("the sandbox was stopped")
            return self._run(program, self._next_uid())

    def run_judged(self, spec: dict[str, Any], limits: Limits, budget: float) -> JudgedRun:
        """Start the harness on a candidate's program and have the judge run `spec`'s tests against it (see
        harness/judge.py for the specification); `budget` seconds for all of it. Blocking, one slot."""
        with self._slots:
            if self._stopped.is_set():
                raise Stopped("the sandbox was stopped")
            return self._run_judged(spec, limits, budget, self._next_uid())

    def stop(self) -> None:
        """Kill the programs running now and refuse new ones (an interrupt: the run ends in seconds, not after
        every started candidate's remaining tests)."""
        self._stopped.set()
        with self._running_lock:
            running = list(self._running)
            slots = list(self._busy_slots)
        for process in running:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for slot in slots:
            slot.kill()

    def run_many(self, programs: Iterable[Program], *, done: Callable[[int, RunResult], None] | None = None
                 ) -> list[RunResult]:
        """Run programs `jobs` at a time; results in input order. `done(i, result)` is called as each finishes."""
        programs = list(programs)
        results: list[RunResult | None] = [None] * len(programs)
        lock = threading.Lock()

        def work(index: int) -> None:
            result = self.run(programs[index])
            results[index] = result
            if done is not None:
                with lock:
                    done(index, result)

        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            for future in [pool.submit(work, i) for i in range(len(programs))]:
                future.result()
        return [r for r in results if r is not None]

    def map(self, tasks: Sequence[Callable[[], object]]) -> Iterator[object]:
        """Run arbitrary callables that call `run` (e.g. one per candidate), `jobs` at a time, results in order."""
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = [pool.submit(task) for task in tasks]
            try:
                for future in futures:
                    yield future.result()
            except BaseException:
                # Interrupted (SIGINT, SIGTERM), or abandoned with tasks left (the consumer's loop was interrupted):
                # tasks not started yet never start, and the running ones end at once (their programs killed, their
                # next program refused). A consumer that merely stops reading after the last result stops nothing.
                if not all(future.done() for future in futures):
                    for future in futures:
                        future.cancel()
                    self.stop()
                raise

    def _next_uid(self) -> int:
        with self._uid_lock:
            return next(self._uids)

    def _run(self, program: Program, uid: int) -> RunResult:
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self._root))
        os.chmod(run_dir, 0o711)
        work = run_dir / "work"
        bwrap = self.isolation == "bwrap"
        file_fds: dict[str, int] = {}
        try:
            if bwrap:
                # The files go into the program's own tmpfs work directory, through memory files bwrap copies.
                for name, text in program.files.items():
                    file_fds[name] = _memory_file(name, text.encode("utf-8"))
            else:
                work.mkdir()
                for name, text in program.files.items():
                    (work / name).write_text(text, encoding="utf-8")
                if self._as_root:
                    for path in (work, *work.iterdir()):
                        os.chown(path, uid, uid)
            (run_dir / "stdin").write_text(program.stdin, encoding="utf-8")
            python = [self.python, "-I", "-B", program.entry]
            with open(run_dir / "stdin", "rb") as stdin, open(run_dir / "stdout", "wb") as stdout, \
                    open(run_dir / "stderr", "wb") as stderr:
                started = time.perf_counter()
                try:
                    process, group = self._start(python, uid, program.limits, work, stdin=stdin, stdout=stdout,
                                                 stderr=stderr, files=file_fds)
                except OSError as exc:
                    # The interpreter could not even start (e.g. it is unreadable for the sandbox user).
                    return RunResult(EXITED, 127, "", f"cannot start {self.python}: {exc.strerror or exc}\n",
                                     time.perf_counter() - started, self.isolation)
                timed_out, usage = self._finish(process, group, uid, program.limits.timeout + _STARTUP_GRACE)
                seconds = time.perf_counter() - started
            return self._result(process.returncode, timed_out, usage, program.limits, seconds,
                                _read_capped(run_dir / "stdout"), _read_capped(run_dir / "stderr"))
        finally:
            for fd in file_fds.values():
                os.close(fd)
            shutil.rmtree(run_dir, ignore_errors=True)

    def _run_judged(self, spec: dict[str, Any], limits: Limits, budget: float, uid: int) -> JudgedRun:
        if self.isolation == "bwrap" and not self.zygote_problem:
            problem = ""
            for _ in range(2):  # a zygote that failed is replaced once; twice in a row, zygotes are given up
                try:
                    return self._run_judged_in_slot(spec, limits, budget)
                except _SlotUnavailable as exc:  # no candidate process was started
                    problem = str(exc)
            self.zygote_problem = problem
        return self._run_judged_in_process(spec, limits, budget, uid)

    def _run_judged_in_slot(self, spec: dict[str, Any], limits: Limits, budget: float) -> JudgedRun:
        """The candidate's process forked by a zygote (harness/zygote.py) into a control group of its own."""
        slot = self._take_slot(limits)
        group = self._cgroups.new_group(limits.memory_bytes, limits.processes) if self._cgroups else None
        program_side, judge_program_side = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        reusable = False
        started = time.perf_counter()
        try:
            with tempfile.TemporaryFile(dir=self._root) as stderr:
                try:
                    slot.fork(group, {"cpu_seconds": int(budget) + 1, "memory_bytes": limits.memory_bytes,
                                      "file_bytes": limits.file_bytes,
                                      "processes": self._process_rlimit(limits, group)},
                              program_side, stderr)
                finally:
                    program_side.close()
                with self._running_lock:
                    self._busy_slots.add(slot)
                if self._stopped.is_set():  # stopped while it started: stop() may not have seen it
                    slot.kill()
                events, deadline_passed = self._converse(spec, budget, started, judge_program_side)
                gone = any(event.get("status") == "gone" for _, event in events)
                try:
                    status = slot.finish(2.0 if gone else 0.0)
                    reusable = True
                except _SlotUnavailable:
                    status = None  # the zygote was stopped: its candidate process with it
                usage = group.usage() if group is not None else None
                seconds = time.perf_counter() - started
                if status is None:  # alive when the judge finished, and stopped then: not the program's doing
                    fate = RunResult(EXITED, None, "", "", seconds, self.isolation)
                else:
                    stderr.seek(0)
                    fate = self._result(os.waitstatus_to_exitcode(status), False, usage, limits, seconds, "",
                                        stderr.read(_MAX_CAPTURE_BYTES).decode("utf-8", errors="replace"),
                                        exit_code_is_bwraps=False)
            return JudgedRun(events, fate, deadline_passed)
        finally:
            with self._running_lock:
                self._busy_slots.discard(slot)
            program_side.close()
            judge_program_side.close()
            if group is not None:
                group.kill()
                group.remove()
            self._give_back(slot, reusable)

    def _run_judged_in_process(self, spec: dict[str, Any], limits: Limits, budget: float, uid: int) -> JudgedRun:
        """The candidate's process started on its own (the fallback, or where zygotes cannot run)."""
        bwrap = self.isolation == "bwrap"
        work = Path(tempfile.mkdtemp(prefix="run-", dir=self._root)) if not bwrap else self._root
        if not bwrap:
            os.chmod(work, 0o700)
            if self._as_root:
                os.chown(work, uid, uid)
        program_side, judge_program_side = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        harness = SANDBOX_HARNESS_DIR if bwrap else str(self._harness)
        command = [self.python, "-I", "-S", "-B", f"{harness}/candidate.py", str(program_side.fileno())]
        started = time.perf_counter()
        try:
            with tempfile.TemporaryFile(dir=self._root) as stderr:
                process, group = self._start(command, uid, limits.with_timeout(budget), work,
                                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                             keep=[program_side.fileno()])
                program_side.close()
                events, deadline_passed = self._converse(spec, budget, started, judge_program_side)
                # Ended by itself (the judge saw it go), or still serving: it gets a moment to finish exiting.
                gone = any(event.get("status") == "gone" for _, event in events)
                timed_out, usage = self._finish(process, group, uid, 2.0 if gone else 0.0)
                seconds = time.perf_counter() - started
                if timed_out:  # alive when the judge finished, and stopped by us: not the program's doing
                    fate = RunResult(EXITED, None, "", "", seconds, self.isolation)
                else:
                    stderr.seek(0)
                    fate = self._result(process.returncode, False, usage, limits, seconds, "",
                                        stderr.read(_MAX_CAPTURE_BYTES).decode("utf-8", errors="replace"))
            return JudgedRun(events, fate, deadline_passed)
        finally:
            program_side.close()
            judge_program_side.close()
            if not bwrap:
                shutil.rmtree(work, ignore_errors=True)

    def _converse(self, spec: dict[str, Any], budget: float, started: float, judge_program_side: socket.socket
               ) -> tuple[list[tuple[float, dict[str, Any]]], bool]:
        """Hand the program's channel to the judge, send it the tests and collect its events until it is done,
        stops, or `budget` seconds pass. Returns (events with their arrival times, whether the deadline passed)."""
        host_side, judge_host_side = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        events: list[tuple[float, dict[str, Any]]] = []
        try:
            try:
                self._dispatch(judge_host_side, judge_program_side)
            finally:
                judge_host_side.close()
                judge_program_side.close()
            host = wire.Channel(host_side.fileno(), deadline=time.monotonic() + budget)
            # The judge takes at most the CPU seconds we wait for it (RLIMIT_CPU): none outlives its verdict.
            host.send({**spec, "cpu_seconds": int(budget) + 2})
            while True:
                event = host.receive()
                events.append((time.perf_counter() - started, event))
                if event.get("event") in ("done", "load_failed") or event.get("status") in ("timeout", "gone"):
                    return events, False
        except TimeoutError:
            return events, True
        except (wire.ChannelClosed, wire.ProtocolError, OSError):
            return events, False  # the judge ended early: the events say how far it got
        finally:
            host_side.close()

    def _start(self, command: list[str], uid: int, limits: Limits, work: Path, *, stdin: Any, stdout: Any,
               stderr: Any, files: dict[str, int] | None = None, keep: Sequence[int] = (),
               die_with_parent: bool = True, bwrap_options: Sequence[str] = (), rlimits: bool = True
               ) -> tuple[subprocess.Popen[bytes], ProgramGroup | None]:
        """Start one program: its control group, its uid, its rlimits, and under bwrap its view of the host.

        `die_with_parent`: bwrap kills the program when the thread that started it ends (PR_SET_PDEATHSIG).
        """
        bwrap = self.isolation == "bwrap"
        group = self._cgroups.new_group(limits.memory_bytes, limits.processes) if self._cgroups else None
        processes = self._process_rlimit(limits, group)
        # As root, the child drops to the run's own uid before exec (under bwrap: before exec'ing bwrap).
        drop_privileges = self._as_root
        workdir = SANDBOX_WORK_DIR if bwrap else str(work)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": "/tmp" if bwrap else workdir,
               "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8", "PYTHONHASHSEED": "0",
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        # bwrap reads the filter from a descriptor of its own (it reads it to the end).
        seccomp = [_memory_file("seccomp", self._syscall_filter)] if bwrap and self._syscall_filter else []
        if bwrap:
            command = self._bwrap_command(command, limits, files or {}, die_with_parent=die_with_parent,
                                          extra=[*bwrap_options, *(["--seccomp", str(seccomp[0])] if seccomp else [])])
        try:
            process = subprocess.Popen(
                command, cwd=self._root if bwrap else work, env=env, stdin=stdin, stdout=stdout, stderr=stderr,
                start_new_session=True, close_fds=True, pass_fds=[*keep, *(files or {}).values(), *seccomp],
                # Runs in the child after fork and before exec: nothing but syscalls.
                preexec_fn=_child_setup(limits if rlimits else None, processes, group,
                                        uid if drop_privileges else None))
        except BaseException:
            if group is not None:
                group.remove()
            raise
        finally:
            for fd in seccomp:
                os.close(fd)
        if group is not None:
            group.close_join()
        with self._running_lock:
            self._running.add(process)
        if self._stopped.is_set():  # stopped while it started: stop() may not have seen it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        return process, group

    def _process_rlimit(self, limits: Limits, group: ProgramGroup | None) -> int | None:
        """RLIMIT_NPROC for a program, None when its control group counts its processes. Not root, the program
        shares our uid: the limit starts above what that uid runs now (zombies of earlier runs included) plus
        the other parallel programs."""
        if group is not None:
            return None
        if self._as_root:
            return limits.processes
        return limits.processes + _processes_of_user(os.getuid()) + self.jobs * limits.processes

    def _finish(self, process: subprocess.Popen[bytes], group: ProgramGroup | None, uid: int, wait: float
                ) -> tuple[bool, GroupUsage | None]:
        """Wait up to `wait` seconds, then kill what is left; (whether it was still running, its group's usage)."""
        try:
            timed_out = not _wait(process, wait)
        finally:
            self._kill_tree(process, group, uid)
            with self._running_lock:
                self._running.discard(process)
        usage = None
        if group is not None:
            usage = group.usage()
            group.remove()
        return timed_out, usage

    def _bwrap_command(self, command: list[str], limits: Limits, file_fds: dict[str, int], *,
                       die_with_parent: bool, extra: Sequence[str] = ()) -> list[str]:
        size = str(limits.disk_bytes)
        bwrap = [self._bwrap or "bwrap", "--unshare-all", "--unshare-user", *self._no_nested_userns,
                 *(["--die-with-parent"] if die_with_parent else []), "--new-session", "--cap-drop", "ALL", *extra,
                 *self._view, "--dev", "/dev", "--mqueue", "/dev/mqueue", "--proc", "/proc",
                 "--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/dev/shm",
                 "--size", size, "--tmpfs", SANDBOX_WORK_DIR]
        for name, fd in file_fds.items():
            bwrap.extend(["--file", str(fd), f"{SANDBOX_WORK_DIR}/{name}"])
        bwrap.extend(["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", SANDBOX_WORK_DIR, *command])
        return bwrap

    def _result(self, returncode: int | None, timed_out: bool, usage: GroupUsage | None, limits: Limits,
                seconds: float, stdout: str, stderr: str, *, exit_code_is_bwraps: bool = True) -> RunResult:
        """What a finished run amounted to; a limit the kernel saw it reach explains a run that did not succeed.

        `exit_code_is_bwraps`: the code is bwrap's, which reports its child killed by a signal as 128 + signal.
        """
        outcome = TIMEOUT if timed_out else EXITED
        detail = f"no result after {seconds:.1f}s" if timed_out else ""
        if not timed_out and returncode is not None and returncode < 0:
            outcome = _signal_outcome(-returncode)
        elif not timed_out and exit_code_is_bwraps and self.isolation == "bwrap" and returncode is not None \
                and returncode > 128:
            # bwrap reports a child killed by a signal as 128 + the signal number.
            outcome = _signal_outcome(returncode - 128)
        succeeded = outcome == EXITED and returncode == 0
        if not succeeded and usage is not None and usage.out_of_memory:
            outcome, detail = MEMORY, f"its processes together reached the memory limit " \
                                      f"({limits.memory_bytes // 1024**2} MiB)"
        elif not succeeded and usage is not None and usage.process_limit_hit:
            outcome, detail = PROCESSES, f"it reached the limit of {limits.processes} processes"
        elif outcome == EXITED and returncode != 0:
            outcome = classify_error(_last_line(stderr)) or EXITED
        if outcome == TIMEOUT and not detail:
            detail = "out of CPU time"
        elif outcome in (MEMORY, PROCESSES, DISK, KILLED) and not detail:
            detail = _last_line(stderr) or f"killed (exit status {returncode})"
        return RunResult(outcome, returncode, stdout, stderr, seconds, self.isolation, detail,
                         usage.peak_memory_bytes if usage else None, usage.peak_processes if usage else None)

    def _kill_tree(self, process: subprocess.Popen[bytes], group: ProgramGroup | None, uid: int) -> None:
        """Kill the program and everything it started, even processes that left its session."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if group is not None:
            group.kill()  # everything in its control group, whichever session or namespace
        elif self._as_root and self.isolation != "bwrap":
            # Every process of the run's uid is ours (the uid is fresh): sweep them all. Under bwrap the PID
            # namespace dies with its first process instead.
            _kill_every_process_of(uid)
        process.wait()

    # -- zygotes -----------------------------------------------------------------------------------------------

    def _take_slot(self, limits: Limits) -> _Slot:
        """A zygote ready to fork, with tmpfs mounts of the size `limits` asks for: a free one, or a new one (at
        most `jobs` exist: each run holds one, and at most `jobs` runs go at once)."""
        with self._slot_lock:
            while self._free_slots:
                slot = self._free_slots.pop()
                if slot.alive() and slot.disk_bytes == limits.disk_bytes:
                    return slot
                slot.close()
        return _Slot(self, self._next_uid(), limits.disk_bytes)

    def _give_back(self, slot: _Slot, reusable: bool) -> None:
        if reusable and slot.alive() and not self._stopped.is_set():
            with self._slot_lock:
                self._free_slots.append(slot)
        else:
            slot.close()

    # -- the judge ---------------------------------------------------------------------------------------------

    def _start_judge(self) -> _JudgeServer:
        uid = self._next_uid()
        if self.isolation != "bwrap":
            work = self._root / "judge"
            work.mkdir(mode=0o700)
            if self._as_root:
                os.chown(work, uid, uid)
        return _JudgeServer(self, uid)

    def _dispatch(self, host_end: socket.socket, program_end: socket.socket) -> None:
        """Hand a program to the judge server, starting a new one if it has ended (it never should)."""
        with self._judge_lock:
            for attempt in range(2):
                if self._judge is None or not self._judge.alive():
                    if self._judge is not None:
                        self._judge.close()
                    self._judge = self._start_judge()
                try:
                    self._judge.judge(host_end, program_end)
                    return
                except OSError:
                    if attempt == 1:
                        raise
                    self._judge.close()
                    self._judge = None

    def close(self) -> None:
        with self._slot_lock:
            slots, self._free_slots = self._free_slots, []
        for slot in slots:
            slot.close()
        if self._judge is not None:
            self._judge.close()
            self._judge = None
        if self._cgroups is not None:
            self._cgroups.close()
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what is in force --------------------------------------------------------------------------------------

    def mechanisms(self) -> Mechanisms:
        """Which kernel mechanisms enforce this sandbox's isolation and limits."""
        bwrap = self.isolation == "bwrap"
        if self._cgroups is not None:
            memory = f"{self._cgroups.describe()}: all of a program's processes together (and what it writes " \
                     "to its tmpfs mounts); RLIMIT_AS per process as well"
            processes = "cgroup pids controller: all of a program's processes and threads together"
        else:
            memory = "RLIMIT_AS per process only: forked children each get the limit again"
            processes = "RLIMIT_NPROC per uid" + ("" if self._as_root else " (shared with our own processes)")
        filesystem = ("sized tmpfs for the work directory, /tmp and /dev/shm; RLIMIT_FSIZE per file" if bwrap else
                      "a host temporary directory, bounded only per file (RLIMIT_FSIZE)")
        view = ("minimal: the interpreter, its standard library and packages, the system libraries (read-only) "
                "and the program's own directory; no network" if bwrap else
                "the whole host, with our user's permissions (or an unprivileged uid as root); network reachable")
        if bwrap and not self.zygote_problem:
            startup = ("a zygote per parallel slot (a pre-started interpreter, PID 1 of its own sandbox) forks each "
                       "candidate's process")
        else:
            startup = "every program starts its own interpreter" + \
                (f" ({self.zygote_problem})" if self.zygote_problem else "")
        return Mechanisms(isolation=self.isolation, view=view, memory=memory, processes=processes,
                          filesystem=filesystem, interpreter=self.interpreter.describe(), startup=startup,
                          syscalls=self._describe_syscalls(),
                          cgroups_unavailable=self.cgroups_unavailable if self._cgroups is None else "")

    def _describe_syscalls(self) -> str:
        if self.isolation != "bwrap":
            return "all (no seccomp filter without bwrap)"
        if self._syscall_filter is None:
            return f"all: the kernel keyrings are NOT blocked ({self.syscall_filter_unavailable})"
        return f"a seccomp filter makes {', '.join(_DENIED_SYSCALLS)} fail (EPERM): no shared kernel keyrings"

    def describe(self) -> str:
        """One line saying which isolation and limits programs get, and under which interpreter."""
        per_program = "per program (cgroups)" if self._cgroups is not None else "per process (rlimits)"
        if self.isolation == "bwrap":
            keyrings = "no kernel keyrings (seccomp)" if self._syscall_filter is not None else \
                f"kernel keyrings NOT blocked ({self.syscall_filter_unavailable})"
            return (f"bwrap: minimal read-only view of the host, own sized tmpfs directories, no network, own PIDs, "
                    f"{keyrings}; memory and process limits {per_program}; python {self.interpreter.describe()}; "
                    f"{self.jobs} parallel")
        why = f" ({self.reason})" if self.reason else ""
        return (f"fallback{why}: own temporary directory, scrubbed environment and resource limits only; "
                f"programs CAN use the network and read and write outside their directory; memory and process "
                f"limits {per_program}; python {self.interpreter.describe()}; {self.jobs} parallel")


class _SlotUnavailable(Exception):
    """A zygote could not start, fork or clean up (it was stopped, or its sandbox failed)."""


class _Slot:
    """A zygote (harness/zygote.py): a pre-started interpreter, PID 1 of a bwrap sandbox of its own (the minimal
    view, tmpfs mounts of one size), under a uid and control group of its own, forking a candidate process per
    program into that program's control group."""

    def __init__(self, sandbox: Sandbox, uid: int, disk_bytes: int) -> None:
        self.disk_bytes = disk_bytes
        self._sandbox = sandbox
        self._uid = uid
        self._control, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control.settimeout(_ZYGOTE_SECONDS)
        self._log = tempfile.TemporaryFile(dir=sandbox._root)  # the zygote's stderr: why it ended, if it does
        info_read, info_write = os.pipe()
        # No rlimits for the zygote itself (its children take their own), no --die-with-parent (it would die with
        # the thread that started it): it ends when this process closes the control socket, or exits.
        limits = Limits(timeout=10**7, memory_bytes=_ZYGOTE_MEMORY, processes=8, disk_bytes=disk_bytes)
        command = [sandbox.python, "-I", "-S", "-B", f"{SANDBOX_HARNESS_DIR}/zygote.py", str(zygote_end.fileno()),
                   SANDBOX_WORK_DIR, sandbox.preload_settings()]
        try:
            self.process, self.group = sandbox._start(
                command, uid, limits, sandbox._root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self._log, keep=[zygote_end.fileno(), info_write], die_with_parent=False,
                bwrap_options=["--as-pid-1", "--info-fd", str(info_write)], rlimits=False)
        except BaseException as exc:
            self._control.close()
            self._log.close()
            raise _SlotUnavailable(f"cannot start a zygote: {exc}") from None
        finally:
            zygote_end.close()
            os.close(info_write)
        with sandbox._running_lock:
            sandbox._running.discard(self.process)  # an interrupt stops programs, through their slots
        try:
            self.zygote_pid = _read_child_pid(info_read, time.monotonic() + _ZYGOTE_SECONDS)
            if self._request(None) != {"ready": True}:
                raise _SlotUnavailable("the zygote did not start")
        except BaseException:
            self.close()
            raise
        finally:
            os.close(info_read)

    def _request(self, message: dict[str, Any] | None, fds: Sequence[int] = ()) -> Any:
        """Send a request (None: only read) and read the zygote's reply."""
        try:
            if message is not None:
                socket.send_fds(self._control, [marshal.dumps(message)], list(fds))
            reply = self._control.recv(1 << 16)
        except OSError as exc:  # including a timeout
            raise _SlotUnavailable(f"the zygote did not answer ({exc})") from None
        if not reply:
            self._log.seek(0)
            last = _last_line(self._log.read(_MAX_CAPTURE_BYTES).decode("utf-8", "replace"))
            raise _SlotUnavailable(f"the zygote ended{': ' + last if last else ''}")
        return marshal.loads(reply)

    def fork(self, group: ProgramGroup | None, request: dict[str, Any], program_end: socket.socket,
             stderr: Any) -> None:
        """Fork the candidate's process, inside `group`: the zygote moves into it for the fork, then back."""
        try:
            if group is not None:
                group.enter(self.zygote_pid)
            reply = self._request({"op": "run", **request}, [program_end.fileno(), stderr.fileno()])
        except OSError as exc:  # the zygote is gone (no such process to move)
            raise _SlotUnavailable(f"the zygote is gone ({exc.strerror or exc})") from None
        finally:
            if group is not None and self.group is not None:
                with contextlib.suppress(OSError):  # gone: nothing to move back
                    self.group.enter(self.zygote_pid)
        if "forked" not in reply:
            raise _SlotUnavailable(f"the zygote did not fork: {reply}")

    def finish(self, wait: float) -> int | None:
        """Let the candidate's process end by itself for up to `wait` seconds, then have the zygote kill what is
        left of the program and empty its directories. Its wait status, or None if it was still running."""
        reply = self._request({"op": "finish", "wait": wait})
        if not reply.get("finished"):
            raise _SlotUnavailable(f"the zygote did not clean up: {reply}")
        return reply["status"]

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """Stop the zygote, and with it (PID 1 of their namespace) every process of its current program."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.zygote_pid, signal.SIGKILL)

    def close(self) -> None:
        self._control.close()  # the zygote ends, and its namespace with it
        if not _wait(self.process, 2.0):
            self.kill()
        self._sandbox._kill_tree(self.process, self.group, self._uid)
        if self.group is not None:
            self.group.remove()
        self._log.close()


def _read_child_pid(fd: int, deadline: float) -> int:
    """The host PID of bwrap's sandboxed process, from what bwrap writes to its --info-fd."""
    text = b""
    while b"child-pid" not in text or not re.search(rb'"child-pid":\s*\d+\D', text):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise _SlotUnavailable("bwrap did not say which process is the zygote")
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        text += chunk
    found = re.search(rb'"child-pid":\s*(\d+)', text)
    if found is None:
        raise _SlotUnavailable("bwrap did not say which process is the zygote")
    return int(found.group(1))


def _nested_userns_option(bwrap: str) -> list[str]:
    """`--disable-userns` (bubblewrap 0.8 and later): no namespaces of its own for a program inside the sandbox."""
    try:
        done = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return ["--disable-userns"] if "--disable-userns" in done.stdout + done.stderr else []


class _JudgeServer:
    """The judge (harness/judge.py) of one sandbox: a process in a sandbox of its own, with its own uid and
    control group, that forks a judge for each program it is handed."""

    def __init__(self, sandbox: Sandbox, uid: int) -> None:
        self._sandbox = sandbox
        self._control, judge_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        limits = Limits(timeout=10**7, memory_bytes=_JUDGE_MEMORY_PER_JOB * sandbox.jobs,
                        processes=4 * sandbox.jobs + 16, disk_bytes=_JUDGE_TMP_BYTES)
        bwrap = sandbox.isolation == "bwrap"
        harness = SANDBOX_HARNESS_DIR if bwrap else str(sandbox._harness)
        command = [sandbox.python, "-I", "-S", "-B", f"{harness}/judge.py", str(judge_end.fileno()),
                   sandbox.preload_settings()]
        self._stderr = open(sandbox._root / "judge-stderr", "wb")
        try:
            # No --die-with-parent for the judge (it would die with the thread that started it, not with us):
            # it ends when this process closes the control socket, or exits.
            self.process, self.group = sandbox._start(
                command, uid, limits, sandbox._root / "judge", stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=self._stderr, keep=[judge_end.fileno()], die_with_parent=False)
        except BaseException:
            self._stderr.close()
            self._control.close()
            raise
        finally:
            judge_end.close()
        with sandbox._running_lock:
            sandbox._running.discard(self.process)  # an interrupt stops programs, not the judge
        self._uid = uid

    def alive(self) -> bool:
        return self.process.poll() is None

    def judge(self, host_end: socket.socket, program_end: socket.socket) -> None:
        """Hand the judge one program: the channel to us and the channel to the candidate's process."""
        socket.send_fds(self._control, [b"judge"], [host_end.fileno(), program_end.fileno()])

    def close(self) -> None:
        self._control.close()  # the server ends; judges still running finish their program
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._sandbox._kill_tree(self.process, self.group, self._uid)
        if self.group is not None:
            self.group.remove()
        self._stderr.close()


def _wait(process: subprocess.Popen[bytes], seconds: float) -> bool:
    """Wait up to `seconds` for the process to exit; whether it did. Woken by the exit itself (a pidfd), where
    Popen.wait(timeout) would poll in growing sleeps."""
    if seconds > 0 and process.poll() is None:
        try:
            fd = os.pidfd_open(process.pid)
        except (AttributeError, OSError):  # before Linux 5.3
            try:
                process.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                pass
        else:
            try:
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                poller.poll(seconds * 1000)
            finally:
                os.close(fd)
    return process.poll() is not None


def sandbox_mechanisms(python: str | None = None) -> dict[str, Any]:
    """What `codescaler env` says about the sandbox: whether bubblewrap works here, and the isolation, interpreter
    and limit mechanisms `eval` gets, found by starting a sandbox (and a one-line program in it)."""
    info: dict[str, Any] = {"bwrap": shutil.which("bwrap")}
    try:
        with Sandbox(isolation="auto", jobs=1, python=python) as box:
            info.update(box.mechanisms().as_dict())
            info["works"] = box.isolation == "bwrap"
            info["detail"] = "programs run under bubblewrap" if info["works"] else box.reason
    except UsageError as exc:
        info.update(works=False, isolation=None, detail=exc.message)
    return info


def _syscall_filter() -> tuple[bytes | None, str]:
    """The seccomp filter (BPF, for this machine's architecture) that makes `_DENIED_SYSCALLS` fail with EPERM and
    allows everything else, built by libseccomp; (None, why) where libseccomp cannot be loaded."""
    try:
        import pyseccomp

        syscall_filter = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
        for name in _DENIED_SYSCALLS:
            syscall_filter.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
        with tempfile.TemporaryFile() as handle:
            syscall_filter.export_bpf(handle)
            handle.seek(0)
            return handle.read(), ""
    except Exception as exc:  # no pyseccomp, no libseccomp.so.2, or a libseccomp that refuses: run without it
        return None, f"libseccomp cannot be used: {type(exc).__name__}: {exc}"


def _memory_file(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)  # not close-on-exec: bwrap reads it
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _kill_every_process_of(uid: int) -> None:
    """kill(-1) as `uid`: signals every process of that uid except the caller. The child only makes syscalls."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _child_setup(limits: Limits | None, processes: int | None, group: ProgramGroup | None, uid: int | None
                 ) -> Callable[[], None]:
    """What the child does between fork and exec: join its group, take its limits (none for a zygote, whose
    children take their own: a limit once lowered cannot be raised), drop to its uid."""
    cpu = int(limits.timeout) + 1 if limits is not None else 0

    def apply() -> None:
        if group is not None:
            group.join()
        if limits is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
            if processes is not None:
                resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if uid is not None:  # as root: drop to the run's own uid, so that nothing in the sandbox is root
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return apply


def classify_error(error_line: str) -> str | None:
    """A resource limit seen as an exception on a program's last stderr line: the outcome naming the limit."""
    if error_line.startswith("MemoryError"):
        return MEMORY
    if error_line.startswith("BlockingIOError") and "[Errno 11]" in error_line:
        return PROCESSES  # fork refused: the process limit
    if "[Errno 27]" in error_line or "[Errno 28]" in error_line:
        return DISK  # the file-size limit, or a full tmpfs
    return None


def _signal_outcome(number: int) -> str:
    # Out of CPU seconds is a timeout, over the file-size limit a disk outcome; anything else (SIGSEGV from a
    # failed allocation in C, an external SIGKILL) is "killed".
    if number == signal.SIGXCPU:
        return TIMEOUT
    if number == signal.SIGXFSZ:
        return DISK
    return KILLED


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _read_capped(path: Path) -> str:
    with open(path, "rb") as handle:
        data = handle.read(_MAX_CAPTURE_BYTES)
    return data.decode("utf-8", errors="replace")


def _interpreters() -> list[str]:
    """Our own interpreter first, then the system's (ours may sit where the sandbox user cannot read)."""
    found = [os.path.realpath(sys.executable)]
    for path in _SYSTEM_PYTHONS:
        if os.path.exists(path) and os.path.realpath(path) not in map(os.path.realpath, found):
            found.append(path)
    return found


def _processes_of_user(uid: int) -> int:
    """Threads of every process of `uid` now: RLIMIT_NPROC counts them all, so a limit must start above them."""
    count = 0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            count += len(os.listdir(f"/proc/{entry}/task"))
        except OSError:
            continue
    return count
