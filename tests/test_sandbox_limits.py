"""Limits per program, not per process: a program that fills /tmp, /dev/shm or its directory, or forks
memory-hungry children, ends with the status of the limit it reached, and while such programs run the host's
available memory (MemAvailable in /proc/meminfo, read throughout) never drops by much more than their memory
limits together. Without per-program limits these programs took several times their limit (six children of
1.5 GiB took 8.6 GiB under a 2 GiB limit)."""

from __future__ import annotations

import errno
import statistics
import sys
import threading
import time
from pathlib import Path

import pytest

from codescaler_cli.evaluation import Sandbox
from codescaler_cli.evaluation.execution import run_tests
from codescaler_cli.evaluation.problems import problem_from_record
from codescaler_cli.evaluation.sandbox import DISK, MEMORY, Limits, Program

MiB = 1024**2
MEMORY_LIMIT = 256 * MiB
# Other jobs share this machine (a vLLM server starting takes over a GiB): their memory may move this much while
# a test runs. The hostile programs below would take several times more without per-program limits.
NOISE = 2048 * MiB

FILL = """
import os
chunk = b"x" * (16 * 1024 * 1024)
for number in range(160):  # 2.5 GiB if nothing stopped it
    with open(os.path.join(DIRECTORY, f"fill-{number}"), "wb") as handle:
        handle.write(chunk)
"""
# Children that each take most of the limit and hold it (each within its own address-space limit): together
# nineteen times over.
HUNGRY_CHILDREN = """
import os, sys, time
children = []
for _ in range(24):
    pid = os.fork()
    if pid == 0:
        data = b"x" * (200 * 1024 * 1024)
        time.sleep(3)
        os._exit(0)
    children.append(pid)
failed = 0
for pid in children:
    _, status = os.waitpid(pid, 0)
    failed += status != 0
sys.exit(1 if failed else 0)
"""
# Children that each write a file to /dev/shm, which lives as long as the sandbox: memory no process owns.
SHM_CHILDREN = """
import os, sys
failed = 0
for number in range(8):
    if os.fork() == 0:
        for part in range(2):
            with open(f"/dev/shm/child-{number}-{part}", "wb") as handle:
                handle.write(b"x" * (50 * 1024 * 1024))
        os._exit(0)
    failed += os.wait()[1] != 0
sys.exit(1 if failed else 0)
"""

# (program, limits, the status it must end with): tmpfs within a small size ends `disk`; a tmpfs larger than the
# memory limit, and children, end `memory`, because what a program writes to its tmpfs counts against its memory.
SMALL_DISK = Limits(timeout=20.0, memory_bytes=MEMORY_LIMIT, disk_bytes=64 * MiB)
LARGE_DISK = Limits(timeout=20.0, memory_bytes=MEMORY_LIMIT, disk_bytes=4096 * MiB)
HOSTILE = {
    "fill /tmp": (FILL.replace("DIRECTORY", "'/tmp'"), SMALL_DISK, DISK),
    "fill /dev/shm": (FILL.replace("DIRECTORY", "'/dev/shm'"), SMALL_DISK, DISK),
    "fill its directory": (FILL.replace("DIRECTORY", "'.'"), SMALL_DISK, DISK),
    "fill /tmp past the memory limit": (FILL.replace("DIRECTORY", "'/tmp'"), LARGE_DISK, MEMORY),
    "fill /dev/shm from children": (SHM_CHILDREN, LARGE_DISK, MEMORY),
    "memory-hungry children": (HUNGRY_CHILDREN, LARGE_DISK, MEMORY),
}


class MemoryWatch:
    """Reads MemAvailable every few milliseconds in a thread: the baseline before, the lowest value during."""

    def __init__(self) -> None:
        self.lowest: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        samples = []
        for _ in range(20):
            samples.append(self._sample())
            time.sleep(0.01)
        self.baseline = int(statistics.median(samples))

    @staticmethod
    def _sample() -> int:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no MemAvailable in /proc/meminfo")

    def _watch(self) -> None:
        while not self._stop.is_set():
            value = self._sample()
            self.lowest = value if self.lowest is None else min(self.lowest, value)
            time.sleep(0.005)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def largest_drop(self) -> int:
        assert self.lowest is not None
        return self.baseline - self.lowest


@pytest.mark.parametrize("isolation", ["bwrap", "fallback"])
def test_hostile_programs_end_at_a_limit_and_take_no_more_memory_than_it(isolation: str) -> None:
    # The fallback has no tmpfs of its own (its /tmp is the host's): only the children run there.
    cases = {name: case for name, case in HOSTILE.items() if isolation == "bwrap" or name == "memory-hungry children"}
    with Sandbox(isolation=isolation, jobs=2) as box:
        assert "cgroup" in box.mechanisms().memory, "per-program limits need control groups (run as root)"
        with MemoryWatch() as watch:
            results = box.run_many(Program({"main.py": code}, limits=limits) for code, limits, _ in cases.values())
    for (name, (_, _, status)), result in zip(cases.items(), results):
        assert result.outcome == status, (name, result.outcome, result.detail, result.stderr[-300:])
        assert result.peak_memory_bytes is not None and result.peak_memory_bytes <= MEMORY_LIMIT, name
        assert result.detail, name
    # Two programs at a time, each within its limit: the host never lost much more than two limits.
    assert watch.largest_drop < 2 * MEMORY_LIMIT + NOISE, watch.largest_drop // MiB


def test_a_judged_program_is_held_to_its_limits_too() -> None:
    problem = problem_from_record({
        "task_id": "hungry", "text": "Return 1.", "test_list": ["assert one() == 1", "assert one() == 1"],
    }, "mbpp.jsonl", 1)
    program = HUNGRY_CHILDREN.replace("sys.exit(1 if failed else 0)", "raise MemoryError if failed else None")
    hungry = "def one():\n" + "\n".join("    " + line for line in program.strip().splitlines()) + "\n    return 1\n"
    with Sandbox(isolation="bwrap", jobs=1) as box, MemoryWatch() as watch:
        result = run_tests(box, problem, hungry, problem.tests, test_timeout=20,
                           limits=Limits(memory_bytes=MEMORY_LIMIT))
    assert result.status == MEMORY and result.passed == 0, result
    assert watch.largest_drop < MEMORY_LIMIT + NOISE, watch.largest_drop // MiB


def test_cgroup_v2_groups_are_made_with_v2_files(tmp_path: Path) -> None:
    """This machine's kernel gives its controllers to cgroup v1, so the v2 path runs here against a directory laid
    out as cgroup2 lays out a group: what it writes and reads there must be v2's files."""
    from codescaler_cli.evaluation.resources import _open_v2

    own = tmp_path / "service"
    own.mkdir()
    (own / "cgroup.controllers").write_text("cpu io memory pids\n")
    (own / "cgroup.subtree_control").write_text("")
    cgroups, reason = _open_v2(own)
    assert cgroups is not None and cgroups.version == 2, reason
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"
    group = cgroups.new_group(300 * MiB, 12)
    assert (group.memory_dir / "memory.max").read_text() == str(300 * MiB)
    assert (group.pids_dir / "pids.max").read_text() == "12" and group.memory_dir == group.pids_dir
    (group.memory_dir / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
    (group.pids_dir / "pids.events").write_text("max 3\n")
    (group.memory_dir / "memory.peak").write_text(f"{300 * MiB}\n")
    usage = group.usage()
    assert (usage.out_of_memory, usage.process_limit_hit, usage.peak_memory_bytes) == (True, True, 300 * MiB)
    assert "cgroup v2" in cgroups.describe()
    # Without the controllers, v2 is refused with the reason.
    (own / "cgroup.controllers").write_text("cpu io\n")
    assert _open_v2(own) == (None, f"the memory and pids controllers are not available in {own}")


def test_groups_are_made_from_many_threads_at_once() -> None:
    # Programs start from `jobs` threads at once: every group gets a name and a directory of its own.
    from concurrent.futures import ThreadPoolExecutor

    from codescaler_cli.evaluation.resources import open_cgroups

    cgroups, reason = open_cgroups()
    assert cgroups is not None, reason
    try:
        def make(_: int) -> str:
            group = cgroups.new_group(64 * MiB, 4)
            group.remove()
            return str(group.memory_dir)

        with ThreadPoolExecutor(max_workers=8) as pool:
            names = list(pool.map(make, range(400)))
        assert len(set(names)) == 400
    finally:
        cgroups.close()


def test_groups_left_by_a_killed_run_are_removed_by_the_next() -> None:
    # A run killed with SIGKILL cannot remove its groups; the next one removes those whose process is gone.
    import os
    import subprocess

    from codescaler_cli.evaluation.resources import open_cgroups

    cgroups, reason = open_cgroups()
    assert cgroups is not None, reason
    base = cgroups._memory_base.parent  # type: ignore[attr-defined]
    cgroups.close()
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale, alive = base / f"codescaler-{gone.pid}-abc123", base / f"codescaler-{os.getpid()}-def456"
    for directory in (stale, stale / "codescaler-1-abc123-0", alive):
        directory.mkdir()
    try:
        cgroups, reason = open_cgroups()
        assert cgroups is not None, reason
        cgroups.close()
        assert not stale.exists() and alive.exists()
    finally:
        for directory in (stale / "codescaler-1-abc123-0", stale, alive):
            if directory.exists():
                directory.rmdir()


KEYCTL_ERRNO = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
result = libc.syscall(250, 0, -4, 0)  # keyctl(KEYCTL_GET_KEYRING_ID, the user keyring), x86_64
print(result, ctypes.get_errno())
"""


def test_programs_started_on_their_own_get_no_kernel_keyrings() -> None:
    with Sandbox(isolation="bwrap", jobs=1) as box:
        assert "no kernel keyrings" in box.describe()
        result = box.run(Program({"main.py": KEYCTL_ERRNO}))
        assert result.stdout.split() == ["-1", str(errno.EPERM)], (result.stdout, result.stderr)


def test_without_libseccomp_eval_runs_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # fault injection: the binding cannot be imported
    with Sandbox(isolation="bwrap", jobs=1) as box:
        assert "kernel keyrings NOT blocked (libseccomp cannot be used" in box.describe()
        assert "NOT blocked" in box.mechanisms().syscalls
        result = box.run(Program({"main.py": "print('ok')"}))
        assert result.stdout.strip() == "ok", result
