"""Candidate processes forked by a zygote start from the same state as the first: nothing a program leaves behind
(files in its directory, /tmp or /dev/shm, directories it locked, processes that left its session, System V
shared memory, POSIX message queues) reaches the next program of the same slot, and nothing a program does to the zygote (signals,
/proc, ptrace) gets through. The next program's PID shows it ran in the same slot."""

from __future__ import annotations

import json

import pytest

from codescaler_cli.evaluation import Sandbox
from codescaler_cli.evaluation.execution import run_test_sets
from codescaler_cli.evaluation.problems import problem_from_record

PROBLEM = problem_from_record({
    "task_id": "state", "text": "Report what is left of earlier programs.",
    "test_list": ["assert leftovers() == []", "assert pid() > 2"],
}, "mbpp.jsonl", 1)

# Leaves everything it can behind: files and locked directories in each writable place, a shared memory segment,
# and a process that left its session and writes a file after the program is over.
POLLUTER = """
import ctypes, os, time
for directory in (".", "/tmp", "/dev/shm"):
    open(os.path.join(directory, "left-behind"), "w").write("x")
    os.makedirs(os.path.join(directory, "locked", "inner"))
    os.chmod(os.path.join(directory, "locked"), 0)
os.chmod(".", 0)
ctypes.CDLL(None).shmget(0x1234, 1 << 20, 0o1000 | 0o666)
_libc = ctypes.CDLL(None, use_errno=True)
_queue = _libc.mq_open(b"/left-behind", os.O_CREAT | os.O_RDWR, 0o600, None)
assert _queue >= 0 and _libc.mq_send(_queue, b"secret", 6, 0) == 0, ctypes.get_errno()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(1.0)
        open("/tmp/late", "w").write("x")
    os._exit(0)
def leftovers():
    return []
def pid():
    return os.getpid()
"""

INSPECTOR = """
import ctypes, os, time
def leftovers():
    time.sleep(2.0)  # the polluter's late writer would have written by now
    found = [os.path.join(d, name) for d in (".", "/tmp", "/dev/shm") for name in os.listdir(d)]
    if ctypes.CDLL(None).mq_open(b"/left-behind", os.O_RDONLY, 0, None) >= 0:
        found.append("the message queue /left-behind")
    found += open("/proc/sysvipc/shm").read().splitlines()[1:]
    found += [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid())]
    return found
def pid():
    return os.getpid()
"""

# Goes for the zygote (PID 1 of the namespace, the same user): its memory, descriptors and environment, a
# debugger's attach, and every signal that would stop or kill it. Reports what worked.
ATTACKER = """
import ctypes, os, signal
got = []
for path in ("/proc/1/mem", "/proc/1/environ", "/proc/1/cmdline", "/proc/1/maps"):
    try:
        with open(path, "rb") as handle:
            handle.read(64)
        if path != "/proc/1/cmdline":
            got.append(path)
    except OSError:
        pass
try:
    got += [f"/proc/1/fd/{fd}" for fd in os.listdir("/proc/1/fd")]
except OSError:
    pass
if ctypes.CDLL(None, use_errno=True).ptrace(16, 1, None, None) == 0:  # PTRACE_ATTACH
    got.append("ptrace")
for number in (signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL):
    os.kill(1, number)
def leftovers():
    try:
        os.kill(-1, signal.SIGKILL)  # everything it may signal (the zygote is exempt, as PID 1)
    except ProcessLookupError:
        pass
    return got
def pid():
    return os.getpid()
"""


@pytest.fixture(scope="module")
def one_slot():  # type: ignore[no-untyped-def]
    with Sandbox(isolation="bwrap", jobs=1) as box:
        yield box


def verdict(box: Sandbox, program: str):  # type: ignore[no-untyped-def]
    (result,) = run_test_sets(box, PROBLEM, program, [PROBLEM.tests], test_timeout=10)
    return result


def test_nothing_a_program_leaves_reaches_the_next(one_slot: Sandbox) -> None:
    polluted = verdict(one_slot, POLLUTER)
    assert polluted.passed >= 1, polluted.detail  # it loaded, so it left all of it behind (its PID is the slot's first)
    after = verdict(one_slot, INSPECTOR)
    assert (after.status, after.passed) == ("passed", 2), after.detail


def test_a_program_cannot_reach_or_stop_its_zygote(one_slot: Sandbox) -> None:
    attack = verdict(one_slot, ATTACKER)
    assert (attack.status, attack.passed) == ("passed", 2), attack.detail  # it got nothing of the zygote
    after = verdict(one_slot, INSPECTOR)
    assert (after.status, after.passed) == ("passed", 2), after.detail


PID_PROBLEM = problem_from_record({
    "question_id": "pid", "question_content": "Return your PID.", "metadata": json.dumps({"func_name": "pid"}),
    "public_test_cases": json.dumps([{"input": "0", "output": "-1", "testtype": "functional"}]),
}, "lcb.jsonl", 1)


def candidate_pid(box: Sandbox) -> int:
    """The PID of a program's process in its namespace: a functional test whose expected value is never right
    shows the value it got."""
    (result,) = run_test_sets(box, PID_PROBLEM, "import os\ndef pid(_):\n    return os.getpid()\n",
                              [PID_PROBLEM.tests], test_timeout=10)
    return int(result.detail.rsplit("got ", 1)[1])


def test_one_zygote_serves_program_after_program(one_slot: Sandbox) -> None:
    # In one namespace (one zygote) each program's process has a higher PID than the last; a new one starts over.
    pids = [candidate_pid(one_slot) for _ in range(12)]
    assert pids == sorted(set(pids)) and pids[0] > 2, pids


def test_a_fork_bomb_in_a_call_is_capped_and_cleared(one_slot: Sandbox) -> None:
    bomb = "import os\ndef leftovers():\n    while True:\n        os.fork()\ndef pid():\n    return os.getpid()\n"
    capped = verdict(one_slot, bomb)
    assert capped.status == "processes", capped
    after = verdict(one_slot, INSPECTOR)  # and no process of it is left for the next program
    assert (after.status, after.passed) == ("passed", 2), after.detail


def test_a_zygote_that_is_gone_is_replaced() -> None:
    # Fault injection: the zygote never ends while the sandbox runs, but if it did, the next program gets a new one
    # (whose first child is PID 2 again).
    with Sandbox(isolation="bwrap", jobs=1) as box:
        assert [candidate_pid(box) for _ in range(2)] == [2, 3]
        for slot in box._free_slots:
            slot.kill()
            slot.process.wait()
        assert candidate_pid(box) == 2
        assert not box.zygote_problem and box.mechanisms().startup.startswith("a zygote")


# The kernel's keyrings belong to a uid in a user namespace, not to a sandbox: keys one program of a slot stored in
# its user (-4), user-session (-5) or persistent keyring would be there for the next program of the slot.
KEYRINGS = """
import ctypes, errno
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
ADD_KEY, KEYCTL = 248, 250  # x86_64
KEYCTL_GET_PERSISTENT, KEYCTL_SEARCH, KEYCTL_READ = 22, 10, 11
"""
KEY_WRITER = KEYRINGS + """
for ring in (-4, -5):
    _libc.syscall(ADD_KEY, b"user", b"leak%d" % -ring, b"secret-from-A", 13, ring)
persistent = _libc.syscall(KEYCTL, KEYCTL_GET_PERSISTENT, -1, -4)
if persistent > 0:
    _libc.syscall(ADD_KEY, b"user", b"leak-persistent", b"secret-from-A", 13, persistent)
def leftovers():
    return []
def pid():
    return 3
"""
KEY_READER = KEYRINGS + """
def leftovers():
    found = []
    persistent = _libc.syscall(KEYCTL, KEYCTL_GET_PERSISTENT, -1, -4)
    for ring, name in ((-4, b"leak4"), (-5, b"leak5"), (persistent, b"leak-persistent")):
        key = _libc.syscall(KEYCTL, KEYCTL_SEARCH, ring, b"user", name, 0)
        if key > 0:
            data = ctypes.create_string_buffer(64)
            found.append((name, data.raw[:max(_libc.syscall(KEYCTL, KEYCTL_READ, key, data, 64), 0)]))
    return found
def pid():
    # Any keyring call fails with EPERM: the seccomp filter answers, not a missing key.
    result = _libc.syscall(KEYCTL, KEYCTL_SEARCH, -4, b"user", b"leak4", 0)
    return 3 if (result, ctypes.get_errno()) == (-1, errno.EPERM) else -ctypes.get_errno()
"""


def test_no_kernel_keyring_reaches_the_next_program(one_slot: Sandbox) -> None:
    assert verdict(one_slot, KEY_WRITER).passed == 2
    after = verdict(one_slot, KEY_READER)
    assert (after.status, after.passed) == ("passed", 2), after.detail
