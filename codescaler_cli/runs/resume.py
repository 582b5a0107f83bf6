"""Resuming an interrupted run: the settings a run was started with, and how far its output file got.

A run that writes `-o NAME` records its settings in a sidecar file, `.NAME.codescaler.json`, before writing any
record. `--resume` compares them with the new run's (and refuses, naming each difference, when they differ),
then reads NAME: the problems complete in it are kept and skipped, a partial last line (a SIGKILL mid-write) and
the records of an unfinished last problem are cut off, and the run goes on appending from there. Problems are
matched against the input in order, by size and id (or question), so an output file of another input is refused
rather than silently extended.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, SettingsChanged, UsageError, write_error

# 2: settings named by the configs' fingerprints (1 named them by command-line flags).
SETTINGS_FORMAT = 2


def settings_path(output: Path) -> Path:
    """The sidecar holding a run's settings, next to its output file."""
    return output.with_name(f".{output.name}.codescaler.json")


def samples_path(output: Path) -> Path:
    """Where `generate` keeps drawn samples until their problems are scored into the output file."""
    return output.with_name(f".{output.name}.samples.jsonl")


def write_settings(output: Path, command: str, settings: dict[str, Any], *,
                   state: dict[str, Any] | None = None) -> None:
    """Record a run's settings (atomically: a reader never sees half a file).

    `state` is what a command keeps about its progress beside the settings (e.g. `eval`'s seconds so far); it is
    not compared by `check_settings`.
    """
    path = settings_path(output)
    partial = path.with_name(path.name + ".partial")
    document: dict[str, Any] = {"format": SETTINGS_FORMAT, "command": command, "settings": settings}
    if state is not None:
        document["state"] = state
    try:
        partial.write_text(json.dumps(document, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass  # the error that matters is the write's
        raise write_error(f"{path} (the run's settings, kept for --resume)", exc) from None


def read_settings(output: Path) -> dict[str, Any] | None:
    """The settings a previous run recorded for `output`, or None when it recorded none."""
    path = settings_path(output)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}, the settings of the run that wrote {output}: {exc}",
                         f"run without --resume to start over (this replaces {output})") from None
    if not isinstance(document, dict) or not isinstance(document.get("settings"), dict):
        raise UsageError(f"{path} is not a codescaler settings file",
                         f"run without --resume to start over (this replaces {output})")
    return document


def check_settings(output: Path, command: str, settings: dict[str, Any],
                   recorded: dict[str, Any] | None) -> None:
    """Refuse to resume when the recorded run differs from this one: SettingsChanged names every difference."""
    if recorded is None:
        return
    if recorded.get("format") != SETTINGS_FORMAT:
        raise UsageError(f"cannot resume {output}: its settings file was written by another version of codescaler",
                         f"run without --resume to start over (this replaces {output})")
    if recorded.get("command") != command:
        raise UsageError(f"cannot resume {output}: it was written by `codescaler {recorded.get('command')}`, "
                         f"not `codescaler {command}`", "use another --output, or run without --resume to replace it")
    before = recorded["settings"]
    differences = [(name, before.get(name), settings.get(name)) for name in sorted(set(before) | set(settings))
                   if before.get(name) != settings.get(name)]
    if differences:
        raise SettingsChanged(output, differences)


@dataclass
class Progress:
    """How far an output file got: complete problems and their records, and what was cut off to repair it."""

    groups: int = 0
    records: int = 0
    dropped_records: int = 0
    dropped_partial_line: bool = False

    def describe(self, path: Path, total_groups: int) -> str:
        text = f"resuming: {self.groups} of {total_groups} problems are complete in {path}"
        repairs = []
        if self.dropped_partial_line:
            repairs.append("a partial last line")
        if self.dropped_records:
            repairs.append(f"{self.dropped_records} records of an unfinished problem")
        if repairs:
            text += f" (cut off {' and '.join(repairs)})"
        return text


def repair_output(path: Path, group_hashes: Sequence[int], group_sizes: Sequence[int],
                  key_of: Callable[[dict[str, Any]], int], *, keep: int | None = None) -> Progress:
    """Find the complete problems at the start of `path`, cut the file after the last one, and say how far it got.

    `group_hashes[i]`/`group_sizes[i]` describe the input's i-th problem; `key_of(record)` gives an output record's
    problem hash. `keep` cuts after that many problems even when more are complete. Raises InputError (naming the
    line) when the file holds records of other problems or a line that is not JSON before its last line.
    """
    progress = Progress()
    if not path.exists():
        return progress
    good_offset = 0
    in_group = 0
    offset = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if keep is not None and progress.groups >= keep:
                break
            offset += len(raw)
            if not raw.endswith(b"\n"):
                # Only a write cut short (SIGKILL, a full disk) leaves a line without its newline.
                progress.dropped_partial_line = True
                break
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                raise InputError(str(path), number, "not a JSON record, so this is not an output file --resume "
                                 "can continue", f"run without --resume to start over (this replaces {path})") \
                    from None
            if not isinstance(record, dict):
                raise InputError(str(path), number, "not a JSON object", "run without --resume to start over")
            group = progress.groups
            if group >= len(group_sizes) or key_of(record) != group_hashes[group]:
                raise InputError(str(path), number,
                                 f"this record belongs to another problem than the input's problem {group + 1}: "
                                 "the output file was written from another input",
                                 "resume with the input this file was written from, or use another --output")
            in_group += 1
            if in_group == group_sizes[group]:
                progress.groups += 1
                progress.records += in_group
                in_group = 0
                good_offset = offset
    progress.dropped_records = in_group
    if os.path.getsize(path) > good_offset:
        try:
            with open(path, "r+b") as handle:
                handle.truncate(good_offset)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise write_error(f"{path} (cutting off its unfinished problem to resume)", exc) from None
    return progress


def read_sample_groups(path: Path, problems: int) -> list[list[dict[str, Any]]]:
    """The sample records of the first `problems` problems of a samples file (already repaired), one list each."""
    groups: list[list[dict[str, Any]]] = []
    if problems == 0 or not path.exists():
        return groups
    with open(path, "rb") as handle:
        for raw in handle:
            if not raw.strip():
                continue
            record = json.loads(raw)
            if not groups or record.get("id") != groups[-1][0].get("id"):
                if len(groups) == problems:
                    break
                groups.append([])
            groups[-1].append(record)
    return groups
