"""A pre-started interpreter that forks a fresh candidate process per program, so that a program pays for a fork,
not for starting bubblewrap, an interpreter and the modules benchmark programs import.

One zygote runs per parallel slot, as PID 1 of its own bubblewrap sandbox (the same minimal view, tmpfs work
directory, /tmp and /dev/shm as a program started on its own). For each program the host moves the zygote into
the program's control group, asks it to fork, and moves it back: the child, and everything it starts, stays in the
program's group. The child drops to the program's limits, closes everything but the judge's channel and becomes
the candidate's process (candidate.py). When the judge is done, the zygote kills every other process in its PID
namespace, reaps them, and empties the work directory, /tmp, /dev/shm and the System V IPC objects: the next program
starts from the same state as the first.

What a candidate can do to the zygote: nothing but see it. It runs as the same user, but as PID 1 of the namespace
the kernel delivers it no signal from inside (it handles none), and it is non-dumpable, so it can be neither
traced nor read through /proc. Its control socket is closed in the child before the candidate's code runs.

Run by the sandbox as `python -I -S -B zygote.py FD WORKDIR`, FD being the control socket. Standard library only,
Python 3.8 and later.
"""

from __future__ import annotations

import array
import marshal
import os
import resource
import select
import shutil
import signal
import socket
import sys

if __package__:
    from . import candidate, wire
else:  # run as a script in the sandbox, next to candidate.py
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import candidate
    import wire

    del sys.path[0]

# What benchmark programs import (LiveCodeBench's import header is most of it), imported once here instead of
# once per program. Nothing of them is visible to a program that does not import them itself.
import bisect  # noqa: E402,F401
import collections  # noqa: E402,F401
import copy  # noqa: E402,F401
import datetime  # noqa: E402,F401
import functools  # noqa: E402,F401
import heapq  # noqa: E402,F401
import itertools  # noqa: E402,F401
import json  # noqa: E402,F401
import math  # noqa: E402,F401
import operator  # noqa: E402,F401
import random  # noqa: E402,F401  (it reseeds itself in every forked child)
import re  # noqa: E402,F401
import string  # noqa: E402,F401
import typing  # noqa: E402,F401

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List

# The directories a program may write to: emptied after every program.
_SCRATCH = ("/tmp", "/dev/shm")


def _receive(control: socket.socket) -> "tuple[Any, List[int]]":
    fds = array.array("i")
    message, ancillary, _, _ = control.recvmsg(1 << 16, socket.CMSG_SPACE(4 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return (marshal.loads(message) if message else None), list(fds)


def _become_candidate(control: socket.socket, request: "Dict[str, Any]", channel_fd: int, stderr_fd: int,
                      work: str) -> None:
    """In the forked child: the program's limits, its own descriptors, then the candidate's process."""
    try:
        control.close()
        os.setsid()
        # The signal dispositions a fresh interpreter starts with (it ignores SIGPIPE and SIGXFSZ, so that a
        # closed pipe or the file-size limit is an exception).
        for number in range(1, signal.NSIG):
            try:
                signal.signal(number, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        cpu = int(request["cpu_seconds"])
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        address_space = int(request["address_space"])
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(request["file_bytes"]),) * 2)
        if request.get("processes") is not None:  # no control group counts them: the uid's limit must
            resource.setrlimit(resource.RLIMIT_NPROC, (int(request["processes"]),) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(stderr_fd, 2)
        os.closerange(3, channel_fd)
        os.closerange(channel_fd + 1, 1 << 16)
        os.chdir(work)
        wire.set_dumpable(True)
        candidate.main(["candidate.py", str(channel_fd)])
    except BaseException as exc:  # the program's process could not be set up: say why, where its stderr goes
        os.write(2, f"codescaler zygote: {type(exc).__name__}: {exc}\n".encode("utf-8", "replace"))
        os._exit(70)
    os._exit(0)


def _address_space() -> int:
    """Bytes of address space this process maps now: a forked child starts with all of it."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _finish(child: int, wait_seconds: float) -> "Any":
    """Wait up to `wait_seconds` for the candidate's process to end by itself; then kill everything else in the
    namespace and reap it. Returns the child's wait status, or None when it was still running."""
    status = None
    if child > 0:
        if wait_seconds > 0:
            try:
                pidfd = os.pidfd_open(child)
            except (AttributeError, OSError):  # before Linux 5.3: no waiting
                pidfd = -1
            if pidfd >= 0:
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                poller.poll(wait_seconds * 1000)
                os.close(pidfd)
        done, code = os.waitpid(child, os.WNOHANG)
        status = code if done else None
    try:
        os.kill(-1, signal.SIGKILL)  # as PID 1: every other process of the namespace
    except ProcessLookupError:  # there is none left
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return status


def _wipe(work: str) -> None:
    for directory in (work, *_SCRATCH):
        try:
            os.chmod(directory, 0o755)  # a program may have made it unreadable
        except OSError:
            pass
        for entry in os.listdir(directory):
            path = os.path.join(directory, entry)
            _writable(path)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True, onerror=None)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass
    _remove_ipc()


def _writable(path: str) -> None:
    """A program may leave directories it made unreadable: give them back to us before removing them."""
    if os.path.isdir(path) and not os.path.islink(path):
        try:
            os.chmod(path, 0o700)
        except OSError:
            return
        for base, directories, _ in os.walk(path):
            for name in directories:
                try:
                    os.chmod(os.path.join(base, name), 0o700)
                except OSError:
                    pass


def _remove_ipc() -> None:
    """System V shared memory, semaphores and message queues outlive their processes: remove them."""
    removers = {"shm": ("shmctl", 0), "sem": ("semctl", 0), "msg": ("msgctl", None)}
    present = []
    for kind in removers:
        try:
            with open(f"/proc/sysvipc/{kind}") as handle:
                ids = [int(line.split()[1]) for line in handle.read().splitlines()[1:] if line.split()]
        except (OSError, ValueError, IndexError):
            ids = []
        present.extend((kind, ident) for ident in ids)
    if not present:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    ipc_rmid = 0
    for kind, ident in present:
        function, _ = removers[kind]
        if kind == "sem":
            getattr(libc, function)(ident, 0, ipc_rmid)
        else:
            getattr(libc, function)(ident, ipc_rmid, None)


def serve(control_fd: int, work: str) -> None:
    """Fork a candidate process per `run` request; `finish` ends it and cleans up; end when the host closes."""
    wire.set_dumpable(False)
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                   signal.SIGPIPE, signal.SIGALRM, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(number, signal.SIG_IGN)
    control = socket.socket(fileno=control_fd)
    control.send(marshal.dumps({"ready": True}))
    child = 0
    while True:
        request, fds = _receive(control)
        if request is None:
            return
        if request.get("op") == "run" and len(fds) == 2:
            request["address_space"] = int(request["memory_bytes"]) + _address_space()
            child = os.fork()
            if child == 0:
                _become_candidate(control, request, fds[0], fds[1], work)
            for fd in fds:
                os.close(fd)
            control.send(marshal.dumps({"forked": child}))
        elif request.get("op") == "finish":
            for fd in fds:
                os.close(fd)
            status = _finish(child, float(request.get("wait", 0.0)))
            child = 0
            _wipe(work)
            control.send(marshal.dumps({"finished": True, "status": status}))
        else:
            for fd in fds:
                os.close(fd)
            control.send(marshal.dumps({"error": "unknown request"}))


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
