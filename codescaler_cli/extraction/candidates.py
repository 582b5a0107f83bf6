"""The one way a candidate's code is found: `rank`, `generate`, `eval`, `serve` and the RL rewards all extract
through `extract_candidate`, so the same response gives the same program everywhere.

Two modes side by side. `syntax` (the default) applies rules 1-6: think tags, fences, the entry point the problem
names (from its question and starter code), tree-sitter validity; duplicates are programs with one dedup key.
`upstream` is training's rule (exactly one fenced block that `ast.parse` accepts); programs are the same only when
byte-identical, so every reward equals upstream's. In both, a text over MAX_CANDIDATE_CHARS is not parsed.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..records import Candidate
from .syntax import Extraction, check_code, dedup_key, extract_code
from .upstream import check_upstream, extract_upstream

EXTRACTION_MODES = ("syntax", "upstream")

# Longest response or code extracted: far beyond any model answer or program (the reward model reads at most
# --max-length tokens of it anyway), and small enough that parsing it takes seconds, not minutes.
MAX_CANDIDATE_CHARS = 1_000_000


def extract_candidate(candidate: Candidate, mode: str = "syntax", *, starter_code: str | None = None) -> Candidate:
    """Fill `code`, `valid` and the dedup key: from `code` when the record has it, else from `response`.

    The candidate's question and the problem's starter code (`starter_code`, else the record's `starter_code`)
    tell the syntax mode which entry point the problem names. A text over MAX_CANDIDATE_CHARS is not parsed
    (parsing megabytes of prose takes minutes): the candidate is invalid and its `error` says why.
    """
    if mode not in EXTRACTION_MODES:
        raise ValueError(f"unknown extraction '{mode}': use one of {', '.join(EXTRACTION_MODES)}")
    given = candidate.given_code
    text = given if given is not None else candidate.response or ""
    if len(text) > MAX_CANDIDATE_CHARS:
        candidate.code, candidate.valid, candidate.dedup_key = "", False, ""
        candidate.error = (f"the {'code' if given is not None else 'response'} is {len(text):,} characters, over "
                           f"the {MAX_CANDIDATE_CHARS:,} a candidate may have; not extracted or scored")
        return candidate
    extraction: Extraction
    if mode == "upstream":
        extraction = check_upstream(text) if given is not None else extract_upstream(text)
    elif given is not None:
        extraction = check_code(given)
    else:
        if starter_code is None:
            recorded = candidate.record.get("starter_code")
            starter_code = recorded if isinstance(recorded, str) else None
        extraction = extract_code(text, question=candidate.question, starter_code=starter_code)
    candidate.code, candidate.valid = extraction.code, extraction.valid
    if not extraction.valid:
        candidate.dedup_key = ""
    else:
        candidate.dedup_key = extraction.code if mode == "upstream" else dedup_key(extraction.code)
    return candidate


def extract_all(candidates: Iterable[Candidate], mode: str = "syntax") -> list[Candidate]:
    """`extract_candidate` on each candidate, in order."""
    return [extract_candidate(candidate, mode) for candidate in candidates]
