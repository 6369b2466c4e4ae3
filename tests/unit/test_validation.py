"""Validation: one reason code per rule, every broken rule listed, valid records built."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from transforms import validation as v
from transforms.events import Event
from transforms.timeutil import parse_iso
from transforms.validation import parse_event

BASE: dict[str, Any] = {
    "event_id": "e-1",
    "event_type": "RECEIPT",
    "source_system": "WMS",
    "occurred_at": "2026-05-11T08:00:00Z",
    "item_id": "SKU-1",
    "location_id": "DC1",
    "quantity": 5,
}


def codes(record: object) -> list[str]:
    result = parse_event(record)
    assert isinstance(result, list), result
    return [violation.code for violation in result]


def with_(**changes: Any) -> dict[str, Any]:
    record = {**BASE, **changes}
    return {k: val for k, val in record.items() if val is not ...}


def test_valid_record_builds_the_event() -> None:
    event = parse_event(with_(reference_id="PO-1", correlation_id="c-9"))
    assert event == Event(
        "e-1",
        "RECEIPT",
        "SKU-1",
        "DC1",
        5,
        parse_iso("2026-05-11T08:00:00Z"),
        source_system="WMS",
        reference_id="PO-1",
        correlation_id="c-9",
    )


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"event_type": "RECIEPT"}, v.UNKNOWN_EVENT_TYPE),
        ({"event_type": "receipt"}, v.UNKNOWN_EVENT_TYPE),
        ({"event_type": ...}, v.UNKNOWN_EVENT_TYPE),
        ({"event_type": ["RECEIPT"]}, v.UNKNOWN_EVENT_TYPE),
        ({"event_id": ...}, v.MISSING_EVENT_ID),
        ({"event_id": ""}, v.MISSING_EVENT_ID),
        ({"item_id": None}, v.MISSING_ITEM_ID),
        ({"location_id": ...}, v.MISSING_LOCATION_ID),
        ({"item_id": 123}, v.INVALID_FIELD_TYPE),
        ({"quantity": ...}, v.MISSING_QUANTITY),
        ({"quantity": 2.5}, v.QUANTITY_NOT_INTEGER),
        ({"quantity": 5.0}, v.QUANTITY_NOT_INTEGER),
        ({"quantity": "5"}, v.QUANTITY_NOT_INTEGER),
        ({"quantity": True}, v.QUANTITY_NOT_INTEGER),
        ({"quantity": 2**63}, v.QUANTITY_OUT_OF_RANGE),
        ({"quantity": -1}, v.NEGATIVE_QUANTITY),
        ({"event_type": "CYCLE_COUNT", "quantity": -1}, v.NEGATIVE_QUANTITY),
        ({"occurred_at": ...}, v.MISSING_OCCURRED_AT),
        ({"occurred_at": "yesterday"}, v.INVALID_TIMESTAMP),
        ({"occurred_at": 1.5}, v.INVALID_TIMESTAMP),
        ({"expires_at": "soon"}, v.INVALID_TIMESTAMP),
        ({"confidence": 1.5}, v.CONFIDENCE_OUT_OF_RANGE),
        ({"confidence": -0.1}, v.CONFIDENCE_OUT_OF_RANGE),
        ({"confidence": "high"}, v.CONFIDENCE_OUT_OF_RANGE),
        ({"confidence": float("nan")}, v.CONFIDENCE_OUT_OF_RANGE),
        ({"channel": 7}, v.INVALID_FIELD_TYPE),
        ({"event_type": "TRANSFER_SHIPPED", "reference_id": "T1"}, v.MISSING_TO_LOCATION_ID),
        (
            {"event_type": "TRANSFER_SHIPPED", "reference_id": "T1", "to_location_id": "DC1"},
            v.TRANSFER_TO_SAME_LOCATION,
        ),
        ({"event_type": "ASN", "reference_id": "A1"}, v.MISSING_EXPECTED_AT),
    ],
)
def test_each_rule_has_its_reason(changes: dict[str, Any], code: str) -> None:
    assert codes(with_(**changes)) == [code]


@pytest.mark.parametrize(
    "event_type",
    [
        "RESERVATION_CREATED",
        "RESERVATION_RELEASED",
        "ALLOCATION",
        "SHIPMENT",
        "ORDER_CANCELED",
        "TRANSFER_RECEIVED",
    ],
)
def test_reference_types_need_a_reference(event_type: str) -> None:
    assert codes(with_(event_type=event_type)) == [v.MISSING_REFERENCE_ID]


def test_every_broken_rule_is_listed_in_contract_order() -> None:
    record = {"event_type": "SHIPMENT", "quantity": -3, "confidence": 2}
    assert codes(record) == [
        v.MISSING_EVENT_ID,
        v.MISSING_ITEM_ID,
        v.MISSING_LOCATION_ID,
        v.NEGATIVE_QUANTITY,
        v.MISSING_OCCURRED_AT,
        v.MISSING_REFERENCE_ID,
        v.CONFIDENCE_OUT_OF_RANGE,
    ]


@pytest.mark.parametrize("record", [None, [], "RECEIPT", 5])
def test_non_objects_are_undecodable(record: object) -> None:
    assert codes(record) == [v.UNDECODABLE]


def test_negative_adjustment_is_valid() -> None:
    event = parse_event(with_(event_type="ADJUSTMENT", quantity=-4))
    assert isinstance(event, Event) and event.quantity == -4


@pytest.mark.parametrize(
    "value",
    [
        "2026-05-11T08:00:00Z",
        "2026-05-11T08:00:00+00:00",
        "2026-05-11T10:00:00+02:00",
        "2026-05-11T08:00:00",
        parse_iso("2026-05-11T08:00:00Z"),
        datetime(2026, 5, 11, 8, tzinfo=UTC),
    ],
)
def test_time_forms_agree(value: object) -> None:
    event = parse_event(with_(occurred_at=value))
    assert isinstance(event, Event)
    assert event.occurred_at == parse_iso("2026-05-11T08:00:00Z")


def test_unknown_fields_are_ignored_and_empty_optionals_are_none() -> None:
    event = parse_event(with_(lot="L7", channel="", correlation_id=None))
    assert isinstance(event, Event)
    assert event.channel is None and event.correlation_id is None


def test_every_reason_code_is_listed() -> None:
    assert len(set(v.REASON_CODES)) == len(v.REASON_CODES) == 17
