"""Turn a raw LLM response into the Python program it proposes, decide whether that
program is valid, and give programs a key that ignores comments and spacing so
best-of-N candidates can be deduplicated before they are scored."""

from __future__ import annotations

import ast
import hashlib
import re
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import tree_sitter_python
from tree_sitter import Language, Node, Parser

__all__ = ["Extraction", "extract_code", "check_code", "is_valid_python", "dedup_key"]


@dataclass(frozen=True)
class Extraction:
    code: str  # extracted code ("" when there is none)
    valid: bool


_NO_ANSWER = Extraction(code="", valid=False)

_THINK_TAG = re.compile(r"</?think>")
_CLOSE_TAG = "</think>"

# CommonMark fences: up to 3 spaces of indentation, then 3+ backticks or tildes.
_OPEN_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_CLOSE_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*$")
_PYTHON_TAGS = frozenset({"", "python", "py", "python3"})

_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t\f\v]*\n)+")

_DEFINITIONS = frozenset({"function_definition", "class_definition"})
_IMPORTS = frozenset({"import_statement", "import_from_statement", "future_import_statement"})
_ASSIGNMENTS = frozenset({"assignment", "augmented_assignment"})

# Leaves that carry no program meaning (whitespace-like); everything else is a token.
_SKIPPED = frozenset({"comment", "line_continuation"})
# A string's children (escape_sequence, interpolation, ...) split its literal text in
# ways that depend on tree-sitter internals, so the literal is taken as one token.
_WHOLE_TOKENS = frozenset({"string"})
# Markers for the structure Python's tokenizer makes explicit but tree-sitter hides.
# They start with \x01, which no tree-sitter leaf of valid Python can start with.
_NEWLINE = b"\x01NEWLINE"
_INDENT = b"\x01INDENT"
_DEDENT = b"\x01DEDENT"
_MARKERS = frozenset({_NEWLINE, _INDENT, _DEDENT})
# NUL can't occur in valid Python source (CPython rejects it), so it separates tokens.
_SEPARATOR = b"\x00"


@lru_cache(maxsize=1)
def _parser() -> Parser:
    return Parser(Language(tree_sitter_python.language()))


def _parse(code: str) -> Node:
    # surrogatepass keeps lone surrogates (which `str` allows) from raising; tree-sitter
    # then sees invalid UTF-8 and reports an error node, which is what we want.
    return _parser().parse(code.encode("utf-8", "surrogatepass")).root_node


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _tidy(code: str) -> str:
    """Strip leading blank lines and trailing whitespace."""
    return _LEADING_BLANK_LINES.sub("", code).rstrip()


# ---------------------------------------------------------------------------
# Rule 1: reasoning is not an answer.


def _strip_reasoning(text: str) -> str | None:
    """Drop <think> spans; None when the answer is still inside an unclosed <think>."""
    depth = 0
    for match in _THINK_TAG.finditer(text):
        if match.group() != _CLOSE_TAG:
            depth += 1
        elif depth:
            depth -= 1
        else:
            # An orphan close tag means the opening tag was in the prompt (chat templates
            # often pre-fill it), so everything before the last close is reasoning.
            text = text[text.rindex(_CLOSE_TAG) + len(_CLOSE_TAG) :]
            break

    kept: list[str] = []
    depth = 0
    position = 0
    for match in _THINK_TAG.finditer(text):
        if match.group() != _CLOSE_TAG:
            if depth == 0:
                kept.append(text[position : match.start()])
            depth += 1
        else:
            # After the orphan cut the text has no close tags; before it, the first pass
            # proved none is orphaned, so depth is never 0 here.
            depth -= 1
            if depth == 0:
                position = match.end()
    if depth:
        return None
    kept.append(text[position:])
    return "".join(kept)


# ---------------------------------------------------------------------------
# Rule 2: fenced blocks.


def _info_language(info: str) -> str:
    words = info.split()
    if not words:
        return ""
    # Pandoc-style attributes: "{.python}" or "{.python .numberLines}".
    return words[0].strip("{}.").lower()


def _clean_block(lines: list[str]) -> str:
    code = _LEADING_BLANK_LINES.sub("", "\n".join(lines))
    # textwrap.dedent also blanks whitespace-only lines (even inside string literals),
    # so only use it when the block is actually indented.
    if code[:1] in (" ", "\t"):
        code = textwrap.dedent(code)
    return code.rstrip()


def _fenced_blocks(text: str) -> tuple[bool, list[str]]:
    """Return (whether any fence exists, the contents of the Python-eligible blocks)."""
    saw_fence = False
    blocks: list[str] = []
    fence: str | None = None  # the opening fence while inside a block
    eligible = False
    lines: list[str] = []
    for line in text.split("\n"):
        if fence is None:
            opening = _OPEN_FENCE.match(line)
            if opening is None:
                continue
            info = opening.group("info")
            if opening.group("fence")[0] == "`" and "`" in info:
                continue  # CommonMark: not a fence, e.g. inline ```code```
            saw_fence = True
            fence = opening.group("fence")
            eligible = _info_language(info) in _PYTHON_TAGS
            lines = []
            continue
        closing = _CLOSE_FENCE.match(line)
        if closing is not None:
            candidate = closing.group("fence")
            if candidate[0] == fence[0] and len(candidate) >= len(fence):
                if eligible:
                    blocks.append(_clean_block(lines))
                fence = None
                continue
        lines.append(line)
    if fence is not None and eligible:
        # A truncated response leaves the last fence open; it runs to the end.
        blocks.append(_clean_block(lines))
    return saw_fence, blocks


# ---------------------------------------------------------------------------
# Rules 3 and 4: choosing the answer.


def _top_level_statements(root: Node) -> Iterator[Node]:
    return (child for child in root.children if child.is_named and child.type != "comment")


def _is_definition(statement: Node) -> bool:
    if statement.type in _DEFINITIONS:
        return True
    if statement.type == "decorated_definition":
        definition = statement.child_by_field_name("definition")
        return definition is not None and definition.type in _DEFINITIONS
    return False


def _defines_something(code: str) -> bool:
    return any(_is_definition(s) for s in _top_level_statements(_parse(code)))


def _is_assignment(statement: Node) -> bool:
    if statement.type != "expression_statement":
        return False
    for child in statement.named_children:
        if child.type not in _ASSIGNMENTS:
            continue
        # A bare annotation (`x: int`) doesn't count: prose such as "Answer: yes" parses
        # as one, and rule 4 must not mistake a one-line reply for a program.
        if child.type == "assignment" and child.child_by_field_name("right") is None:
            continue
        return True
    return False


def _looks_like_program(code: str) -> bool:
    return any(
        _is_definition(s) or s.type in _IMPORTS or _is_assignment(s)
        for s in _top_level_statements(_parse(code))
    )


def _choose_block(blocks: list[str]) -> Extraction:
    if not blocks:
        return _NO_ANSWER
    valid = [block for block in blocks if is_valid_python(block)]
    if not valid:
        return Extraction(code=blocks[-1], valid=False)
    for block in reversed(valid):
        if _defines_something(block):
            return Extraction(code=block, valid=True)
    return Extraction(code=valid[-1], valid=True)


def extract_code(response: str) -> Extraction:
    """The program a response proposes; never raises."""
    try:
        text = _strip_reasoning(_normalise_newlines(response))
        if text is None:
            return _NO_ANSWER
        saw_fence, blocks = _fenced_blocks(text)
        if saw_fence:
            return _choose_block(blocks)
        code = _tidy(text)
        if is_valid_python(code) and _looks_like_program(code):
            return Extraction(code=code, valid=True)
        return _NO_ANSWER
    except Exception:
        # Callers extract thousands of candidates in a batch; one pathological response
        # (e.g. MemoryError on a huge one) must cost only that candidate.
        return _NO_ANSWER


def check_code(code: str) -> Extraction:
    """Tidy and validate code that arrives already extracted (no fence/think handling)."""
    code = _tidy(_normalise_newlines(code))
    return Extraction(code=code, valid=is_valid_python(code))


# ---------------------------------------------------------------------------
# Rule 5: validity.


def _has_token(root: Node) -> bool:
    return any(token not in _MARKERS for token in _tokens(root))


def is_valid_python(code: str) -> bool:
    """True when the code has a real token and both tree-sitter and CPython accept it."""
    try:
        root = _parse(code)
        if root.has_error or not _has_token(root):
            return False
        # tree-sitter's grammar is permissive (it accepts Python 2's `print x`), so
        # CPython's parser has the last word.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for "\d"
            ast.parse(code)
        return True
    except Exception:  # SyntaxError, ValueError (NUL), RecursionError, MemoryError, ...
        return False


# ---------------------------------------------------------------------------
# Rule 6: dedup key.


def _tokens(root: Node) -> Iterator[bytes]:
    """Leaf tokens in source order, plus NEWLINE/INDENT/DEDENT markers.

    Iterative rather than recursive: deeply nested input must not exhaust Python's stack.
    """
    stack: list[Node | bytes] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, bytes):
            yield item
            continue
        node = item
        kind = node.type
        if kind in _SKIPPED:
            continue
        if node.child_count == 0 or kind in _WHOLE_TOKENS:
            if node.is_missing:
                yield b"\x01MISSING " + kind.encode()
            elif node.text:  # zero-width nodes (an empty module or block) are not tokens
                yield node.text
            continue
        statements = kind in ("module", "block")
        pending: list[Node | bytes] = [_INDENT] if kind == "block" else []
        for child in node.children:
            pending.append(child)
            if statements and child.is_named and child.type not in _SKIPPED:
                pending.append(_NEWLINE)
        if kind == "block":
            pending.append(_DEDENT)
        stack.extend(reversed(pending))


def dedup_key(code: str) -> str:
    """sha256 of the token stream: equal for programs differing only in comments/spacing."""
    digest = hashlib.sha256()
    try:
        for token in _tokens(_parse(_normalise_newlines(code))):
            digest.update(token)
            digest.update(_SEPARATOR)
    except Exception:
        # Only invalid code can get here (and it is never scored); any stable key will do.
        digest = hashlib.sha256(b"\x01UNPARSEABLE" + code.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()
