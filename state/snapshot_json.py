"""Snapshots back from their JSON form (``Snapshot.to_json``), as the serving store holds them."""

from __future__ import annotations

from typing import Any

from transforms.snapshot import Snapshot, SupplyEntry
from transforms.timeutil import parse_iso


class SnapshotFormatError(ValueError):
    """A stored snapshot that does not have the replay's fields and types."""


def _time(value: object, field: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SnapshotFormatError(f"{field} must be an ISO-8601 string or null")
    try:
        return parse_iso(value)
    except ValueError:
        raise SnapshotFormatError(f"{field} is not an ISO-8601 time: {value!r}") from None


def _int(document: dict[str, Any], field: str) -> int:
    value = document.get(field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SnapshotFormatError(f"{field} must be an integer")
    return value


def _optional_str(document: dict[str, Any], field: str) -> str | None:
    value = document.get(field)
    if value is not None and not isinstance(value, str):
        raise SnapshotFormatError(f"{field} must be a string or null")
    return value


def _supply(entry: object) -> SupplyEntry:
    if not isinstance(entry, dict):
        raise SnapshotFormatError("supply entries must be objects")
    confidence = entry.get("confidence")
    if confidence is not None and (
        isinstance(confidence, bool) or not isinstance(confidence, int | float)
    ):
        raise SnapshotFormatError("supply.confidence must be a number or null")
    reference, kind = entry.get("reference_id"), entry.get("kind")
    if not isinstance(reference, str) or not isinstance(kind, str):
        raise SnapshotFormatError("supply.reference_id and supply.kind must be strings")
    return SupplyEntry(
        reference_id=reference,
        kind=kind,
        quantity=_int(entry, "quantity"),
        expected_at=_time(entry.get("expected_at"), "supply.expected_at"),
        confidence=None if confidence is None else float(confidence),
    )


def snapshot_from_json(document: object) -> Snapshot:
    """The inverse of ``Snapshot.to_json``; raise ``SnapshotFormatError`` on a bad field."""
    if not isinstance(document, dict):
        raise SnapshotFormatError("a snapshot must be a JSON object")
    item, location = document.get("item_id"), document.get("location_id")
    if not isinstance(item, str) or not isinstance(location, str):
        raise SnapshotFormatError("item_id and location_id must be strings")
    supply = document.get("supply", [])
    if not isinstance(supply, list):
        raise SnapshotFormatError("supply must be a list")
    return Snapshot(
        item_id=item,
        location_id=location,
        on_hand=_int(document, "on_hand"),
        quarantined=_int(document, "quarantined"),
        allocated=_int(document, "allocated"),
        reserved=_int(document, "reserved"),
        safety_stock=_int(document, "safety_stock"),
        in_transit=_int(document, "in_transit"),
        inbound=_int(document, "inbound"),
        available=_int(document, "available"),
        version=_int(document, "version"),
        revision=_int(document, "revision"),
        duplicates=_int(document, "duplicates"),
        as_of=_time(document.get("as_of"), "as_of"),
        last_event_id=_optional_str(document, "last_event_id"),
        correlation_id=_optional_str(document, "correlation_id"),
        supply=tuple(_supply(entry) for entry in supply),
    )
