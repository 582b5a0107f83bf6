"""The examples in the README and in docs/: finding the code blocks, the markers that exempt one, and the commands.

Every fenced block tagged `sh` or `python` is an example, runnable by default. An HTML comment on the line just
before the fence marks an exception, with its reason:

    <!-- docs-test: skip REASON -->    not run here (needs a GPU, the hub, servers elsewhere, or minutes)
    <!-- docs-test: vllm -->           runs, but needs the vLLM engine (the test is marked `vllm`)

tests/test_docs_examples.py runs the examples; tests/test_docs.py checks the options every command line names.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUNNABLE_LANGUAGES = ("sh", "python")

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)(?P<rest>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<kind>\S+)\s*(?P<reason>.*?)\s*-->\s*$")
_EXPECTED_STATUS = re.compile(r"#.*\bexit status (\d+)(?::\s*(.*?))?\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page: where it is, its language and text, and its docs-test marker."""

    path: Path
    line: int  # of the opening fence, from 1
    end: int  # of the closing fence
    language: str
    text: str
    skip: str | None = None  # the reason it is not run, when it is not
    needs_vllm: bool = False

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.language in RUNNABLE_LANGUAGES and self.skip is None


def pages() -> list[Path]:
    """The README and every page of the site."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _fence(line: str) -> re.Match[str] | None:
    """An opening fence (CommonMark: a backtick fence's info string holds no backtick, so ```` ``` ```` is text)."""
    match = _FENCE.match(line)
    if match and match["fence"].startswith("`") and "`" in match["rest"]:
        return None
    return match


def _closes(line: str, delimiter: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(delimiter) and set(stripped) == {delimiter[0]}


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the marker on the line before each, if any.

    A marker that is not `skip REASON` or `vllm`, or one not followed by a fence, is an error: a typo must not
    silently exempt an example.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    number = 0
    while number < len(lines):
        fence = _fence(lines[number])
        if not fence:
            marker = _MARKER.match(lines[number])
            if marker and (number + 1 >= len(lines) or not _fence(lines[number + 1])):
                raise ValueError(f"{path}:{number + 1}: a docs-test marker must stand on the line before a fence")
            number += 1
            continue
        indent, delimiter = len(fence["indent"]), fence["fence"]
        body: list[str] = []
        end = number + 1
        while end < len(lines) and not _closes(lines[end], delimiter):
            text = lines[end]
            body.append(text[indent:] if text[:indent].strip() == "" else text.lstrip())
            end += 1
        skip, needs_vllm = None, False
        marker = _MARKER.match(lines[number - 1]) if number else None
        if marker:
            if marker["kind"] == "skip" and marker["reason"]:
                skip = marker["reason"]
            elif marker["kind"] == "vllm" and not marker["reason"]:
                needs_vllm = True
            else:
                raise ValueError(f"{path}:{number}: unknown docs-test marker {lines[number - 1].strip()!r}: "
                                 "use <!-- docs-test: skip REASON --> or <!-- docs-test: vllm -->")
        found.append(Block(path, number + 1, end + 1, fence["lang"], "\n".join(body) + "\n", skip, needs_vllm))
        number = end + 1
    return found


def prose(path: Path) -> str:
    """A Markdown file without its fenced code blocks."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for block in blocks(path):
        for number in range(block.line - 1, min(block.end, len(lines))):
            lines[number] = ""
    return "\n".join(lines)


def command_lines(block: Block) -> list[str]:
    """A shell block's commands: backslash-continued lines and lines inside an open quote joined, blank and
    comment-only lines dropped."""
    commands: list[str] = []
    pending = ""
    for line in block.text.replace("\\\n", " ").splitlines():
        if not pending and (not line.strip() or line.strip().startswith("#")):
            continue
        pending = f"{pending}\n{line}" if pending else line.strip()
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quoted string goes on on the next line
            continue
        commands.append(pending)
        pending = ""
    if pending:
        raise ValueError(f"{block.where}: unclosed quote in {pending!r}")
    return commands


def expected_status(line: str) -> tuple[int, str]:
    """The exit status a command line's comment announces, and the part of the error message it quotes:
    `# exit status 2: bad.jsonl:1: malformed JSON` gives (2, "bad.jsonl:1: malformed JSON"); no comment, (0, "")."""
    match = _EXPECTED_STATUS.search(line)
    return (int(match.group(1)), match.group(2) or "") if match else (0, "")


def tokens(line: str) -> list[str]:
    """A command line as the shell splits it (quotes removed, comments dropped, `|`, `>`, `<`, `&` on their own)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&<>;")
    lexer.whitespace_split = True
    return list(lexer)


def stages(words: list[str]) -> list[list[str]]:
    """A pipeline's stages."""
    result: list[list[str]] = [[]]
    for word in words:
        if word == "|":
            result.append([])
        else:
            result[-1].append(word)
    return result


def leading_assignments(stage: list[str]) -> tuple[dict[str, str], list[str]]:
    """`NAME=value` words before a command (its environment), and the command's words."""
    env: dict[str, str] = {}
    position = 0
    while position < len(stage) and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", stage[position]):
        name, value = stage[position].split("=", 1)
        env[name] = value
        position += 1
    return env, stage[position:]


def codescaler_command(stage: list[str]) -> tuple[list[str], list[str]] | None:
    """(the command's path, e.g. ["cache", "info"], its words after the path) when the stage runs codescaler."""
    _, words = leading_assignments(stage)
    if not words or words[0] != "codescaler":
        return None
    rest = words[1:]
    while rest and rest[0] == "--debug":  # the app's own option, before the command
        rest = rest[1:]
    if not rest:
        return [], []
    path, rest = [rest[0]], rest[1:]
    if path == ["cache"] and rest:
        path, rest = ["cache", rest[0]], rest[1:]
    return path, rest


def options_named(words: list[str]) -> list[str]:
    """The options among a command's words (`--top-k`, `-o`; `--opt=value` gives `--opt`), values and `-` aside."""
    names = []
    for word in words:
        if word in (">", "<", "&", ";"):
            break
        if re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", word):
            names.append(word.split("=", 1)[0])
    return names
