"""TMS shipment confirmations: each event code and shipment type of the mapping table."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.adapters.support import brief, codes, events, normalize


def message(code: str, shipment_type: str = "OUTBOUND", **fields: Any) -> dict[str, Any]:
    return {
        "messageId": "TMS-1",
        "eventCode": code,
        "eventTime": "2026-05-14T14:00:00Z",
        "shipmentId": "LD-1",
        "shipmentType": shipment_type,
        "origin": "DC01",
        "stops": [
            {
                "sequence": 1,
                "locationId": "ST12",
                "estimatedArrival": "2026-05-15T08:00:00-05:00",
                "orders": [
                    {"orderId": "ORD-1", "lines": [{"sku": "SKU-1", "quantity": 2}]},
                    {"orderId": "ORD-2", "lines": [{"sku": "SKU-1", "quantity": 1}]},
                ],
            },
            {
                "sequence": 2,
                "locationId": "ST14",
                "orders": [{"orderId": "ORD-1", "lines": [{"sku": "SKU-1", "quantity": 3}]}],
            },
        ],
        **fields,
    }


def test_an_outbound_confirmation_ships_each_order_once_from_the_origin() -> None:
    assert [brief(e) for e in events("tms", message("SHIPMENT_CONFIRMED"))] == [
        ("SHIPMENT", "SKU-1", "DC01", 5, "ORD-1", None),
        ("SHIPMENT", "SKU-1", "DC01", 1, "ORD-2", None),
    ]


def test_a_transfer_confirmation_ships_to_each_stop_with_its_arrival() -> None:
    shipped = events("tms", message("SHIPMENT_CONFIRMED", "TRANSFER"))
    assert [brief(e) for e in shipped] == [
        ("TRANSFER_SHIPPED", "SKU-1", "DC01", 2, "ORD-1", "ST12"),
        ("TRANSFER_SHIPPED", "SKU-1", "DC01", 1, "ORD-2", "ST12"),
        ("TRANSFER_SHIPPED", "SKU-1", "DC01", 3, "ORD-1", "ST14"),
    ]
    assert shipped[0]["expected_at"] == "2026-05-15T13:00:00Z"
    assert "expected_at" not in shipped[2]  # no estimate: in transit, never promised
    assert shipped[0]["event_id"] == "TMS:TMS-1:ORD-1:SKU-1@ST12"
    assert shipped[0]["correlation_id"] == "LD-1"


def test_an_eta_update_moves_a_transfer_date_without_shipping_more() -> None:
    record = message("ETA_UPDATED", "TRANSFER")
    record["stops"] = record["stops"][:1]
    updated = events("tms", record)
    assert [(e["event_type"], e["quantity"], e["expected_at"]) for e in updated] == [
        ("TRANSFER_SHIPPED", 0, "2026-05-15T13:00:00Z"),
        ("TRANSFER_SHIPPED", 0, "2026-05-15T13:00:00Z"),
    ]
    # Without a date there is nothing to update.
    assert codes(normalize("tms", message("ETA_UPDATED", "TRANSFER"))) == ["MISSING_FIELD"]


@pytest.mark.parametrize(
    "record",
    [
        message("ETA_UPDATED"),
        message("DELIVERED"),
        message("DELIVERED", "TRANSFER"),
        message("TENDER_ACCEPTED"),
    ],
)
def test_statuses_that_move_no_stock_are_ignored(record: dict[str, Any]) -> None:
    result = normalize("tms", record)
    assert result.ignored == "NO_ATP_EFFECT" and not result.events


@pytest.mark.parametrize(
    ("record", "code"),
    [
        (message("CARRIER_INVOICED"), "UNKNOWN_CODE"),
        (message("SHIPMENT_CONFIRMED", "CROSS_DOCK"), "UNKNOWN_CODE"),
        (message("SHIPMENT_CONFIRMED", origin=None), "MISSING_FIELD"),
        (message("SHIPMENT_CONFIRMED", stops=[]), "MISSING_FIELD"),
        (message("SHIPMENT_CONFIRMED", "TRANSFER", origin="ST12"), "TRANSFER_TO_SAME_LOCATION"),
    ],
)
def test_unmappable_messages_are_dead_lettered_with_a_reason(
    record: dict[str, Any], code: str
) -> None:
    result = normalize("tms", record)
    assert codes(result)[0] == code and not result.events
