"""Running one adapter on one record in tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from transforms.adapters import ADAPTERS, Options, Result
from transforms.validation import parse_event

DATA = Path(__file__).parent / "data"


def normalize(system: str, record: object, options: Options | None = None) -> Result:
    """The single result of one raw JSON record (or X12 text given as str or bytes)."""
    if isinstance(record, bytes):
        raw = record
    elif isinstance(record, str):
        raw = record.encode()
    else:
        raw = orjson.dumps(record)
    results = ADAPTERS[system].normalize(raw, options or Options())
    assert len(results) == 1, results
    return results[0]


def events(system: str, record: object, options: Options | None = None) -> list[dict[str, Any]]:
    """The events of a record that must map; each one valid for the contract."""
    result = normalize(system, record, options)
    assert not result.violations, result.violations
    for event in result.events:
        assert not isinstance(parse_event(event), list), event
    return list(result.events)


def codes(result: Result) -> list[str]:
    return [v.code for v in result.violations]


def brief(event: dict[str, Any]) -> tuple[Any, ...]:
    """(type, item, location, quantity, reference, destination) of an event."""
    return (
        event["event_type"],
        event["item_id"],
        event["location_id"],
        event["quantity"],
        event.get("reference_id"),
        event.get("to_location_id"),
    )
