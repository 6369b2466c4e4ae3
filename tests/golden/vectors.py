"""Load the golden vectors and turn a scenario into a JSON-lines log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

VECTORS = Path(__file__).with_name("vectors.json")


def scenarios() -> list[dict[str, Any]]:
    document = orjson.loads(VECTORS.read_bytes())
    assert document["format"] == 1
    result: list[dict[str, Any]] = document["scenarios"]
    return result


def log_lines(scenario: dict[str, Any]) -> list[bytes]:
    """The scenario's log as raw lines (without newlines), in order."""
    lines = []
    for entry in scenario["lines"]:
        if isinstance(entry, dict) and "$raw" in entry:
            lines.append(entry["$raw"].encode())
        else:
            lines.append(orjson.dumps(entry))
    return lines
