"""The sandbox: hostile programs are contained under bubblewrap and under the fallback, nothing outlives its run,
and the isolation actually used is the one reported. bwrap is installed by `make test` (CI runs as root), so
these tests do not skip."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from helpers import write_jsonl
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.errors import UsageError
from codescaler_cli.evaluation.sandbox import (
    DISK,
    EXITED,
    MEMORY,
    PROCESSES,
    TIMEOUT,
    Limits,
    Program,
    Sandbox,
    Stopped,
)

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
    # Stopped by the process limit, and the kernel counted no more than it (an uncapped bomb also times out).
    assert result.outcome == PROCESSES, (result.outcome, result.detail)
    assert result.peak_processes is not None and result.peak_processes <= 20, result.peak_processes


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
    assert result.outcome == DISK and result.returncode != 0
    assert "File too large" in result.stderr
    assert len(result.stdout) <= 1024 * 1024


# A grandchild leaves the session and execs a long sleep under a unique argument (with the interpreter itself: the
# sandbox shows no other program), and says so through a pipe before its parent ends.
ESCAPING_GRANDCHILD = """
import os, sys
read, write = os.pipe()
os.set_inheritable(write, True)
if os.fork() == 0:
    os.setsid()
    program = f"import os, time; os.write({write}, b'up'); time.sleep(60)"
    os.execv(sys.executable, [sys.executable, "-c", program, "MARKER"])
os.close(write)
print(os.read(read, 2).decode())
"""


def test_nothing_outlives_its_run(sandbox: Sandbox) -> None:
    marker = f"codescaler-test-{uuid.uuid4().hex}"
    result = run(sandbox, ESCAPING_GRANDCHILD.replace("MARKER", marker))
    assert result.stdout == "up\n", result.stderr
    time.sleep(0.3)
    survivors = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
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
    # What the sandbox shows of the host is read-only, and a host directory everyone may write to (not under /tmp,
    # which is private anyway) is not even there.
    outside = Path(tempfile.mkdtemp(prefix="codescaler-test-", dir="/var/tmp"))
    try:
        os.chmod(outside, 0o777)
        target = outside / "escaped.txt"
        code = (f"for path in ('/usr/lib/escaped.txt', '/escaped.txt', '/etc/escaped.txt', {str(target)!r}):\n"
                "    try:\n        open(path, 'w').write('x')\n        print('wrote', path)\n"
                "    except OSError as exc:\n        print(exc.strerror)")
        result = run(bwrap_box, code)
        assert result.stdout.split("\n")[:4] == ["Read-only file system"] * 3 + ["No such file or directory"]
        assert not target.exists()
    finally:
        shutil.rmtree(outside, ignore_errors=True)


SECRET = f"codescaler-secret-{uuid.uuid4().hex}"
# Reads every path it is given and prints what it could read.
READ_ALL = """
for path in PATHS:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            print(path, handle.read(200).replace("\\n", " "))
    except OSError as exc:
        print(path, "unreadable:", exc.strerror)
"""


def test_bwrap_shows_no_host_file_outside_the_program(bwrap_box: Sandbox) -> None:
    # A world-readable file in a world-readable host directory, this project's files and the machine's own.
    outside = Path(tempfile.mkdtemp(prefix="codescaler-test-", dir="/var/tmp"))
    try:
        os.chmod(outside, 0o755)
        secret = outside / "problems.jsonl"
        secret.write_text(SECRET)
        os.chmod(secret, 0o644)
        project = Path(__file__).resolve().parents[1]
        paths = [str(secret), str(project / "README.md"), str(Path(__file__).resolve()), "/etc/passwd",
                 "/etc/hostname", str(Path.home() / ".bashrc")]
        code = READ_ALL.replace("PATHS", repr(paths))
        result = run(bwrap_box, code)
        assert len(result.stdout.splitlines()) == len(paths), result.stderr
        assert all("unreadable: No such file or directory" in line for line in result.stdout.splitlines()), \
            result.stdout
        assert SECRET not in result.stdout
        # The control: the fallback, which shows the host, does read the secret (the program is not vacuous).
        with Sandbox(isolation="fallback", jobs=1) as fallback:
            assert SECRET in run(fallback, code).stdout
    finally:
        shutil.rmtree(outside, ignore_errors=True)


CONNECT_ALL = """
import socket, sys
for address in ADDRESSES:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(address)
        print("connected")
    except OSError as exc:
        print("refused:", exc.strerror)
"""


def test_bwrap_reaches_no_host_unix_socket(bwrap_box: Sandbox) -> None:
    # A socket file everyone may connect to, and an abstract socket (no file at all).
    outside = Path(tempfile.mkdtemp(prefix="codescaler-test-", dir="/var/tmp"))
    servers = []
    try:
        os.chmod(outside, 0o755)
        addresses: list[str | bytes] = [str(outside / "service.sock"), f"\0codescaler-test-{uuid.uuid4().hex}"]
        for address in addresses:
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(address)
            server.listen(8)
            servers.append(server)
        os.chmod(outside / "service.sock", 0o777)
        code = CONNECT_ALL.replace("ADDRESSES", repr(addresses))
        result = run(bwrap_box, code)
        assert result.stdout.splitlines() == ["refused: No such file or directory", "refused: Connection refused"], \
            result.stdout + result.stderr
        with Sandbox(isolation="fallback", jobs=1) as fallback:  # the control: outside bwrap both connect
            assert run(fallback, code).stdout.splitlines() == ["connected", "connected"]
    finally:
        for server in servers:
            server.close()
        shutil.rmtree(outside, ignore_errors=True)


def test_bwrap_shows_only_the_interpreter_its_libraries_and_the_program(bwrap_box: Sandbox) -> None:
    code = ("import json, os\nprint(json.dumps({path: sorted(os.listdir(path)) for path in "
            "('/', '/etc', '/usr', '/usr/bin', '.')}))")
    listing = json.loads(run(bwrap_box, code).stdout)
    assert set(listing["/"]) <= {"codescaler", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sandbox",
                                 "tmp", "usr"}, listing["/"]
    assert set(listing["/etc"]) <= {"ld.so.cache", "alternatives"}, listing["/etc"]
    assert set(listing["/usr"]) <= {"bin", "lib", "lib32", "lib64", "libx32", "local"}, listing["/usr"]
    assert all(name.startswith("python3") for name in listing["/usr/bin"]), listing["/usr/bin"]
    assert listing["."] == ["main.py"]


def test_candidates_can_import_numpy(bwrap_box: Sandbox) -> None:
    # LiveCodeBench's and EvalPlus's environments have numpy; `make install` puts Debian's into the system python.
    result = run(bwrap_box, "import numpy\nprint(int(numpy.arange(4).sum()))")
    assert result.stdout == "6\n", result.stderr
    assert "numpy" in bwrap_box.interpreter.describe() and "no numpy" not in bwrap_box.interpreter.describe()


def test_the_interpreter_is_chosen_and_reported() -> None:
    with Sandbox(isolation="bwrap", jobs=1, python="/usr/bin/python3") as box:
        assert box.python == "/usr/bin/python3" and "/usr/bin/python3" in box.describe()
        result = run(box, "import sys\nprint(sys.executable)")
        assert result.stdout == "/usr/bin/python3\n", result.stderr
    with pytest.raises(UsageError, match="/nonexistent/python3"):
        Sandbox(python="/nonexistent/python3")


def test_eval_takes_the_interpreter_from_python_and_reports_it(tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "problems.jsonl", [{"id": "echo", "question": "Echo.",
                                                           "tests": [{"input": "a\n", "output": "a\n"}]}])
    candidates = write_jsonl(tmp_path / "candidates.jsonl", [{"id": "echo", "code": "print(input())"}])
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(candidates), "--problems", str(problems), "--python", "/usr/bin/python3",
                                 "--json", "-"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert "python /usr/bin/python3 (Python 3." in report["isolation_detail"] and report["statuses"]["passed"] == 1
    assert "/usr/bin/python3" in result.stderr  # the isolation line on stderr names it too
    missing = runner.invoke(app, ["eval", str(candidates), "--problems", str(problems), "--python", "/nonexistent/py"])
    assert missing.exit_code == 2 and "/nonexistent/py" in missing.stderr and "Traceback" not in missing.stderr


def test_the_mechanisms_in_force_are_named(bwrap_box: Sandbox) -> None:
    mechanisms = bwrap_box.mechanisms()
    assert mechanisms.isolation == "bwrap" and "tmpfs" in mechanisms.filesystem
    if os.geteuid() == 0:  # CI: control groups bound each program as a whole
        assert "cgroup" in mechanisms.memory and "cgroup" in mechanisms.processes, mechanisms
        assert "per program (cgroups)" in bwrap_box.describe()
    # `codescaler env` shows the same, found by starting a sandbox of its own.
    from codescaler_cli.environment import sandbox_info

    info = sandbox_info()
    assert info["works"] is True and info["isolation"] == "bwrap"
    assert {key: info[key] for key in ("memory", "processes", "filesystem", "interpreter")} == \
        {key: getattr(mechanisms, key) for key in ("memory", "processes", "filesystem", "interpreter")}


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
