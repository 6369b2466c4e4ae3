"""OMS order and reservation events: each event type of the mapping table."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.adapters.support import brief, codes, events, normalize
from transforms.adapters.oms import EVENT_TYPES


def oms(
    event_type: str, lines: list[tuple[str, int, str]] | None = None, **fields: Any
) -> dict[str, Any]:
    return {
        "eventId": "evt-1",
        "eventType": event_type,
        "eventTime": "2026-05-13T09:00:00Z",
        "orderNumber": "ORD-1",
        "salesChannel": "web",
        "lines": [
            {"lineNumber": n, "sku": sku, "quantity": q, "shipNode": node}
            for n, (sku, q, node) in enumerate(lines or [("SKU-1", 2, "DC01")], 1)
        ],
        **fields,
    }


ROWS = {
    "ORDER_CREATED": (oms("ORDER_CREATED"), ("RESERVATION_CREATED", "ORD-1")),
    "ORDER_CANCELLED": (oms("ORDER_CANCELLED"), ("ORDER_CANCELED", "ORD-1")),
    "RESERVATION_CREATED": (
        oms("RESERVATION_CREATED", reservationId="RSV-9", orderNumber=None),
        ("RESERVATION_CREATED", "RSV-9"),
    ),
    "RESERVATION_RELEASED": (
        oms("RESERVATION_RELEASED", reservationId="RSV-9", orderNumber=None),
        ("RESERVATION_RELEASED", "RSV-9"),
    ),
}


@pytest.mark.parametrize("event_type", sorted(ROWS))
def test_each_event_type_maps_as_its_table_row(event_type: str) -> None:
    record, (canonical, reference) = ROWS[event_type]
    (event,) = events("oms", record)
    assert brief(event) == (canonical, "SKU-1", "DC01", 2, reference, None)
    assert event["channel"] == "web"
    assert event["event_id"] == "OMS:evt-1:SKU-1@DC01"


def test_the_table_is_covered() -> None:
    assert set(EVENT_TYPES) == set(ROWS) | {"ORDER_RELEASED"}


def test_a_release_to_the_warehouse_is_ignored_until_the_warehouse_allocates() -> None:
    result = normalize("oms", oms("ORDER_RELEASED"))
    assert result.ignored == "NO_ATP_EFFECT" and not result.events


def test_lines_are_summed_per_sku_and_node_one_event_per_key() -> None:
    lines = [("SKU-1", 6, "DC01"), ("SKU-1", 4, "DC01"), ("SKU-1", 3, "DC02"), ("SKU-2", 1, "DC01")]
    assert [brief(e)[1:4] for e in events("oms", oms("ORDER_CREATED", lines))] == [
        ("SKU-1", "DC01", 10),
        ("SKU-1", "DC02", 3),
        ("SKU-2", "DC01", 1),
    ]


def test_reservations_expire_orders_do_not() -> None:
    (reservation,) = events(
        "oms",
        oms("RESERVATION_CREATED", reservationId="R", expiresAt="2026-05-13T09:30:00+02:00"),
    )
    assert reservation["expires_at"] == "2026-05-13T07:30:00Z"
    (order,) = events("oms", oms("ORDER_CREATED", expiresAt="2026-05-13T09:30:00Z"))
    assert "expires_at" not in order


@pytest.mark.parametrize(
    ("record", "code"),
    [
        (oms("ORDER_INVOICED"), "UNKNOWN_CODE"),
        (oms("order_created"), "UNKNOWN_CODE"),  # codes are case-sensitive, never guessed
        (oms("ORDER_CREATED", orderNumber=None), "MISSING_FIELD"),
        (oms("RESERVATION_CREATED"), "MISSING_FIELD"),
        ({**oms("ORDER_CREATED"), "lines": []}, "MISSING_FIELD"),
        (oms("ORDER_CREATED", [("SKU-1", -1, "DC01")]), "INVALID_FIELD"),
        (oms("ORDER_CREATED", [("SKU-1", 1, "")]), "MISSING_FIELD"),
        (oms("RESERVATION_CREATED", reservationId="R", expiresAt="soon"), "INVALID_FIELD"),
    ],
)
def test_unmappable_events_are_dead_lettered_with_a_reason(
    record: dict[str, Any], code: str
) -> None:
    result = normalize("oms", record)
    assert codes(result) == [code] and not result.events


def test_every_bad_line_is_reported() -> None:
    result = normalize("oms", oms("ORDER_CREATED", [("SKU-1", 1, ""), ("", 1, "DC01")]))
    assert [v.message for v in result.violations] == [
        "lines[0]: shipNode is missing",
        "lines[1]: sku is missing",
    ]
