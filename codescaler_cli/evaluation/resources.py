"""Limits on a whole program, not on each of its processes: one control group per program holds all its processes
within one memory budget (what it writes to its tmpfs mounts included: the kernel charges those pages to the
writer's group) and a number of tasks, and says afterwards whether the program ran into either.

cgroup v2 is used where its memory and pids controllers can be enabled below our own group; cgroup v1 where the
memory and pids hierarchies are mounted writable (as on this project's CI machines, run as root). Without either,
the sandbox falls back to rlimits, which bound each process on its own (see sandbox.py); `open_cgroups` says why.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

# A program's group is emptied (every process killed) within this many rounds of kill-and-look.
_KILL_ROUNDS = 2000


@dataclass(frozen=True)
class GroupUsage:
    """What a program's group saw: whether the kernel stopped it at a limit, and its peaks when known."""

    out_of_memory: bool
    process_limit_hit: bool
    peak_memory_bytes: int | None
    peak_processes: int | None


class ProgramGroup:
    """The control group(s) of one program: join it in the child before exec, read its usage, kill and remove it.

    On v1 a program has one group in the memory hierarchy and one in the pids hierarchy; on v2 one group.
    """

    def __init__(self, memory_dir: Path, pids_dir: Path, version: int) -> None:
        self.memory_dir = memory_dir
        self.pids_dir = pids_dir
        self.version = version
        # Opened now, written by the child between fork and exec (writing "0" moves the writer).
        self._join_fds = [os.open(directory / "cgroup.procs", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC)
                          for directory in dict.fromkeys([memory_dir, pids_dir])]

    def join(self) -> None:
        """Move the calling process into the group: call in the child after fork, before exec. Syscalls only."""
        for fd in self._join_fds:
            os.write(fd, b"0")

    def enter(self, pid: int) -> None:
        """Move process `pid` into the group (a zygote, for the fork of a program's process)."""
        for directory in dict.fromkeys([self.memory_dir, self.pids_dir]):
            (directory / "cgroup.procs").write_text(str(pid))

    def close_join(self) -> None:
        for fd in self._join_fds:
            os.close(fd)
        self._join_fds = []

    def pids(self) -> list[int]:
        try:
            return [int(line) for line in (self.pids_dir / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill(self) -> None:
        """Kill every process of the program, including those that left its session or PID namespace."""
        if self.version == 2 and (self.pids_dir / "cgroup.kill").exists():
            try:
                (self.pids_dir / "cgroup.kill").write_text("1")
            except OSError:
                pass
        for _ in range(_KILL_ROUNDS):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.0005)

    def usage(self) -> GroupUsage:
        if self.version == 2:
            memory_events = _keyed(self.memory_dir / "memory.events")
            out_of_memory = memory_events.get("oom_kill", 0) > 0 or memory_events.get("oom", 0) > 0
            peak_memory = _number(self.memory_dir / "memory.peak")
        else:
            oom = _keyed(self.memory_dir / "memory.oom_control")
            out_of_memory = oom["oom_kill"] > 0 if "oom_kill" in oom else \
                (_number(self.memory_dir / "memory.failcnt") or 0) > 0
            peak_memory = _number(self.memory_dir / "memory.max_usage_in_bytes")
        return GroupUsage(out_of_memory=out_of_memory,
                          process_limit_hit=_keyed(self.pids_dir / "pids.events").get("max", 0) > 0,
                          peak_memory_bytes=peak_memory, peak_processes=_number(self.pids_dir / "pids.peak"))

    def remove(self) -> None:
        self.close_join()
        for directory in dict.fromkeys([self.pids_dir, self.memory_dir]):
            for attempt in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or attempt == 49:
                        break
                    time.sleep(0.01)  # the last processes are still exiting


class Cgroups:
    """Where this process makes its programs' groups, below its own group in each hierarchy."""

    def __init__(self, version: int, memory_base: Path, pids_base: Path, owned: list[Path], where: str) -> None:
        self.version = version
        self._memory_base = memory_base
        self._pids_base = pids_base
        self._owned = owned  # directories we made to hold the programs' groups, removed at close
        self._where = where
        self._prefix = f"codescaler-{os.getpid()}-{secrets.token_hex(3)}"
        self._numbers = itertools.count()  # next() on it is atomic: programs start from several threads at once

    def describe(self) -> str:
        return f"cgroup v{self.version} memory and pids controllers (below {self._where})"

    def new_group(self, memory_bytes: int, processes: int) -> ProgramGroup:
        name = f"{self._prefix}-{next(self._numbers)}"
        memory_dir, pids_dir = self._memory_base / name, self._pids_base / name
        for directory in dict.fromkeys([memory_dir, pids_dir]):
            directory.mkdir()
        try:
            if self.version == 2:
                (memory_dir / "memory.max").write_text(str(memory_bytes))
                _try_write(memory_dir / "memory.swap.max", "0")
            else:
                (memory_dir / "memory.limit_in_bytes").write_text(str(memory_bytes))
                # No swap beyond the budget either (where the kernel accounts swap).
                _try_write(memory_dir / "memory.memsw.limit_in_bytes", str(memory_bytes))
            (pids_dir / "pids.max").write_text(str(processes))
            return ProgramGroup(memory_dir, pids_dir, self.version)
        except BaseException:
            for directory in dict.fromkeys([pids_dir, memory_dir]):
                _try_rmdir(directory)
            raise

    def close(self) -> None:
        for directory in self._owned:
            _try_rmdir(directory)


def open_cgroups() -> tuple[Cgroups | None, str]:
    """The control groups this process can give its programs, or None and why not."""
    if not Path("/proc/self/cgroup").exists():
        return None, "no control groups (not Linux)"
    memberships = _memberships()
    mounts = _cgroup_mounts()
    reasons = []
    if "" in memberships and "cgroup2" in mounts:
        cgroups, reason = _open_v2(_group_dir(mounts["cgroup2"], memberships[""]))
        if cgroups is not None:
            return cgroups, ""
        reasons.append(f"cgroup v2: {reason}")
    if "memory" in memberships and "pids" in memberships and "memory" in mounts and "pids" in mounts:
        cgroups, reason = _open_v1(_group_dir(mounts["memory"], memberships["memory"]),
                                   _group_dir(mounts["pids"], memberships["pids"]))
        if cgroups is not None:
            return cgroups, ""
        reasons.append(f"cgroup v1: {reason}")
    elif not reasons:
        reasons.append("neither cgroup v2 nor the v1 memory and pids hierarchies are mounted")
    return None, "; ".join(reasons)


def _remove_stale(parent: Path) -> None:
    """Groups that an earlier codescaler left behind (killed before it could remove them): removed when their
    process is gone and they hold no process (a reused PID only means they stay a while longer)."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        found = re.fullmatch(r"codescaler-(\d+)-[0-9a-f]+(-\d+)?", entry.name)
        if found is None or not entry.is_dir() or Path(f"/proc/{found.group(1)}").exists():
            continue
        for child in [path for path in entry.iterdir() if path.is_dir()]:
            _try_rmdir(child)
        _try_rmdir(entry)


def _open_v1(memory_dir: Path, pids_dir: Path) -> tuple[Cgroups | None, str]:
    for parent in (memory_dir, pids_dir):
        _remove_stale(parent)
    suffix = f"codescaler-{os.getpid()}-{secrets.token_hex(3)}"
    made: list[Path] = []
    try:
        for parent in (memory_dir, pids_dir):
            (parent / suffix).mkdir()
            made.append(parent / suffix)
        cgroups = Cgroups(1, memory_dir / suffix, pids_dir / suffix, made[::-1], f"{memory_dir} and {pids_dir}")
        cgroups.new_group(64 * 1024 * 1024, 4).remove()  # every file we need is there and writable
        return cgroups, ""
    except OSError as exc:
        for directory in made[::-1]:
            _try_rmdir(directory)
        return None, f"cannot make groups below {memory_dir} ({exc.strerror or exc})"


def _open_v2(own: Path) -> tuple[Cgroups | None, str]:
    try:
        available = (own / "cgroup.controllers").read_text().split()
    except OSError as exc:
        return None, f"cannot read {own / 'cgroup.controllers'} ({exc.strerror})"
    if "memory" not in available or "pids" not in available:
        return None, f"the memory and pids controllers are not available in {own}"
    made: list[Path] = []
    try:
        try:
            _enable_controllers(own)
        except OSError as exc:
            # A group with processes in it cannot hand controllers to its children. When the only process in our
            # group is this one, it moves into a leaf of its own (as a delegated service is expected to).
            if exc.errno != errno.EBUSY or _group_processes(own) != [os.getpid()]:
                raise
            leaf = own / f"codescaler-supervisor-{os.getpid()}"
            leaf.mkdir()
            made.append(leaf)
            (leaf / "cgroup.procs").write_text(str(os.getpid()))
            _enable_controllers(own)
        _remove_stale(own)
        cgroups = Cgroups(2, own, own, [], str(own))
        cgroups.new_group(64 * 1024 * 1024, 4).remove()
        return cgroups, ""
    except OSError as exc:
        for directory in made:
            _try_rmdir(directory)
        return None, f"cannot delegate the memory and pids controllers below {own} ({exc.strerror or exc})"


def _enable_controllers(group: Path) -> None:
    enabled = (group / "cgroup.subtree_control").read_text().split()
    if "memory" not in enabled or "pids" not in enabled:
        (group / "cgroup.subtree_control").write_text("+memory +pids")


def _group_processes(group: Path) -> list[int]:
    try:
        return [int(line) for line in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _memberships() -> dict[str, str]:
    """Our group per v1 controller ("memory", "pids", ...) and under "" for v2, from /proc/self/cgroup."""
    found: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


def _cgroup_mounts() -> dict[str, tuple[str, str]]:
    """(mount point, root within the hierarchy) of the cgroup2 mount and of each v1 controller's mount."""
    mounts: dict[str, tuple[str, str]] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return mounts
    for line in lines:
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, point, options = fields[3], _unescape(fields[4]), fields[5] if len(fields) > 5 else ""
        if "rw" not in options.split(","):
            continue
        if tail[0] == "cgroup2":
            mounts.setdefault("cgroup2", (point, root))
        elif tail[0] == "cgroup":
            for option in tail[2].split(","):
                if option in ("memory", "pids"):
                    mounts.setdefault(option, (point, root))
    return mounts


def _group_dir(mount: tuple[str, str], path: str) -> Path:
    point, root = mount
    relative = path[len(root):] if root != "/" and path.startswith(root) else path
    return Path(point) / relative.lstrip("/")


def _unescape(field: str) -> str:
    # mountinfo writes spaces and the like as octal escapes.
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _keyed(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                values[key] = int(value)
    except OSError:
        pass
    return values


def _number(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _try_write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError:
        pass


def _try_rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
