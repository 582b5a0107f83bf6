"""Storage failures are not bugs: a full disk, a read-only filesystem or a corrupt cache ends no run as an
"internal error", and loses no result that was computed.

- a cache that cannot be opened or written is a warning, and the run goes on (without caching);
- a corrupt cache is named, skipped, and `codescaler cache clear` removes it;
- `-o` on a read-only filesystem is bad usage (exit 2); on a full one exit 1, with the hint that resumes the run,
  and `--resume` finishes it once there is room;
- stdout on a full device (/dev/full) is exit 1 with a one-line cause.

The filesystems are real: small tmpfs mounts the tests make and unmount (which needs root, as the CI has; a
developer without it sees these tests skipped).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import parse_jsonl, write_jsonl
from typer.testing import CliRunner

from codescaler_cli.cli import app
from codescaler_cli.runs.cache import Cache, cache_file

runner = CliRunner()


def _required() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """`tmpfs(name, size)`: a tmpfs of `size` (e.g. "64k") mounted at tmp_path/name, unmounted afterwards."""
    if os.geteuid() != 0:
        message = "mounting a small tmpfs needs root"
        if _required():
            pytest.fail(f"{message}, and CI requires these tests to run", pytrace=False)
        pytest.skip(message)
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        directory = tmp_path / name
        directory.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True)
        mounted.append(directory)
        return directory

    yield mount
    for directory in reversed(mounted):
        subprocess.run(["umount", "--lazy", str(directory)], check=True)


def remount(directory: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(directory)], check=True)


def fill(directory: Path) -> None:
    """Take every free byte of the filesystem at `directory`."""
    with open(directory / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass


def candidates(path: Path, problems: int = 20) -> Path:
    """Problems whose ranked records are a few kilobytes each, so a small filesystem fills part way."""
    return write_jsonl(path, [{"id": p, "question": f"Problem {p}: add {p} to x.",
                               "code": f"def f(x):\n    return x + {p + v}\n" + "# padding\n" * 200}
                              for p in range(problems) for v in range(2)])


def rank(path: Path, reward_dir: Path, *args: str) -> object:
    return runner.invoke(app, ["rank", str(path), "-r", str(reward_dir), "-f", "jsonl", "--max-length", "256",
                               *args])


# -- -o -------------------------------------------------------------------------------------------------------------

def test_output_on_a_full_filesystem_exits_1_with_the_resume_hint_and_resume_finishes(
        tmpfs: Callable[..., Path], reward_dir: Path, tmp_path: Path) -> None:
    path = candidates(tmp_path / "candidates.jsonl")
    reference = rank(path, reward_dir)
    assert reference.exit_code == 0, reference.stderr
    small = tmpfs("small", "64k")
    output = small / "ranked.jsonl"
    failed = rank(path, reward_dir, "-o", str(output))
    assert failed.exit_code == 1, failed.stderr
    assert f"error: cannot write --output {output}: No space left on device" in failed.stderr
    assert "internal error" not in failed.stderr and "Traceback" not in failed.stderr
    complete = int(failed.stderr.split(" of 20 problems are complete")[0].rsplit(" ", 1)[-1])
    assert 0 < complete < 20 and "--resume" in failed.stderr
    # What stdout got is the problems the file holds whole, and those are the reference's.
    assert failed.stdout == "".join(reference.stdout.splitlines(keepends=True)[: 2 * complete])
    remount(small, "size=4m")
    resumed = rank(path, reward_dir, "-o", str(output), "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert output.read_text(encoding="utf-8") == reference.stdout


def test_output_on_a_read_only_filesystem_is_bad_usage_fresh_or_resumed(tmpfs: Callable[..., Path],
                                                                         reward_dir: Path, tmp_path: Path) -> None:
    path = candidates(tmp_path / "candidates.jsonl", problems=3)
    place = tmpfs("place", "4m")
    output = place / "ranked.jsonl"
    assert rank(path, reward_dir, "-o", str(output)).exit_code == 0
    lines = output.read_bytes().splitlines(keepends=True)
    output.write_bytes(b"".join(lines[:3]))  # the last problem unfinished: resuming must cut it off
    remount(place, "ro")
    resumed = rank(path, reward_dir, "-o", str(output), "--resume")
    assert resumed.exit_code == 2, resumed.stderr
    assert f"cannot write {output}" in resumed.stderr and "Read-only file system" in resumed.stderr
    assert "internal error" not in resumed.stderr
    fresh = runner.invoke(app, ["extract", str(path), "-o", str(place / "new.jsonl")])
    assert fresh.exit_code == 2 and "Read-only file system" in fresh.stderr and fresh.stdout == ""


def test_stdout_on_a_full_device_is_a_one_line_error(tmp_path: Path) -> None:
    path = candidates(tmp_path / "candidates.jsonl", problems=3)
    for output_format in ("jsonl", "json"):
        with open("/dev/full", "w") as full:
            result = subprocess.run([sys.executable, "-m", "codescaler_cli", "extract", str(path), "-f", output_format],
                                    stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("error: cannot write to standard output: No space left on device"), \
            result.stderr
        assert "internal error" not in result.stderr and "Exception ignored" not in result.stderr


# -- --cache --------------------------------------------------------------------------------------------------------

def test_a_cache_on_a_full_disk_is_a_warning_and_the_run_goes_on(tmpfs: Callable[..., Path], reward_dir: Path,
                                                                  tmp_path: Path) -> None:
    path = candidates(tmp_path / "candidates.jsonl", problems=3)
    reference = rank(path, reward_dir)
    disk = tmpfs("disk", "1m")
    with Cache(disk / "cache"):  # a cache another run holds open (so its log exists)...
        fill(disk)  # ...on a disk that then fills up
        result = rank(path, reward_dir, "--cache", str(disk / "cache"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == reference.stdout  # every score computed reached stdout
    assert f"warning: cannot write to the cache {cache_file(disk / 'cache')}: database or disk is full" \
        in result.stderr
    assert "this run goes on, without caching what it computes" in result.stderr
    # A directory the cache cannot even be made in: the same, without a cache.
    readonly = tmpfs("readonly", "64k")
    remount(readonly, "ro")
    result = rank(path, reward_dir, "--cache", str(readonly / "cache"))
    assert result.exit_code == 0 and result.stdout == reference.stdout, result.stderr
    assert "warning: cannot open the cache" in result.stderr and "this run goes on without it" in result.stderr


def _corrupt(directory: Path) -> None:
    """Overwrite the second page of the cache database (the scores table's root) with noise."""
    database = cache_file(directory)
    with open(database, "r+b") as handle:
        handle.seek(4096 + 64)
        handle.write(random.Random(0).randbytes(3000))


def test_a_corrupt_cache_is_named_skipped_and_removed_by_cache_clear(reward_dir: Path, tmp_path: Path) -> None:
    path = candidates(tmp_path / "candidates.jsonl", problems=3)
    directory = tmp_path / "cache"
    first = rank(path, reward_dir, "--cache", str(directory))
    assert first.exit_code == 0, first.stderr
    with Cache(directory) as cache:  # enough rows that the scores table's root is an interior page
        cache.put_scores([(i.to_bytes(32, "big"), float(i), False) for i in range(3000)])
    _corrupt(directory)
    database = cache_file(directory)

    result = rank(path, reward_dir, "--cache", str(directory))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == first.stdout  # scored again, as if there were no cache
    assert f"warning: the cache {database} is corrupt (database disk image is malformed); this run goes on " \
           f"without it (`codescaler cache clear {directory}` removes it)" in result.stderr

    info = runner.invoke(app, ["cache", "info", str(directory)])
    assert info.exit_code == 1 and f"error: the cache {database} is corrupt" in info.stderr, info.stderr
    assert f"codescaler cache clear {directory}" in info.stderr and "internal error" not in info.stderr
    cleared = runner.invoke(app, ["cache", "clear", str(directory), "--only", "scores"])
    assert cleared.exit_code == 0, cleared.stderr
    assert f"the cache {database} is corrupt" in cleared.stderr and "removed it" in cleared.stderr
    assert not database.exists()
    # The directory works as a cache again.
    again = rank(path, reward_dir, "--cache", str(directory))
    assert again.exit_code == 0 and again.stdout == first.stdout and "is corrupt" not in again.stderr, again.stderr
    assert runner.invoke(app, ["cache", "info", str(directory), "--json"]).exit_code == 0


def test_a_file_that_is_not_a_database_is_a_corrupt_cache(reward_dir: Path, tmp_path: Path) -> None:
    path = candidates(tmp_path / "candidates.jsonl", problems=2)
    directory = tmp_path / "cache"
    directory.mkdir()
    cache_file(directory).write_bytes(random.Random(1).randbytes(50_000))
    result = rank(path, reward_dir, "--cache", str(directory))
    assert result.exit_code == 0 and parse_jsonl(result.stdout), result.stderr
    assert "is corrupt (file is not a database)" in result.stderr
    cleared = runner.invoke(app, ["cache", "clear", str(directory)])
    assert cleared.exit_code == 0 and not cache_file(directory).exists(), cleared.stderr
