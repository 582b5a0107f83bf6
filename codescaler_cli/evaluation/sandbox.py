"""Run untrusted programs, each as its own process in a fresh directory, under bubblewrap when it is available.

With bubblewrap ("bwrap" isolation) the filesystem is read-only except the work directory and a private /tmp,
and the network, PIDs and IPC are unshared. Without it ("fallback") a program still gets its own temporary
directory, a scrubbed environment and resource limits, but it can reach the network and write wherever its
user may: callers must say which isolation a run had. In both, the limits are: CPU seconds, address space,
processes, file size, and a wall-clock timeout after which the whole process tree is killed.

Run as root, a program runs under an unprivileged uid of its own (a fresh one for every run), because the kernel
does not enforce RLIMIT_NPROC for uid 0: without the switch a fork bomb would not be capped. Fresh, because every
bwrap run leaves a zombie of its uid for the machine's PID 1 to reap, and a container's PID 1 may reap slowly:
zombies count against RLIMIT_NPROC, so a reused uid would soon fail its programs' first fork.
"""

from __future__ import annotations

import itertools
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

ISOLATIONS = ("auto", "bwrap", "fallback")

# What a finished process amounted to, before any test compares its output.
EXITED = "exited"
TIMEOUT = "timeout"
MEMORY = "memory"
KILLED = "killed"

# Where a sandbox looks for an interpreter the unprivileged sandbox user can execute, after our own.
_SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")
_SYSTEM_BIN = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")
# Output kept per stream: enough for any test's expected output; the rest is cut (and the file limit caps it).
_MAX_CAPTURE_BYTES = 4 * 1024 * 1024
# Seconds a process gets beyond its own timeout to start the interpreter and exit.
_STARTUP_GRACE = 2.0


@dataclass(frozen=True)
class Limits:
    """Resource limits of one program run. `processes` is per program (its uid, as root), threads included."""

    timeout: float = 10.0
    memory_bytes: int = 2 * 1024**3
    processes: int = 32
    file_bytes: int = 64 * 1024**2

    def with_timeout(self, seconds: float) -> Limits:
        return Limits(timeout=seconds, memory_bytes=self.memory_bytes, processes=self.processes,
                      file_bytes=self.file_bytes)


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
    """What one run did: `exited` (see `returncode`), `timeout`, `memory` or `killed` (a signal or a limit)."""

    outcome: str
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    isolation: str

    @property
    def last_error_line(self) -> str:
        """The last line of stderr (a traceback's exception line), for messages."""
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""


class Sandbox:
    """Runs programs in isolation, `jobs` at a time. Use `run_many` for parallel runs; close (or `with`) at the end.

    isolation: "bwrap" (refuse to run without it), "fallback" (never use it; testable where bwrap exists) or
    "auto" (bwrap when it works here, else the fallback). `python` overrides the interpreter.
    """

    def __init__(self, *, isolation: str = "auto", jobs: int | None = None, python: str | None = None) -> None:
        if isolation not in ISOLATIONS:
            raise UsageError(f"unknown isolation '{isolation}'", f"use one of: {', '.join(ISOLATIONS)}")
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        self._root = Path(tempfile.mkdtemp(prefix="codescaler-sandbox-"))
        # The sandbox user must reach its work directory through this one, but not list it.
        os.chmod(self._root, 0o711)
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
        self._setpriv = shutil.which("setpriv", path=os.pathsep.join([os.environ.get("PATH", ""), *_SYSTEM_BIN]))
        try:
            self.isolation, self.python = self._choose(isolation, python)
        except BaseException:
            self.close()
            raise

    # -- choosing how to isolate ------------------------------------------------------------------------------

    def _choose(self, requested: str, python: str | None) -> tuple[str, str]:
        candidates = [python] if python else _interpreters()
        if requested in ("auto", "bwrap"):
            self._bwrap = shutil.which("bwrap")
            if self._bwrap is None:
                self.reason = "bubblewrap (bwrap) is not installed"
            elif self._as_root and self._setpriv is None:
                self.reason = "setpriv (util-linux) is needed to run bwrap as an unprivileged user"
            else:
                for interpreter in candidates:
                    problem = self._probe("bwrap", interpreter)
                    if problem is None:
                        return "bwrap", interpreter
                    self.reason = problem
            if requested == "bwrap":
                raise UsageError(f"cannot isolate programs with bubblewrap: {self.reason}",
                                 "install it (apt-get install bubblewrap) or run without --require-isolation "
                                 "to use the weaker fallback")
        for interpreter in candidates:
            problem = self._probe("fallback", interpreter)
            if problem is None:
                return "fallback", interpreter
        raise UsageError(f"cannot run programs: no Python interpreter works in the sandbox ({problem})",
                         "install python3 where every user may run it (e.g. /usr/bin/python3), or pass "
                         "Sandbox(python=...)")

    def _probe(self, isolation: str, interpreter: str) -> str | None:
        """Run a one-line program; None when it worked, else what went wrong."""
        self.isolation, self.python = isolation, interpreter
        result = self.run(Program({"main.py": "print('ok')"}, limits=Limits(timeout=20.0)))
        if result.outcome == EXITED and result.returncode == 0 and result.stdout.strip() == "ok":
            return None
        detail = result.last_error_line or f"{result.outcome}, exit status {result.returncode}"
        return f"{isolation} with {interpreter}: {detail}"

    # -- running -----------------------------------------------------------------------------------------------

    def run(self, program: Program) -> RunResult:
        """Run one program (blocking); waits for a free slot when `jobs` runs are already going.

        Raises Stopped once `stop()` was called.
        """
        with self._slots:
            if self._stopped.is_set():
                raise Stopped("the sandbox was stopped")
            with self._uid_lock:
                uid = next(self._uids)
            return self._run_as(program, uid)

    def stop(self) -> None:
        """Kill the programs running now and refuse new ones (an interrupt: the run ends in seconds, not after
        every started candidate's remaining tests)."""
        self._stopped.set()
        with self._running_lock:
            running = list(self._running)
        for process in running:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

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

    def _run_as(self, program: Program, uid: int) -> RunResult:
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self._root))
        os.chmod(run_dir, 0o711)
        work = run_dir / "work"
        work.mkdir()
        try:
            for name, text in program.files.items():
                (work / name).write_text(text, encoding="utf-8")
            (run_dir / "stdin").write_text(program.stdin, encoding="utf-8")
            if self._as_root:
                for path in (work, *work.iterdir()):
                    os.chown(path, uid, uid)
            with open(run_dir / "stdin", "rb") as stdin, open(run_dir / "stdout", "wb") as stdout, \
                    open(run_dir / "stderr", "wb") as stderr:
                outcome, returncode, seconds = self._execute(program, work, uid, stdin, stdout, stderr)
            out = _read_capped(run_dir / "stdout")
            err = _read_capped(run_dir / "stderr")
            if outcome == EXITED and returncode is not None and returncode < 0:
                outcome = _signal_outcome(-returncode, program.limits)
            elif outcome == EXITED and self.isolation == "bwrap" and returncode is not None and returncode > 128:
                # bwrap reports a child killed by a signal as 128 + the signal number.
                outcome = _signal_outcome(returncode - 128, program.limits)
            if outcome == EXITED and returncode != 0 and "MemoryError" in err[-2000:]:
                outcome = MEMORY
            return RunResult(outcome, returncode, out, err, seconds, self.isolation)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    def _command(self, program: Program, work: Path, uid: int) -> list[str]:
        python = [self.python, "-I", "-B", program.entry]
        if self.isolation != "bwrap":
            return python
        bwrap = [self._bwrap or "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                 "--bind", str(work), str(work), "--unshare-net", "--unshare-pid", "--unshare-ipc",
                 "--unshare-uts", "--die-with-parent", "--new-session", "--chdir", str(work), *python]
        if self._as_root:
            # Unprivileged first, so the process limit applies (see the module docstring).
            return [self._setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *bwrap]
        return bwrap

    def _execute(self, program: Program, work: Path, uid: int, stdin: object, stdout: object,
                 stderr: object) -> tuple[str, int | None, float]:
        limits = program.limits
        # Not root: the program shares our uid, so the limit starts above what that uid runs now (counted at each
        # run, zombies of earlier runs included) plus the other parallel programs.
        processes = limits.processes + (_processes_of_user(os.getuid()) + self.jobs * limits.processes
                                        if not self._as_root else 0)
        drop_privileges = self._as_root and self.isolation != "bwrap"
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8",
               "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
        started = time.perf_counter()
        try:
            process = subprocess.Popen(
                self._command(program, work, uid), cwd=work, env=env, stdin=stdin, stdout=stdout, stderr=stderr,
                start_new_session=True, close_fds=True,
                user=uid if drop_privileges else None, group=uid if drop_privileges else None,
                extra_groups=[] if drop_privileges else None,
                # Runs in the child after the uid switch and before exec: nothing but setrlimit calls.
                preexec_fn=_limiter(limits, processes))
        except OSError as exc:
            # The interpreter could not even start (e.g. it is unreadable for the sandbox user).
            stderr.write(f"cannot start {self.python}: {exc.strerror or exc}\n".encode())  # type: ignore[attr-defined]
            return EXITED, 127, time.perf_counter() - started
        with self._running_lock:
            self._running.add(process)
        if self._stopped.is_set():  # stopped while it started: stop() may not have seen it
            os.killpg(process.pid, signal.SIGKILL)
        timed_out = False
        try:
            process.wait(timeout=limits.timeout + _STARTUP_GRACE)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            self._kill_tree(process, uid)
            with self._running_lock:
                self._running.discard(process)
        seconds = time.perf_counter() - started
        if timed_out:
            return TIMEOUT, None, seconds
        return EXITED, process.returncode, seconds

    def _kill_tree(self, process: subprocess.Popen[bytes], uid: int) -> None:
        """Kill the program and everything it started, even processes that left its session."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self._as_root and self.isolation != "bwrap":
            # Every process of the slot's uid is ours (the uid is fresh): sweep them all. Under bwrap the PID
            # namespace dies with its first process instead.
            _kill_every_process_of(uid)
        process.wait()

    def close(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def describe(self) -> str:
        """One line saying which isolation programs get, for stderr and reports."""
        if self.isolation == "bwrap":
            return ("bwrap: read-only filesystem except the work directory, no network, own PIDs; "
                    f"limits on CPU, memory, processes and file size; {self.jobs} parallel")
        why = f" ({self.reason})" if self.reason else ""
        return (f"fallback{why}: own temporary directory, scrubbed environment and resource limits only; "
                f"programs CAN use the network and write outside their directory; {self.jobs} parallel")


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


def _limiter(limits: Limits, processes: int) -> Callable[[], None]:
    cpu = int(limits.timeout) + 1

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _signal_outcome(number: int, limits: Limits) -> str:
    # CPU-limit signals mean the program ran out of time; anything else (SIGSEGV from a failed allocation in C,
    # SIGXFSZ, an external SIGKILL) is "killed".
    if number in (signal.SIGXCPU, signal.SIGKILL) and limits.timeout > 0:
        return TIMEOUT if number == signal.SIGXCPU else KILLED
    return KILLED


def _read_capped(path: Path) -> str:
    with open(path, "rb") as handle:
        data = handle.read(_MAX_CAPTURE_BYTES)
    return data.decode("utf-8", errors="replace")


def _interpreters() -> list[str]:
    """Our own interpreter first, then the system's (ours may sit where the sandbox user cannot read)."""
    found = [os.path.realpath(sys.executable)]
    for path in _SYSTEM_PYTHONS:
        if os.path.exists(path) and os.path.realpath(path) not in found:
            found.append(os.path.realpath(path))
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
