"""E-commerce cart holds (CloudEvents): each event type of the mapping table."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.adapters.support import brief, codes, events, normalize
from transforms.adapters.ecom import EVENT_TYPES


def cloud_event(
    kind: str, expires: str | None = "2026-05-14T09:20:00Z", **data: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cartId": "C-1",
        "holdId": "H-1",
        "channel": "web",
        "items": [{"sku": "SKU-1", "quantity": 2, "locationId": "DC01"}],
        **data,
    }
    if expires is not None:
        body["expiresAt"] = expires
    return {
        "specversion": "1.0",
        "id": "01HX",
        "source": "//storefront/web-us",
        "type": kind,
        "time": "2026-05-14T09:00:00Z",
        "datacontenttype": "application/json",
        "data": body,
    }


@pytest.mark.parametrize(
    ("kind", "canonical"),
    [
        ("cart.hold.created", "RESERVATION_CREATED"),
        ("cart.hold.extended", "RESERVATION_CREATED"),
        ("cart.hold.released", "RESERVATION_RELEASED"),
        ("cart.hold.converted", "RESERVATION_RELEASED"),
        ("cart.hold.expired", "RESERVATION_RELEASED"),
    ],
)
def test_each_event_type_maps_as_its_table_row(kind: str, canonical: str) -> None:
    (event,) = events("ecom", cloud_event(kind))
    assert brief(event) == (canonical, "SKU-1", "DC01", 2, "H-1", None)
    assert (event["channel"], event["correlation_id"]) == ("web", "C-1")
    assert event["event_id"] == "ECOM:01HX:SKU-1@DC01"
    assert ("expires_at" in event) == (canonical == "RESERVATION_CREATED")


def test_the_table_is_covered() -> None:
    assert len(EVENT_TYPES) == 5


def test_a_hold_must_expire_and_a_release_need_not_say_when() -> None:
    assert codes(normalize("ecom", cloud_event("cart.hold.created", expires=None))) == [
        "MISSING_FIELD"
    ]
    assert events("ecom", cloud_event("cart.hold.released", expires=None))


def test_items_of_one_key_are_summed() -> None:
    items = [{"sku": "SKU-1", "quantity": 1, "locationId": "DC01"}] * 3
    (event,) = events("ecom", cloud_event("cart.hold.created", items=items))
    assert event["quantity"] == 3


@pytest.mark.parametrize(
    ("record", "code"),
    [
        (cloud_event("cart.updated"), "UNKNOWN_CODE"),
        ({**cloud_event("cart.hold.created"), "specversion": "0.3"}, "INVALID_FIELD"),
        ({**cloud_event("cart.hold.created"), "data": "x"}, "INVALID_FIELD"),
        (cloud_event("cart.hold.created", holdId=None), "MISSING_FIELD"),
        (
            cloud_event("cart.hold.created", items=[{"sku": "SKU-1", "quantity": 1}]),
            "MISSING_FIELD",
        ),
    ],
)
def test_unmappable_events_are_dead_lettered_with_a_reason(
    record: dict[str, Any], code: str
) -> None:
    result = normalize("ecom", record)
    assert codes(result) == [code] and not result.events
