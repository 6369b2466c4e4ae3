"""Validation of raw canonical records: one reason code per rule of the contract.

``parse_event`` turns a decoded record (a JSON object, or an Avro record decoded to a
dict) into an :class:`Event`, or into the list of every rule it breaks. Invalid
records are never applied; engines send them to the dead-letter output.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from transforms import events as ev
from transforms.events import Event
from transforms.timeutil import datetime_to_millis, parse_iso

# Reason codes. The first group is the contract's list; the second is this project's
# reading of records the contract does not mention (see docs/semantics.md).
UNDECODABLE: Final = "UNDECODABLE"
UNKNOWN_EVENT_TYPE: Final = "UNKNOWN_EVENT_TYPE"
MISSING_EVENT_ID: Final = "MISSING_EVENT_ID"
MISSING_ITEM_ID: Final = "MISSING_ITEM_ID"
MISSING_LOCATION_ID: Final = "MISSING_LOCATION_ID"
MISSING_QUANTITY: Final = "MISSING_QUANTITY"
QUANTITY_NOT_INTEGER: Final = "QUANTITY_NOT_INTEGER"
NEGATIVE_QUANTITY: Final = "NEGATIVE_QUANTITY"
MISSING_REFERENCE_ID: Final = "MISSING_REFERENCE_ID"
MISSING_TO_LOCATION_ID: Final = "MISSING_TO_LOCATION_ID"
MISSING_EXPECTED_AT: Final = "MISSING_EXPECTED_AT"
CONFIDENCE_OUT_OF_RANGE: Final = "CONFIDENCE_OUT_OF_RANGE"

MISSING_OCCURRED_AT: Final = "MISSING_OCCURRED_AT"
INVALID_TIMESTAMP: Final = "INVALID_TIMESTAMP"
INVALID_FIELD_TYPE: Final = "INVALID_FIELD_TYPE"
QUANTITY_OUT_OF_RANGE: Final = "QUANTITY_OUT_OF_RANGE"
TRANSFER_TO_SAME_LOCATION: Final = "TRANSFER_TO_SAME_LOCATION"

REASON_CODES: Final = (
    UNDECODABLE,
    UNKNOWN_EVENT_TYPE,
    MISSING_EVENT_ID,
    MISSING_ITEM_ID,
    MISSING_LOCATION_ID,
    MISSING_QUANTITY,
    QUANTITY_NOT_INTEGER,
    QUANTITY_OUT_OF_RANGE,
    NEGATIVE_QUANTITY,
    MISSING_OCCURRED_AT,
    INVALID_TIMESTAMP,
    MISSING_REFERENCE_ID,
    MISSING_TO_LOCATION_ID,
    TRANSFER_TO_SAME_LOCATION,
    MISSING_EXPECTED_AT,
    CONFIDENCE_OUT_OF_RANGE,
    INVALID_FIELD_TYPE,
)
"""Every reason code, in the order that picks a dead letter's first ``reason``."""
_RANK: Final = {code: rank for rank, code in enumerate(REASON_CODES)}

# Avro ``long``: a quantity outside it could not travel on the topics.
_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1


@dataclass(slots=True, frozen=True)
class Violation:
    """One broken rule: a stable reason code and a message for people."""

    code: str
    message: str


_CANONICAL_TYPES: Final = {t: t for t in ev.EVENT_TYPES}
"""Maps a decoded type string to the interned constant, so the fold compares by identity."""


def _bad_string(field: str, value: object, missing_code: str | None, out: list[Violation]) -> None:
    if value is None or value == "":
        if missing_code is not None:
            out.append(Violation(missing_code, f"{field} is missing"))
    else:
        out.append(Violation(INVALID_FIELD_TYPE, f"{field} must be a string"))


def _time(field: str, value: object, missing_code: str | None, out: list[Violation]) -> int | None:
    if value is None or value == "":
        if missing_code is not None:
            out.append(Violation(missing_code, f"{field} is missing"))
        return None
    if type(value) is str:
        try:
            return parse_iso(value)
        except ValueError:
            out.append(Violation(INVALID_TIMESTAMP, f"{field} is not an ISO-8601 time: {value!r}"))
            return None
    if isinstance(value, datetime):  # Avro timestamp-millis, as decoded by fastavro
        return datetime_to_millis(value)
    if type(value) is int:  # epoch millis
        return value
    out.append(Violation(INVALID_TIMESTAMP, f"{field} must be an ISO-8601 string"))
    return None


def _quantity(value: object, event_type: str | None, out: list[Violation]) -> int | None:
    if type(value) is int:
        if value >= 0 and value <= _LONG_MAX:
            return value
        if value < _LONG_MIN or value > _LONG_MAX:
            out.append(Violation(QUANTITY_OUT_OF_RANGE, "quantity does not fit a 64-bit integer"))
            return None
        if event_type is ev.ADJUSTMENT:
            return value
        out.append(Violation(NEGATIVE_QUANTITY, f"quantity {value} is negative for {event_type}"))
        return None
    if value is None:
        out.append(Violation(MISSING_QUANTITY, "quantity is missing"))
    elif type(value) is float and value.is_integer() and abs(value) >= 2.0**63:
        # JSON parsers hand integers beyond 64 bits over as floats.
        out.append(Violation(QUANTITY_OUT_OF_RANGE, "quantity does not fit a 64-bit integer"))
    else:
        out.append(Violation(QUANTITY_NOT_INTEGER, f"quantity must be an integer: {value!r}"))
    return None


def _confidence(value: object, out: list[Violation]) -> float | None:
    if value is None:
        return None
    if (type(value) is float or type(value) is int) and 0.0 <= value <= 1.0:  # NaN fails
        return float(value)
    out.append(Violation(CONFIDENCE_OUT_OF_RANGE, f"confidence must be in 0..1: {value!r}"))
    return None


def parse_event(record: object) -> Event | list[Violation]:
    """Validate a decoded record and build the event, or list every rule it breaks.

    Written as straight-line type checks because it runs once per event in every engine;
    helpers are called only to report a problem.
    """
    if type(record) is not dict:
        return [Violation(UNDECODABLE, "record is not an object")]
    out: list[Violation] = []
    get = record.get

    raw_type = get("event_type")
    event_type = _CANONICAL_TYPES.get(raw_type) if type(raw_type) is str else None
    if event_type is None:
        out.append(Violation(UNKNOWN_EVENT_TYPE, f"unknown event_type: {raw_type!r}"))

    event_id = get("event_id")
    if type(event_id) is not str or not event_id:
        _bad_string("event_id", event_id, MISSING_EVENT_ID, out)
    item_id = get("item_id")
    if type(item_id) is not str or not item_id:
        _bad_string("item_id", item_id, MISSING_ITEM_ID, out)
    location_id = get("location_id")
    if type(location_id) is not str or not location_id:
        _bad_string("location_id", location_id, MISSING_LOCATION_ID, out)
    quantity = _quantity(get("quantity"), event_type, out)
    occurred_at = _time("occurred_at", get("occurred_at"), MISSING_OCCURRED_AT, out)

    reference_id = get("reference_id")
    if reference_id is not None and (type(reference_id) is not str or not reference_id):
        _bad_string("reference_id", reference_id, None, out)
        reference_id = None
    if reference_id is None and event_type in ev.REFERENCE_TYPES:
        out.append(Violation(MISSING_REFERENCE_ID, "reference_id is missing"))

    to_location_id = get("to_location_id")
    if to_location_id is not None and (type(to_location_id) is not str or not to_location_id):
        _bad_string("to_location_id", to_location_id, None, out)
        to_location_id = None
    if event_type is ev.TRANSFER_SHIPPED:
        if to_location_id is None:
            out.append(Violation(MISSING_TO_LOCATION_ID, "to_location_id is missing"))
        elif to_location_id == location_id:
            out.append(Violation(TRANSFER_TO_SAME_LOCATION, "to_location_id equals location_id"))

    expected_at = get("expected_at")
    if expected_at is not None or event_type is ev.ASN:
        expected_at = _time(
            "expected_at", expected_at, MISSING_EXPECTED_AT if event_type is ev.ASN else None, out
        )
    expires_at = get("expires_at")
    if expires_at is not None:
        expires_at = _time("expires_at", expires_at, None, out)
    confidence = get("confidence")
    if confidence is not None:
        confidence = _confidence(confidence, out)

    optional: list[str | None] = []
    for field in ("source_system", "channel", "correlation_id"):
        value = get(field)
        if value is not None and type(value) is not str:
            _bad_string(field, value, None, out)
            value = None
        optional.append(value or None)

    if out:
        if len(out) > 1:
            out.sort(key=lambda violation: _RANK[violation.code])
        return out
    return ev.Event(
        event_id,  # type: ignore[arg-type]
        event_type,  # type: ignore[arg-type]
        item_id,  # type: ignore[arg-type]
        location_id,  # type: ignore[arg-type]
        quantity,  # type: ignore[arg-type]
        occurred_at,  # type: ignore[arg-type]
        optional[0],
        reference_id,
        to_location_id,
        expected_at,
        expires_at,
        confidence,
        optional[1],
        optional[2],
    )


def event_to_record(event: Event) -> dict[str, Any]:
    """The canonical wire dict of an event (times stay epoch millis)."""
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "source_system": event.source_system,
        "occurred_at": event.occurred_at,
        "item_id": event.item_id,
        "location_id": event.location_id,
        "quantity": event.quantity,
        "reference_id": event.reference_id,
        "to_location_id": event.to_location_id,
        "expected_at": event.expected_at,
        "expires_at": event.expires_at,
        "confidence": event.confidence,
        "channel": event.channel,
        "correlation_id": event.correlation_id,
    }
