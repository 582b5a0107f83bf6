"""The sandbox: hostile programs are contained under bubblewrap and under the fallback, nothing outlives its run,
and the isolation actually used is the one reported. bwrap is installed by `make test` (CI runs as root), so
these tests do not skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from codescaler_cli.errors import UsageError
from codescaler_cli.evaluation.sandbox import EXITED, MEMORY, TIMEOUT, Limits, Program, Sandbox, Stopped

QUICK = Limits(timeout=1.0, file_bytes=1024 * 1024)


@pytest.fixture(scope="module", params=["bwrap", "fallback"])
def sandbox(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    with Sandbox(isolation=request.param, jobs=2) as box:
        assert box.isolation == request.param
        yield box


def run(box: Sandbox, code: str, stdin: str = "", limits: Limits = QUICK):  # type: ignore[no-untyped-def]
    return box.run(Program({"main.py": code}, stdin=stdin, limits=limits))


def test_an_honest_program_reads_stdin_and_writes_stdout(sandbox: Sandbox) -> None:
    result = run(sandbox, "a, b = map(int, input().split())\nprint(a + b)\nopen('scratch.txt', 'w').write('ok')",
                 stdin="2 40\n")
    assert (result.outcome, result.returncode, result.stdout) == (EXITED, 0, "42\n")
    assert result.isolation == sandbox.isolation


def test_the_environment_is_scrubbed_and_the_directory_fresh(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.setenv("CODESCALER_SECRET", "hunter2")
    result = run(sandbox, "import os, json\nprint(json.dumps([sorted(os.environ), os.listdir('.'), os.getuid()]))")
    assert "hunter2" not in result.stdout and "CODESCALER_SECRET" not in result.stdout
    assert '["main.py"]' in result.stdout
    if os.geteuid() == 0:
        assert not result.stdout.rstrip().endswith(", 0]"), "programs must not run as root"


def test_an_infinite_loop_times_out(sandbox: Sandbox) -> None:
    started = time.perf_counter()
    result = run(sandbox, "while True:\n    pass")
    assert result.outcome == TIMEOUT
    assert time.perf_counter() - started < 10


def test_a_sleeping_program_is_stopped_by_the_wall_clock(sandbox: Sandbox) -> None:
    result = run(sandbox, "import time\ntime.sleep(60)")
    assert result.outcome == TIMEOUT and result.seconds < 10


def test_a_fork_bomb_is_capped(sandbox: Sandbox) -> None:
    started = time.perf_counter()
    result = run(sandbox, "import os\nwhile True:\n    os.fork()", limits=Limits(timeout=3.0, processes=20))
    assert time.perf_counter() - started < 15
    assert result.outcome in (EXITED, TIMEOUT)
    if result.outcome == EXITED:
        assert "BlockingIOError" in result.stderr


def test_runs_in_quick_succession_keep_their_whole_process_limit(sandbox: Sandbox) -> None:
    # Every bwrap run leaves a zombie of its uid for the machine's PID 1 to reap, which a container's PID 1 does
    # slowly; zombies count against the process limit, so each run needs a uid no earlier run used.
    code = "import os\nfor _ in range(3):\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n" \
           "    os.waitpid(pid, 0)\nprint('ok')"
    results = [run(sandbox, code, limits=Limits(timeout=5.0, processes=8)) for _ in range(30)]
    failed = [r for r in results if r.outcome != EXITED or r.stdout != "ok\n"]
    assert not failed, failed[0].stderr[-500:]


def test_a_50_gb_allocation_is_refused(sandbox: Sandbox) -> None:
    result = run(sandbox, "data = bytearray(50 * 10**9)\nprint('allocated')")
    assert result.outcome == MEMORY and "allocated" not in result.stdout


def test_endless_output_is_cut_by_the_file_size_limit(sandbox: Sandbox) -> None:
    result = run(sandbox, "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)")
    assert result.outcome == EXITED and result.returncode != 0
    assert "File too large" in result.stderr
    assert len(result.stdout) <= 1024 * 1024


def test_nothing_outlives_its_run(sandbox: Sandbox) -> None:
    marker = f"{uuid.uuid4().int % 10**6}.{os.getpid()}"
    # A grandchild leaves the session and execs a long sleep under a unique argument.
    code = ("import os\nif os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', '" + marker + "'])\n"
            "print('parent done')")
    result = run(sandbox, code)
    assert result.stdout == "parent done\n"
    time.sleep(0.3)
    survivors = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert survivors.stdout.strip() == "", "a process escaped the sandbox's cleanup"


@pytest.mark.parametrize("isolation", ["bwrap", "fallback"])
def test_an_interrupted_map_kills_the_running_programs_and_starts_no_more(isolation: str) -> None:
    slow = Program({"main.py": "import time\ntime.sleep(60)"}, limits=Limits(timeout=120.0))

    def candidate() -> object:  # as eval's tasks: several programs (tests) one after another
        return [box.run(slow) for _ in range(3)]

    with Sandbox(isolation=isolation, jobs=2) as box:
        results = box.map([lambda: box.run(Program({"main.py": "print(1)"}, limits=QUICK)), candidate, candidate])
        assert next(results).stdout == "1\n"
        time.sleep(1.0)  # the slow programs are running
        started = time.perf_counter()
        results.close()  # what an interrupt does to the loop consuming the results
        assert time.perf_counter() - started < 20, "the interrupt waited for the running programs"
        with pytest.raises(Stopped):
            box.run(slow)


def test_parallel_runs_keep_their_order(sandbox: Sandbox) -> None:
    programs = [Program({"main.py": f"import time\ntime.sleep({0.3 - i * 0.1:.1f})\nprint({i})"}, limits=QUICK)
                for i in range(3)]
    assert [r.stdout for r in sandbox.run_many(programs)] == ["0\n", "1\n", "2\n"]


# ----- what only bubblewrap contains


@pytest.fixture(scope="module")
def bwrap_box():  # type: ignore[no-untyped-def]
    with Sandbox(isolation="bwrap", jobs=1) as box:
        yield box


def test_bwrap_makes_the_filesystem_read_only_outside_the_work_directory(bwrap_box: Sandbox) -> None:
    # Not under /tmp: inside the sandbox /tmp is a private tmpfs. Everyone may write to this directory, and
    # still the program cannot.
    outside = Path(tempfile.mkdtemp(prefix="codescaler-test-", dir="/var/tmp"))
    try:
        os.chmod(outside, 0o777)
        target = outside / "escaped.txt"
        result = run(bwrap_box, f"open({str(target)!r}, 'w').write('x')")
        assert result.returncode != 0 and "Read-only file system" in result.stderr
        assert not target.exists()
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def test_bwrap_gives_each_program_a_private_tmp(bwrap_box: Sandbox) -> None:
    name = f"/tmp/codescaler-sandbox-test-{uuid.uuid4().hex}"
    result = run(bwrap_box, f"open({name!r}, 'w').write('x')\nprint('wrote')")
    assert result.stdout == "wrote\n"
    assert not os.path.exists(name)


def test_bwrap_has_no_network(bwrap_box: Sandbox) -> None:
    result = run(bwrap_box, "import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=5)")
    assert result.returncode != 0 and "Network is unreachable" in result.stderr


def test_the_fallback_says_what_it_does_not_contain() -> None:
    with Sandbox(isolation="fallback", jobs=1) as box:
        assert box.describe().startswith("fallback")
        assert "network" in box.describe()


def test_requiring_bwrap_where_it_is_missing_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UsageError, match="bubblewrap"):
        Sandbox(isolation="bwrap")
    with Sandbox(isolation="auto", jobs=1) as box:
        assert box.isolation == "fallback" and "not installed" in box.describe()


def test_an_unknown_isolation_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        Sandbox(isolation="docker")
