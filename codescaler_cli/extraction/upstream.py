"""Upstream training's extraction rule, for rewards that must match the ones the model was trained against.

Upstream CodeScaler training extracted code with one regex: exactly one fenced block, its content stripped, and
CPython's parser must accept it; anything else is "no code" and gets reward 0 (`--extraction upstream`).
"""

from __future__ import annotations

import ast
import re
import warnings

from .syntax import Extraction

_UPSTREAM_FENCE = re.compile(r"```(?:\w+)?\n(.*?)```", re.DOTALL)
_NO_CODE = Extraction(code="", valid=False)


def extract_upstream(response: str) -> Extraction:
    """Upstream's rule: exactly one fenced block, stripped, that `ast.parse` accepts; else no code."""
    blocks = _UPSTREAM_FENCE.findall(response)
    if len(blocks) != 1:
        return _NO_CODE
    code = blocks[0].strip()
    if not code:
        return _NO_CODE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not a failure
            ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return _NO_CODE
    return Extraction(code=code, valid=True)


def check_upstream(code: str) -> Extraction:
    """Already-extracted code under upstream's rule: stripped, and `ast.parse` must accept it."""
    return extract_upstream(f"```\n{code}\n```") if "```" not in code else _NO_CODE
