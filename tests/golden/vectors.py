"""Load the golden vectors and turn a scenario into a JSON-lines log."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import orjson

from transforms.timeutil import format_iso, parse_iso

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


_TIME_FIELDS = ("occurred_at", "expected_at", "expires_at")
SCENARIO_WINDOW_MS = 10 * 24 * 3600 * 1000  # longer than any scenario's span (100 h)


def _times(entry: Any) -> list[int]:
    if not isinstance(entry, dict):
        return []
    found = []
    for field in _TIME_FIELDS:
        value = entry.get(field)
        with contextlib.suppress(ValueError, TypeError):
            found.append(parse_iso(value) if isinstance(value, str) else _int(value))
    return found


def _int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(value)
    return value


def combined_log(end_before: int) -> list[bytes]:
    """Every scenario in one log, for engines that run them all at once: scenario ``i``'s
    items are renamed ``G<i>-<item>`` (so scenarios never share a key) and its times are
    moved into a window of its own, the windows one after another and all before
    ``end_before`` (epoch millis). Malformed lines stay as they are."""
    all_scenarios = scenarios()
    lines: list[bytes] = []
    for index, scenario in enumerate(all_scenarios):
        times = [t for entry in scenario["lines"] for t in _times(entry)] or [0]
        start = end_before - (len(all_scenarios) - index) * SCENARIO_WINDOW_MS
        shift = start - min(times)
        for entry, raw in zip(scenario["lines"], log_lines(scenario), strict=True):
            if not isinstance(entry, dict) or "$raw" in entry:
                lines.append(raw)
                continue
            moved = dict(entry)
            if isinstance(moved.get("item_id"), str) and moved["item_id"]:
                moved["item_id"] = f"G{index:02d}-{moved['item_id']}"
            for field in _TIME_FIELDS:
                value = moved.get(field)
                with contextlib.suppress(ValueError, TypeError):
                    if isinstance(value, str):
                        moved[field] = format_iso(parse_iso(value) + shift)
                    else:
                        moved[field] = _int(value) + shift
            lines.append(orjson.dumps(moved))
    return lines
