"""Dead-letter records: a bad input, why it is bad, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from transforms.events import Event
from transforms.validation import UNDECODABLE, Violation, parse_event


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reasons: tuple[Violation, ...]
    raw: bytes
    event_id: str | None = None
    source: dict[str, Any] = field(default_factory=dict)  # file/line or topic/partition/offset

    @property
    def reason(self) -> str:
        return self.reasons[0].code

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "message": self.reasons[0].message,
            "reasons": [{"code": v.code, "message": v.message} for v in self.reasons],
            **self.source,
            "event_id": self.event_id,
            "raw": self.raw.decode("utf-8", errors="replace"),
        }


def decode_json_event(raw: bytes) -> Event | tuple[Violation, ...]:
    """Decode and validate one canonical JSON record."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        return (Violation(UNDECODABLE, f"not valid JSON: {err}"),)
    result = parse_event(record)
    if isinstance(result, list):
        return tuple(result)
    return result


def event_id_of(raw: bytes) -> str | None:
    """Best-effort event_id of a bad record, so a dead letter can be traced to its source."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    value = record.get("event_id") if isinstance(record, dict) else None
    return value if isinstance(value, str) else None
