"""What several test modules share: JSONL records on disk and on stdout, and the examples directory.

The rest of the shared help is in modules of this package: `processes` (watching a CLI subprocess), `servers`
(real vLLM and codescaler servers, and a fault-injecting proxy), `sample_candidates` (a small candidates set),
`scoring` (the model card's recipe, written out independently of the library).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def parse_jsonl(text: str) -> list[dict[str, Any]]:
    """Parse stdout as JSONL; fails the test if any line is not a JSON object."""
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(r, dict) for r in records), text
    return records
