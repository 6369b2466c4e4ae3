"""OMS order and reservation events: one JSON event per record (docs/adapters.md, "OMS").

An order reserves its lines at their ship nodes until the warehouse allocates them; a
reservation (a quote, a payment in progress) reserves until it is released or expires.
Lines of one order for the same SKU and node are summed: the contract keeps one
reservation per reference and key, and a second create would replace the first.
"""

from __future__ import annotations

from typing import Any, Final

from transforms import events as ev
from transforms.adapters import reasons
from transforms.adapters.common import (
    Adapter,
    Options,
    code,
    each,
    event,
    iso_time,
    json_normalizer,
    key_name,
    objects,
    optional_iso_time,
    optional_text,
    text,
    units,
)

SOURCE: Final = "OMS"

# eventType -> (canonical type or None for no effect, the field holding the reference).
EVENT_TYPES: Final[dict[str, tuple[str | None, str]]] = {
    "ORDER_CREATED": (ev.RESERVATION_CREATED, "orderNumber"),
    "ORDER_CANCELLED": (ev.ORDER_CANCELED, "orderNumber"),
    "ORDER_RELEASED": (None, "orderNumber"),  # to the warehouse, which allocates it
    "RESERVATION_CREATED": (ev.RESERVATION_CREATED, "reservationId"),
    "RESERVATION_RELEASED": (ev.RESERVATION_RELEASED, "reservationId"),
}


def _line(line: dict[str, Any]) -> tuple[str, str, int]:
    return text(line, "sku"), text(line, "shipNode"), units(line.get("quantity"), "quantity")


def _map(record: dict[str, Any], options: Options) -> tuple[list[dict[str, Any]], str]:
    event_kind = code(record, "eventType", EVENT_TYPES)
    if event_kind in options.skip_codes:
        return [], reasons.SKIPPED_CODE
    event_type, reference_field = EVENT_TYPES[event_kind]
    event_id = text(record, "eventId")
    occurred_at = iso_time(record, "eventTime", options)
    reference = text(record, reference_field)
    lines = each(objects(record, "lines"), _line, lambda i, _: f"lines[{i}]")
    if event_type is None:
        return [], reasons.NO_ATP_EFFECT
    # Orders never expire; a reservation may.
    expires_at = (
        optional_iso_time(record, "expiresAt", options)
        if reference_field == "reservationId"
        else None
    )
    totals: dict[tuple[str, str], int] = {}
    for item, node, quantity in lines:
        totals[item, node] = totals.get((item, node), 0) + quantity
    channel = optional_text(record, "salesChannel")
    return [
        event(
            event_id=f"{SOURCE}:{event_id}:{key_name(item, node)}",
            event_type=event_type,
            source_system=SOURCE,
            occurred_at=occurred_at,
            item_id=item,
            location_id=node,
            quantity=quantity,
            reference_id=reference,
            expires_at=expires_at,
            channel=channel,
            correlation_id=optional_text(record, "orderNumber"),
        )
        for (item, node), quantity in totals.items()
    ], reasons.NO_ATP_EFFECT


ADAPTER: Final = Adapter(
    system="oms",
    source_system=SOURCE,
    codes=frozenset(EVENT_TYPES),
    line_oriented=True,
    normalize=json_normalizer(_map),
)
