"""Code extraction: what program a raw model response proposes, whether it is valid, and when two are the same.

- `candidates`: the one entry point, `extract_candidate(candidate, mode)`, used by every command and the server
- `syntax`: the syntax-aware rules (tree-sitter and CPython's parser), `extract_code`, `check_code`, `dedup_key`
- `upstream`: upstream training's rule (exactly one fenced block that `ast.parse` accepts)
"""

from .candidates import EXTRACTION_MODES, MAX_CANDIDATE_CHARS, extract_all, extract_candidate
from .syntax import Extraction, check_code, dedup_key, entry_points, extract_code, is_valid_python
from .upstream import check_upstream, extract_upstream

__all__ = [
    "EXTRACTION_MODES", "Extraction", "MAX_CANDIDATE_CHARS", "check_code", "check_upstream", "dedup_key",
    "entry_points", "extract_all", "extract_candidate", "extract_code", "extract_upstream", "is_valid_python",
]
