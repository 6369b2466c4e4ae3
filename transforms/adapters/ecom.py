"""E-commerce cart holds: CloudEvents 1.0 (structured JSON) per record (docs/adapters.md).

A storefront holds stock for a cart while the shopper checks out. A hold is one
reservation, identified by its ``holdId``; a cart that changes gets a new hold and
releases the old one, so a hold's quantities never change after it is created (the
contract would report a re-created reservation with another quantity as a conflict).
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
    obj,
    objects,
    optional_text,
    text,
    units,
)

SOURCE: Final = "ECOM"

# CloudEvents type -> canonical type.
EVENT_TYPES: Final = {
    "cart.hold.created": ev.RESERVATION_CREATED,
    "cart.hold.extended": ev.RESERVATION_CREATED,  # same quantities, a later expiresAt
    "cart.hold.released": ev.RESERVATION_RELEASED,  # removed from the cart, or abandoned
    "cart.hold.converted": ev.RESERVATION_RELEASED,  # checked out: the OMS order reserves now
    "cart.hold.expired": ev.RESERVATION_RELEASED,  # the store's own expiry; harmless after ours
}


def _item(line: dict[str, Any]) -> tuple[str, str, int]:
    return text(line, "sku"), text(line, "locationId"), units(line.get("quantity"), "quantity")


def _map(record: dict[str, Any], options: Options) -> tuple[list[dict[str, Any]], str]:
    if record.get("specversion") != "1.0":
        raise MappingError(
            reasons.INVALID_FIELD, f"specversion must be '1.0': {record.get('specversion')!r}"
        )
    kind = code(record, "type", EVENT_TYPES)
    if kind in options.skip_codes:
        return [], reasons.SKIPPED_CODE
    event_type = EVENT_TYPES[kind]
    event_id = text(record, "id")
    occurred_at = iso_time(record, "time", options)
    data = obj(record, "data")
    hold = text(data, "holdId")
    items = each(objects(data, "items"), _item, lambda i, _: f"data.items[{i}]")
    # A hold without an expiry would reserve forever if the release were lost.
    expires_at = (
        iso_time(data, "expiresAt", options) if event_type == ev.RESERVATION_CREATED else None
    )
    totals: dict[tuple[str, str], int] = {}
    for item, location, quantity in items:
        totals[item, location] = totals.get((item, location), 0) + quantity
    channel, cart = optional_text(data, "channel"), optional_text(data, "cartId")
    return [
        event(
            event_id=f"{SOURCE}:{event_id}:{key_name(item, location)}",
            event_type=event_type,
            source_system=SOURCE,
            occurred_at=occurred_at,
            item_id=item,
            location_id=location,
            quantity=quantity,
            reference_id=hold,
            expires_at=expires_at,
            channel=channel,
            correlation_id=cart,
        )
        for (item, location), quantity in totals.items()
    ], reasons.NO_ATP_EFFECT


ADAPTER: Final = Adapter(
    system="ecom",
    source_system=SOURCE,
    codes=frozenset(EVENT_TYPES),
    line_oriented=True,
    normalize=json_normalizer(_map),
)
