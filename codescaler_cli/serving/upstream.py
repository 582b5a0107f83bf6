"""Code extraction for rewards: the syntax-aware rules `rank` uses, or upstream training's exact rule.

Upstream CodeScaler training extracted code with one regex: exactly one fenced block, its content stripped, and
CPython's parser must accept it; anything else is "no code" and gets reward 0. `--extraction upstream` reproduces
that so rewards match the ones the model was trained against.
"""

from __future__ import annotations

import ast
import re
import warnings

from ..extraction import Extraction
from ..pipeline import extract_candidate
from ..records import Candidate

EXTRACTION_MODES = ("syntax", "upstream")

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


def extract_for_reward(candidate: Candidate, mode: str) -> Candidate:
    """Fill `code`, `valid` and the dedup key with the chosen extraction.

    Upstream mode shares a score only between byte-identical programs, so every reward equals upstream's
    softplus(score(question, code)) exactly; syntax mode is `rank`'s extraction and dedup.
    """
    if mode == "syntax":
        return extract_candidate(candidate)
    if mode != "upstream":
        raise ValueError(f"unknown extraction '{mode}': use one of {', '.join(EXTRACTION_MODES)}")
    source = candidate.given_code if candidate.given_code is not None else (candidate.response or "")
    extraction = extract_upstream(source) if candidate.given_code is None else _check_upstream(source)
    candidate.code, candidate.valid = extraction.code, extraction.valid
    candidate.dedup_key = extraction.code if extraction.valid else ""
    return candidate


def _check_upstream(code: str) -> Extraction:
    """Already-extracted code under upstream's rule: stripped, and `ast.parse` must accept it."""
    return extract_upstream(f"```\n{code}\n```") if "```" not in code else _NO_CODE
