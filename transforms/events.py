"""The canonical inventory event, as the fold sees it after validation."""

from __future__ import annotations

from typing import Final, NamedTuple

RECEIPT: Final = "RECEIPT"
ADJUSTMENT: Final = "ADJUSTMENT"
CYCLE_COUNT: Final = "CYCLE_COUNT"
QUALITY_HOLD: Final = "QUALITY_HOLD"
QUALITY_RELEASE: Final = "QUALITY_RELEASE"
RETURN: Final = "RETURN"
RESERVATION_CREATED: Final = "RESERVATION_CREATED"
RESERVATION_RELEASED: Final = "RESERVATION_RELEASED"
ALLOCATION: Final = "ALLOCATION"
SHIPMENT: Final = "SHIPMENT"
ORDER_CANCELED: Final = "ORDER_CANCELED"
ASN: Final = "ASN"
TRANSFER_SHIPPED: Final = "TRANSFER_SHIPPED"
TRANSFER_RECEIVED: Final = "TRANSFER_RECEIVED"
SAFETY_STOCK_SET: Final = "SAFETY_STOCK_SET"

EVENT_TYPES: Final = frozenset(
    {
        RECEIPT,
        ADJUSTMENT,
        CYCLE_COUNT,
        QUALITY_HOLD,
        QUALITY_RELEASE,
        RETURN,
        RESERVATION_CREATED,
        RESERVATION_RELEASED,
        ALLOCATION,
        SHIPMENT,
        ORDER_CANCELED,
        ASN,
        TRANSFER_SHIPPED,
        TRANSFER_RECEIVED,
        SAFETY_STOCK_SET,
    }
)

# Types whose effect is tied to an order, reservation, ASN or transfer id.
REFERENCE_TYPES: Final = frozenset(
    {
        RESERVATION_CREATED,
        RESERVATION_RELEASED,
        ALLOCATION,
        SHIPMENT,
        ORDER_CANCELED,
        ASN,
        TRANSFER_SHIPPED,
        TRANSFER_RECEIVED,
    }
)

Key = tuple[str, str]
"""``(item_id, location_id)``: the unit of state and of ordering."""


class Event(NamedTuple):
    """A validated canonical event. Times are epoch millis.

    A named tuple rather than a frozen dataclass: it is built once per event in every
    engine, and a tuple is several times cheaper to construct.
    """

    event_id: str
    event_type: str
    item_id: str
    location_id: str
    quantity: int
    occurred_at: int
    source_system: str | None = None
    reference_id: str | None = None
    to_location_id: str | None = None
    expected_at: int | None = None
    expires_at: int | None = None
    confidence: float | None = None
    channel: str | None = None
    correlation_id: str | None = None


def locations_touched(event: Event) -> tuple[str, ...]:
    """The locations whose state this event changes: transfers touch source and destination."""
    if event.event_type == TRANSFER_SHIPPED and event.to_location_id is not None:
        return (event.location_id, event.to_location_id)
    return (event.location_id,)


def keys_touched(event: Event) -> list[Key]:
    """Fan-out: the keys an event must be folded into, in a fixed order."""
    return [(event.item_id, loc) for loc in locations_touched(event)]
