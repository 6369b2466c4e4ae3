"""TMS shipment confirmations: one JSON status message per record (docs/adapters.md).

A load leaves an origin and visits stops; each stop lists the orders delivered there.
An outbound load carries customer orders (OMS order numbers); a transfer load carries
stock transport orders between own locations, and the TMS knows when it will arrive.
"""

from __future__ import annotations

from typing import Any, Final

from transforms import events as ev
from transforms.adapters import reasons
from transforms.adapters.common import (
    Adapter,
    MappingError,
    Options,
    code,
    each,
    event,
    iso_time,
    json_normalizer,
    key_name,
    objects,
    optional_iso_time,
    text,
    units,
)

SOURCE: Final = "TMS"

EVENT_CODES: Final = {
    "SHIPMENT_CONFIRMED": "the load left its origin",
    "ETA_UPDATED": "a new estimated arrival at the stops",
    "DELIVERED": "proof of delivery; the receiving site books the receipt",
    "TENDER_ACCEPTED": "a carrier accepted the load; nothing moved yet",
}
SHIPMENT_TYPES: Final = {"OUTBOUND": "customer orders", "TRANSFER": "stock transport orders"}

Line = tuple[str, str, str, int, int | None]
"""(order id, sku, stop location, quantity, estimated arrival at the stop)."""


def _stop(stop: dict[str, Any], options: Options) -> list[Line]:
    location = text(stop, "locationId")
    arrival = optional_iso_time(stop, "estimatedArrival", options)

    def order(entry: dict[str, Any]) -> list[Line]:
        order_id = text(entry, "orderId")

        def line(item: dict[str, Any]) -> Line:
            return (
                order_id,
                text(item, "sku"),
                location,
                units(item.get("quantity"), "quantity"),
                arrival,
            )

        return each(objects(entry, "lines"), line, lambda i, _: f"lines[{i}]")

    orders = each(objects(stop, "orders"), order, lambda i, _: f"orders[{i}]")
    return [line for lines in orders for line in lines]


def _map(record: dict[str, Any], options: Options) -> tuple[list[dict[str, Any]], str]:
    event_code = code(record, "eventCode", EVENT_CODES)
    if event_code in options.skip_codes:
        return [], reasons.SKIPPED_CODE
    shipment_type = code(record, "shipmentType", SHIPMENT_TYPES)
    message_id = text(record, "messageId")
    occurred_at = iso_time(record, "eventTime", options)
    shipment, origin = text(record, "shipmentId"), text(record, "origin")
    stops = each(objects(record, "stops"), lambda s: _stop(s, options), lambda i, _: f"stops[{i}]")
    lines = [line for stop in stops for line in stop]
    transfer = shipment_type == "TRANSFER"
    if event_code in {"DELIVERED", "TENDER_ACCEPTED"} or (
        event_code == "ETA_UPDATED" and not transfer
    ):
        return [], reasons.NO_ATP_EFFECT

    # One event per order and key: a second shipment of a closed order would count as a
    # split shipment, and transfer quantities add up at the destination.
    totals: dict[tuple[str, str, str], tuple[int, int | None]] = {}
    for order_id, item, stop, quantity, arrival in lines:
        place = stop if transfer else origin
        before, _ = totals.get((order_id, item, place), (0, None))
        totals[order_id, item, place] = (before + quantity, arrival)
    out = []
    for (order_id, item, place), (quantity, arrival) in totals.items():
        if event_code == "ETA_UPDATED" and arrival is None:
            raise MappingError(
                reasons.MISSING_FIELD, f"estimatedArrival is missing at stop {place}"
            )
        out.append(
            event(
                event_id=f"{SOURCE}:{message_id}:{order_id}:{key_name(item, place)}",
                event_type=ev.TRANSFER_SHIPPED if transfer else ev.SHIPMENT,
                source_system=SOURCE,
                occurred_at=occurred_at,
                item_id=item,
                location_id=origin,
                # An ETA update moves the date only: it ships nothing more.
                quantity=0 if event_code == "ETA_UPDATED" else quantity,
                reference_id=order_id,
                to_location_id=place if transfer else None,
                expected_at=arrival if transfer else None,
                correlation_id=shipment,
            )
        )
    return out, reasons.NO_ATP_EFFECT


ADAPTER: Final = Adapter(
    system="tms",
    source_system=SOURCE,
    codes=frozenset(EVENT_CODES),
    line_oriented=True,
    normalize=json_normalizer(_map),
)
