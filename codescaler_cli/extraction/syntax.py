"""The syntax-aware extraction rules (1-6 of the design): turn a raw LLM response into the Python program it
proposes, decide whether that program is valid, and give programs a key that ignores comments and spacing so
best-of-N candidates can be deduplicated before they are scored."""

from __future__ import annotations

import ast
import hashlib
import keyword
import re
import textwrap
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache

import tree_sitter_python
from tree_sitter import Language, Node, Parser

__all__ = [
    "Extraction",
    "extract_code",
    "entry_points",
    "check_code",
    "is_valid_python",
    "dedup_key",
]


@dataclass(frozen=True)
class Extraction:
    code: str  # extracted code ("" when there is none)
    valid: bool


_NO_ANSWER = Extraction(code="", valid=False)

_THINK_TAG = re.compile(r"</?think>")
_OPEN_TAG = "<think>"
_CLOSE_TAG = "</think>"

# CommonMark fences: up to 3 spaces of indentation, then 3+ backticks or tildes.
_OPEN_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_CLOSE_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*$")
_PYTHON_TAGS = frozenset({"", "python", "py", "python3"})

# Entry points (rule 3a): a top-level def/class line of starter code, and `name(` in prose.
_STARTER_DEFINITION = re.compile(
    r"^(?:async[ \t]+)?def[ \t]+(?P<function>\w+)|^class[ \t]+(?P<class>\w+)", re.MULTILINE
)
_CALLED_NAME = re.compile(r"(?<!\w)([^\W\d]\w*)\(")

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
# Rules 1 and 2: one left-to-right scan drops reasoning and collects fenced blocks.
#
# The scan reads the text line by line and always knows whether it is inside a fence,
# because a think tag counts only outside fences: `TAG = "<think>"` in an answer's code
# is a string, not the start of reasoning. Outside a think span, each kept line goes
# through the fence grammar (`_FenceReader`); the kept lines are the answer.
#
# Inside an explicit <think> span fences are NOT tracked: the span ends at the first
# `</think>`, wherever it is, and every fence opened inside the span is dropped with it.
# The alternative (a `</think>` inside a draft's fence is a string) loses the whole answer
# whenever reasoning leaves a fence open or mismatched (a "```python" whose close never
# comes, a 4-backtick opener closed by 3): the span would swallow the answer and end
# unclosed, i.e. no answer. Reasoning that writes the literal `</think>` inside its own
# code draft is far rarer, and serving stacks' reasoning parsers (vLLM's) also split at
# the first `</think>`, so this keeps the answer in the case that happens.
#
# An orphan `</think>` (no span open) is different: the text before it may be an
# answer, so it is a tag only outside fences, as the contract says. Cost: reasoning whose
# opening tag was in the prompt and which leaves a fence open hides its own `</think>`.


class _FenceReader:
    """Rule 2's fence grammar, fed one line at a time; collects the eligible blocks."""

    def __init__(self) -> None:
        self.saw_fence = False
        self.blocks: list[str] = []
        self._fence: str | None = None  # the opening fence while inside a block
        self._eligible = False
        self._lines: list[str] = []

    @property
    def in_fence(self) -> bool:
        return self._fence is not None

    def feed(self, line: str) -> None:
        if self._fence is None:
            opening = _OPEN_FENCE.match(line)
            if opening is None:
                return
            info = opening.group("info")
            if opening.group("fence")[0] == "`" and "`" in info:
                return  # CommonMark: not a fence, e.g. inline ```code```
            self.saw_fence = True
            self._fence = opening.group("fence")
            self._eligible = _info_language(info) in _PYTHON_TAGS
            self._lines = []
            return
        closing = _CLOSE_FENCE.match(line)
        if closing is not None:
            candidate = closing.group("fence")
            if candidate[0] == self._fence[0] and len(candidate) >= len(self._fence):
                if self._eligible:
                    self.blocks.append(_clean_block(self._lines))
                self._fence = None
                return
        self._lines.append(line)

    def finish(self) -> None:
        if self._fence is not None and self._eligible:
            # A truncated response leaves the last fence open; it runs to the end.
            self.blocks.append(_clean_block(self._lines))
        self._fence = None


@dataclass
class _Answer:
    """What is left of a response once reasoning is dropped."""

    text: str  # the answer text itself (rule 4 looks at it when there is no fence)
    saw_fence: bool
    blocks: list[str]  # contents of the Python-eligible fenced blocks, in order


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


def _read_answer(text: str) -> _Answer | None:
    """Drop reasoning and collect fenced blocks in one scan; None for an unclosed <think>."""
    fences = _FenceReader()
    kept_lines: list[str] = []
    pieces: list[str] = []  # the kept parts of the current line (a span may end mid-line)
    may_have_tags = "think>" in text  # most responses have none: skip the per-line search
    position = 0
    while True:
        line_end = text.find("\n", position)
        if line_end == -1:
            line_end = len(text)
        if may_have_tags and not fences.in_fence:
            tag = _THINK_TAG.search(text, position, line_end)
            if tag is not None:
                if tag.group() == _OPEN_TAG:
                    pieces.append(text[position : tag.start()])
                    # Spans do not nest and ignore fences (see above): the next close ends it.
                    close = text.find(_CLOSE_TAG, tag.end())
                    if close == -1:
                        return None  # still reasoning: no answer yet
                    position = close + len(_CLOSE_TAG)
                else:
                    # An orphan close means the opening tag was in the prompt (chat
                    # templates often pre-fill it): everything before it was reasoning.
                    fences = _FenceReader()
                    kept_lines = []
                    pieces = []
                    position = tag.end()
                continue
        pieces.append(text[position:line_end])
        line = "".join(pieces)
        pieces = []
        fences.feed(line)
        kept_lines.append(line)
        if line_end == len(text):
            break
        position = line_end + 1
    fences.finish()
    return _Answer(text="\n".join(kept_lines), saw_fence=fences.saw_fence, blocks=fences.blocks)


# ---------------------------------------------------------------------------
# Rule 3: the entry points a problem names.


@lru_cache(maxsize=1024)  # N candidates of one problem share the question
def entry_points(question: str | None, starter_code: str | None) -> frozenset[str]:
    """The names a problem asks a solution to define (rule 3a).

    From the starter code: its top-level `def`/`class` names, found by a line regex
    because starter code is often incomplete Python (`def f(x):` with no body); for a
    LeetCode `class Solution:` with `def twoSum(self, ...)` inside, that is `Solution`.
    From the question: every identifier written as `name(`, except keywords (`if(`).
    Builtins such as `print(` or `len(` stay in the set and are harmless: rule 3a only
    picks a block that DEFINES one of the names, so a name no block defines falls through.
    """
    names: set[str] = set()
    if starter_code:
        starter = textwrap.dedent(_normalise_newlines(starter_code))
        for match in _STARTER_DEFINITION.finditer(starter):
            names.add(match.group("function") or match.group("class"))
    if question:
        names.update(
            name for name in _CALLED_NAME.findall(question) if not keyword.iskeyword(name)
        )
    return frozenset(names)


# ---------------------------------------------------------------------------
# Rules 3 and 4: choosing the answer.


def _top_level_statements(root: Node) -> Iterator[Node]:
    return (child for child in root.children if child.is_named and child.type != "comment")


def _definition(statement: Node) -> Node | None:
    """The function or class a statement defines (through decorators), if any."""
    if statement.type == "decorated_definition":
        statement = statement.child_by_field_name("definition") or statement
    return statement if statement.type in _DEFINITIONS else None


def _name(definition: Node) -> str:
    name = definition.child_by_field_name("name")
    return name.text.decode("utf-8", "surrogatepass") if name is not None and name.text else ""


def _method_names(class_definition: Node) -> Iterator[str]:
    body = class_definition.child_by_field_name("body")
    for statement in body.children if body is not None else ():
        method = _definition(statement)
        if method is not None and method.type == "function_definition":
            yield _name(method)


def _is_harness_name(name: str) -> bool:
    # `def test_x`, `class TestX(unittest.TestCase)`, HumanEval's `def check(candidate)`.
    return name.lower().startswith("test") or name == "check"


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


def _contains_call(node: Node) -> bool:
    stack = [node]  # iterative: a deeply nested literal must not exhaust the stack
    while stack:
        current = stack.pop()
        if current.type == "call":
            return True
        stack.extend(current.children)
    return False


def _is_output_like(statement: Node) -> bool:
    """A statement that only states a value: `6`, `[1, 2, 3]`, `'YES'`, `YES`.

    Sample output quoted in a fence is valid Python of this shape. A bare annotation
    counts too: "Output: 6" parses as one, and it has no effect in a program either.
    """
    if statement.type != "expression_statement":
        return False
    for expression in statement.named_children:
        if expression.type == "assignment" and expression.child_by_field_name("right") is None:
            continue
        if expression.type in _ASSIGNMENTS or expression.type == "yield":
            return False
        if _contains_call(expression):
            return False
    return True


class _Block:
    """One candidate block; each fact is computed at most once, the parse shared by all.

    Extraction runs on millions of candidates: a block is parsed once by tree-sitter
    and once by CPython (validity), and only the facts the chosen rule needs are derived.
    """

    def __init__(self, code: str) -> None:
        self.code = code

    @cached_property
    def _root(self) -> Node:
        return _parse(self.code)

    @cached_property
    def valid(self) -> bool:
        return _is_valid(self.code, self._root)

    @cached_property
    def _statements(self) -> list[Node]:
        return list(_top_level_statements(self._root))

    @cached_property
    def _definitions(self) -> list[Node]:
        return [d for d in map(_definition, self._statements) if d is not None]

    @cached_property
    def defined_names(self) -> frozenset[str]:
        """Top-level function and class names, plus the methods of top-level classes.

        Methods count so that a question naming `twoSum(` matches a block defining
        `class Solution` with a `twoSum` method, the shape LeetCode-style judges call.
        """
        names = {_name(d) for d in self._definitions}
        for definition in self._definitions:
            if definition.type == "class_definition":
                names.update(_method_names(definition))
        return frozenset(names)

    @cached_property
    def defines_solution(self) -> bool:
        """Defines a top-level function or class and is not only a test harness."""
        return any(not _is_harness_name(_name(d)) for d in self._definitions)

    @cached_property
    def is_program(self) -> bool:
        """Not output-like (every top-level statement a value without a call)."""
        return not all(_is_output_like(s) for s in self._statements)

    @cached_property
    def looks_like_program(self) -> bool:
        """Has a top-level definition, import or assignment (rule 4)."""
        return bool(self._definitions) or any(
            s.type in _IMPORTS or _is_assignment(s) for s in self._statements
        )


def _choose_block(
    blocks: list[str], question: str | None, starter_code: str | None
) -> Extraction:
    if not blocks:
        return _NO_ANSWER
    newest_first = [_Block(code) for code in reversed(blocks)]

    def last(wanted: Callable[[_Block], bool]) -> Extraction | None:
        for block in newest_first:
            if block.valid and wanted(block):
                return Extraction(code=block.code, valid=True)
        return None

    names = entry_points(question, starter_code) if question or starter_code else frozenset()
    chosen = (
        (last(lambda block: not names.isdisjoint(block.defined_names)) if names else None)
        or last(lambda block: block.defines_solution)
        or last(lambda block: block.is_program)
        or last(lambda block: True)
    )
    return chosen or Extraction(code=blocks[-1], valid=False)


def extract_code(
    response: str, *, question: str | None = None, starter_code: str | None = None
) -> Extraction:
    """The program a response proposes; never raises.

    `question` and `starter_code` (when the problem has them) let rule 3a prefer the block
    that defines the entry point the problem names; without them rules 3b-3d decide.
    """
    try:
        answer = _read_answer(_normalise_newlines(response))
        if answer is None:
            return _NO_ANSWER
        if answer.saw_fence:
            return _choose_block(answer.blocks, question, starter_code)
        whole = _Block(_tidy(answer.text))
        if whole.valid and whole.looks_like_program:
            return Extraction(code=whole.code, valid=True)
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
        return _is_valid(code, _parse(code))
    except Exception:  # e.g. MemoryError on a huge input
        return False


def _is_valid(code: str, root: Node) -> bool:
    """Rule 5 for code whose tree-sitter parse the caller already has."""
    try:
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
