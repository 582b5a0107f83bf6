"""What of the host a program sees under bubblewrap: the interpreter, its standard library, the packages it may
import and the system libraries they load, all read-only, and nothing else. No home directories, no project
files, no problems file, no host sockets (/run, /var), no /tmp, /etc or /usr/bin of the host: the root is an empty
tmpfs into which only those paths are bound.

The interpreter is asked once (outside the sandbox) where its standard library and packages are; the system
library directories (/usr/lib and the like) are bound whole, because extension modules load shared libraries
from them (numpy its BLAS, through /etc/alternatives on Debian).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

# Shared libraries, and on Debian-like systems the system interpreter's standard library and packages.
SYSTEM_LIBRARY_DIRS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32", "/lib", "/lib64", "/lib32", "/libx32")
# What the dynamic loader reads: its cache, and the alternatives symlinks some libraries resolve through.
LOADER_FILES = ("/etc/ld.so.cache", "/etc/alternatives")

_PROBE = ("import json, sys\n"
          "try:\n    import numpy\n    numpy_version = numpy.__version__\nexcept Exception:\n    numpy_version = None\n"
          "print(json.dumps({'version': sys.version.split()[0], 'path': sys.path, 'executable': sys.executable,"
          " 'prefix': sys.prefix, 'base_prefix': sys.base_prefix, 'numpy': numpy_version}))")


@dataclass(frozen=True)
class Interpreter:
    """A Python interpreter as programs will run it: where it is, its version, and where it imports from."""

    executable: str
    version: str
    search_path: tuple[str, ...]  # sys.path with site-packages, as `python -I` has it
    prefix: str
    base_prefix: str
    numpy: str | None  # numpy's version, None when it cannot be imported

    def describe(self) -> str:
        numpy = f"numpy {self.numpy}" if self.numpy else "no numpy"
        return f"{self.executable} (Python {self.version}, {numpy})"


def probe_interpreter(python: str) -> Interpreter:
    """Ask `python` (run here, outside any sandbox) for its version and search path."""
    try:
        done = subprocess.run([python, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"cannot run the Python interpreter {python}: {exc}",
                         "give an interpreter that exists here, e.g. --python /usr/bin/python3") from None
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise UsageError(f"{python} is not a working Python interpreter ({detail})",
                         "give a Python 3 interpreter, e.g. --python /usr/bin/python3") from None
    return Interpreter(executable=os.path.abspath(python), version=found["version"],
                       search_path=tuple(entry for entry in found["path"] if entry),
                       prefix=found["prefix"], base_prefix=found["base_prefix"], numpy=found["numpy"])


def view_arguments(interpreter: Interpreter, extra_read_only: dict[str, str]) -> list[str]:
    """bwrap arguments that build the read-only part of the sandbox's filesystem.

    `extra_read_only` maps host paths to where the sandbox sees them (codescaler's harness).
    """
    arguments: list[str] = []
    bound: list[str] = []

    def bind(source: str, destination: str) -> None:
        if any(destination == done or destination.startswith(done.rstrip("/") + "/") for done in bound):
            return
        arguments.extend(["--ro-bind", source, destination])
        bound.append(destination)

    for directory in SYSTEM_LIBRARY_DIRS:
        if os.path.islink(directory):
            arguments.extend(["--symlink", os.readlink(directory), directory])
        elif os.path.isdir(directory):
            bind(directory, directory)
    for path in LOADER_FILES:
        if os.path.exists(path):
            bind(path, path)
    executable = interpreter.executable
    real = os.path.realpath(executable)
    bind(real, real)
    if real != executable:
        # Bound at the path programs are started with too, so sys.executable names a file that exists.
        arguments.extend(["--ro-bind", real, executable])
    for config in (Path(executable).parent / "pyvenv.cfg", Path(executable).parent.parent / "pyvenv.cfg"):
        if config.is_file():  # a virtual environment: site needs it to find its packages
            bind(str(config), str(config))
    for library in _linked_libraries(real):
        bind(os.path.dirname(library), os.path.dirname(library))
    for entry in interpreter.search_path:
        if os.path.exists(entry):
            bind(entry, entry)
    for source, destination in extra_read_only.items():
        bind(source, destination)
    return arguments


def _linked_libraries(executable: str) -> list[str]:
    """Shared libraries the interpreter links outside the system directories (libpython of a shared build)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        done = subprocess.run([ldd, executable], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in done.stdout.splitlines():
        _, arrow, rest = line.partition("=>")
        path = rest.split("(")[0].strip() if arrow else ""
        if path.startswith("/") and not any(path.startswith(system + "/") for system in SYSTEM_LIBRARY_DIRS):
            found.append(path)
    return found
