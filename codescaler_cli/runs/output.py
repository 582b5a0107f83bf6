"""The output file of a long run (`-o FILE`): opened fresh or resumed, grown problem by problem, with the run's
settings and progress recorded beside it, and the hint that says how to continue it when the run stops early.

A fresh run leaves the file (and an earlier run's records in it) alone until it writes its first records: a run
that fails while loading its models costs nothing. A resumed run first checks its settings against the recorded
ones, then repairs the file (see `resume`). Every write is whole problems, held against SIGINT/SIGTERM, so the
file always ends with a complete problem. Used as a context manager by the runs: on the way out, an error or an
interrupt gets the hint (how many problems are complete, the command that continues the run), which the CLI's
error layer prints. A file that cannot be written is bad usage (exit 2: a read-only or missing directory) or a
storage failure (exit 1: a full disk), never a crash; what reached the file stays, and --resume continues it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from ..errors import CodescalerError, UsageError, write_error
from ..records import dumps
from .resume import (
    Progress,
    check_settings,
    read_settings,
    repair_output,
    samples_path,
    settings_path,
    write_settings,
)
from .signals import Interrupted, uninterrupted

NO_OUTPUT_HINT = "to be able to resume a long run, write it with -o FILE and continue it with --resume"


class RunOutput:
    """`-o FILE` of one run of `command` (None: the records go only where the caller sends them).

    `resume`: continue the file an earlier run of the same settings was writing; `resumable` False: a file no run
    can continue (no settings are recorded beside it, and stopping early gives no hint). `reads`: the run's input file,
    which the output must not be. `continue_with`: the command line that resumes this run, for hints; `again`:
    what else resuming needs (e.g. the same candidates on standard input).
    """

    def __init__(self, path: Path | str | None, *, command: str, resume: bool = False, resumable: bool = True,
                 reads: Path | str | None = None, continue_with: str = "the same command with --resume",
                 again: str = "") -> None:
        self.path = Path(path) if path is not None else None
        self.command = command
        self.resume = resume
        self.resumable = resumable
        self.continue_with = continue_with
        self.again = again
        self.total = 0  # problems in the run
        self.done = Progress()  # complete in the file before this run
        self.written = 0  # problems this run added
        self.samples_saved = 0  # problems whose samples wait beside the file (`generate`)
        self.recorded: dict[str, Any] | None = None
        self._settings: dict[str, Any] | None = None
        self._state: dict[str, Any] | None = None
        self._file: IO[str] | None = None
        self._started = False
        if resume and self.path is None:
            raise UsageError("--resume continues the file given with --output, and no --output was given",
                             "add -o FILE (the file an earlier run was writing)")
        if self.path is not None and reads is not None and str(reads) != "-" \
                and self.path.resolve() == Path(reads).resolve():
            raise UsageError(f"--output {self.path} is the input file: the run would overwrite what it reads",
                             "write the output to another file")
        if resume and self.path is not None:
            self.recorded = read_settings(self.path)
            if self.recorded is None and self.has_content:
                raise UsageError(f"cannot resume {self.path}: no record of the run that wrote it (its settings file "
                                 f"is missing)", f"run without --resume to start over (this replaces {self.path})")

    # -- the run's start -------------------------------------------------------------------------------------------

    @property
    def has_content(self) -> bool:
        return self.path is not None and self.path.exists() and self.path.stat().st_size > 0

    def recorded_setting(self, name: str) -> Any:
        """A setting the resumed run recorded (e.g. the seed it drew), None when there is none."""
        return (self.recorded or {}).get("settings", {}).get(name)

    @property
    def recorded_state(self) -> dict[str, Any] | None:
        state = (self.recorded or {}).get("state")
        return state if isinstance(state, dict) else None

    def start(self, settings: dict[str, Any] | None, *, hashes: Sequence[int] = (), sizes: Sequence[int] = (),
              key_of: Callable[[dict[str, Any]], int] | None = None) -> Progress:
        """Begin the run: check a resumed run's settings (SettingsChanged names every difference) and repair its
        file, or check that a fresh one can be written. Returns how far the file got (nothing, when fresh).

        `settings` (the configs' fingerprints) are recorded beside the file; None: the file cannot be resumed.
        `hashes[i]`/`sizes[i]` describe the input's i-th problem, `key_of(record)` an output record's problem.
        """
        self.total = len(sizes)
        self._settings = settings if self.resumable else None
        if self.path is None:
            self._started = True
            return self.done
        if self.resume:
            check_settings(self.path, self.command, settings or {}, self.recorded)
            assert key_of is not None
            self.done = repair_output(self.path, hashes, sizes, key_of)
            self._state = self.recorded_state
            self.open()
        else:
            try:  # fail now, not after the run, when the file cannot be written (without touching what it holds)
                with open(self.path, "a", encoding="utf-8"):
                    pass
            except OSError as exc:
                raise write_error(f"--output {self.path}", exc) from None
        self._started = True
        return self.done

    def describe_resume(self) -> str:
        return self.done.describe(self.path, self.total) if self.path is not None else ""

    def open(self) -> None:
        """Take the file over (a fresh run empties it, and forgets an earlier run's samples) and record the
        settings; the first write does it when the run has not."""
        if self._file is not None or self.path is None:
            return
        if not self.resume:
            samples_path(self.path).unlink(missing_ok=True)
        try:
            self._file = open(self.path, "a" if self.resume else "w", encoding="utf-8")
        except OSError as exc:
            raise write_error(f"--output {self.path}", exc) from None
        if self._settings is not None:
            write_settings(self.path, self.command, self._settings, state=self._state)
        else:
            settings_path(self.path).unlink(missing_ok=True)  # not a file --resume can continue

    # -- writing ---------------------------------------------------------------------------------------------------

    def write(self, problems: Sequence[Sequence[dict[str, Any]]], *, state: dict[str, Any] | None = None,
              also: Callable[[], None] | None = None) -> None:
        """Append whole problems' records (and record `state`, the run's progress, beside them); `also` runs in
        the same stretch that SIGINT/SIGTERM wait for (e.g. printing the problems to stdout)."""
        # Serialised before the protected section, so a signal waits only for the writes themselves.
        text = "".join(dumps(record) + "\n" for records in problems for record in records) \
            if self.path is not None else ""
        with uninterrupted():
            if self.path is not None:
                self.open()
                assert self._file is not None
                try:
                    self._file.write(text)
                    self._file.flush()
                except OSError as exc:
                    # Part of the text may have reached the file: --resume cuts a partial line or problem off.
                    raise write_error(f"--output {self.path}", exc) from None
                if state is not None:
                    self.save_state(state)
            self.written += len(problems)
            if also is not None:
                also()

    def save_state(self, state: dict[str, Any]) -> None:
        """Record the run's progress beside the settings (kept for a resumed run, never compared)."""
        self._state = state
        if self.path is not None and self._settings is not None:
            self.open()
            write_settings(self.path, self.command, self._settings, state=state)

    def done_records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line number, record) of the records of the problems complete before this run, in file order."""
        if self.path is None or not self.done.records:
            return
        seen = 0
        with open(self.path, encoding="utf-8", errors="surrogateescape") as handle:
            for number, line in enumerate(handle, start=1):
                if seen == self.done.records:
                    return
                if line.strip():
                    seen += 1
                    yield number, json.loads(line)  # repair_output read it already: it is a JSON object

    # -- the run's end ---------------------------------------------------------------------------------------------

    def hint(self) -> str:
        """What was saved and how to continue: for an error or an interrupt."""
        if self.path is None:
            return NO_OUTPUT_HINT
        complete = self.done.groups + self.written
        samples = ""
        if self.samples_saved > complete:
            saved = samples_path(self.path)
            samples = f" (the samples of {self.samples_saved} are saved in {saved}: `codescaler rank {saved}` scores them)"
        return (f"{complete} of {self.total} problems are complete in {self.path}{samples}; continue with: "
                f"{self.continue_with}{self.again}")

    def close(self, *, succeeded: bool = True) -> None:
        if succeeded and self._started:
            self.open()  # a run that wrote nothing still leaves its (empty) file and settings
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as exc:
                if succeeded:  # a failing run has its own error to tell; this one would only hide it
                    raise write_error(f"--output {self.path}", exc) from None

    def __enter__(self) -> RunOutput:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, traceback: object) -> None:
        try:
            self.close(succeeded=exc is None)
        except CodescalerError as failure:
            self._add_hint(failure)
            raise
        self._add_hint(exc)

    def _add_hint(self, exc: BaseException | None) -> None:
        if not self._started or self._settings is None:  # not begun, or not a run --resume can continue
            return
        if isinstance(exc, Interrupted) or (isinstance(exc, CodescalerError) and self.path is not None):
            exc.add_hint(self.hint())
