"""WMS status events: one JSON transaction per record (docs/adapters.md, "WMS").

The warehouse allocates order lines in waves, picks, ships, holds stock for quality
control and counts it. Its order ids are the OMS order numbers, so an allocation
consumes the OMS reservation of the same order and a shipment closes it.
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
    each_unit,
    event,
    iso_time,
    json_normalizer,
    optional_text,
    text,
    units,
)

SOURCE: Final = "WMS"

# txn_type -> canonical event type (None: understood, changes no quantity of the contract).
TXN_TYPES: Final[dict[str, str | None]] = {
    "WAVE_ALLOCATED": ev.ALLOCATION,
    "PICK_CONFIRMED": None,  # picked units stay on hand and allocated until they ship
    "SHIPPED": ev.SHIPMENT,
    "QC_HOLD": ev.QUALITY_HOLD,
    "QC_RELEASE": ev.QUALITY_RELEASE,
    "CYCLE_COUNT": ev.CYCLE_COUNT,  # or ADJUSTMENT for a bin count, see _count
}
COUNT_SCOPES: Final = {"FACILITY": "the SKU's total in the facility", "BIN": "one bin"}
_ORDER_TYPES: Final = frozenset({ev.ALLOCATION, ev.SHIPMENT})


def _map(record: dict[str, Any], options: Options) -> tuple[list[dict[str, Any]], str]:
    txn_type = code(record, "txn_type", TXN_TYPES)
    if txn_type in options.skip_codes:
        return [], reasons.SKIPPED_CODE
    event_type = TXN_TYPES[txn_type]
    txn_id = text(record, "txn_id")
    occurred_at = iso_time(record, "txn_ts", options)
    item, location = text(record, "sku"), text(record, "facility")
    quantity = units(record.get("qty"), "qty")
    each_unit(record.get("uom"), "uom")
    if event_type is None:
        return [], reasons.NO_ATP_EFFECT
    reference = text(record, "order_id") if event_type in _ORDER_TYPES else None
    if event_type == ev.CYCLE_COUNT:
        event_type, quantity = _count(record, quantity)
        if quantity == 0 and event_type == ev.ADJUSTMENT:
            return [], reasons.NO_ATP_EFFECT
    return [
        event(
            event_id=f"{SOURCE}:{txn_id}",
            event_type=event_type,
            source_system=SOURCE,
            occurred_at=occurred_at,
            item_id=item,
            location_id=location,
            quantity=quantity,
            reference_id=reference,
            correlation_id=optional_text(record, "wave_id"),
        )
    ], reasons.NO_ATP_EFFECT


def _count(record: dict[str, Any], counted: int) -> tuple[str, int]:
    """A facility count sets on_hand; a bin count only tells the bin's variance, because
    the rest of the facility was not counted."""
    if code(record, "count_scope", COUNT_SCOPES) == "FACILITY":
        return ev.CYCLE_COUNT, counted
    if record.get("system_qty") is None:
        raise MappingError(reasons.MISSING_FIELD, "system_qty is missing (a bin count's variance)")
    return ev.ADJUSTMENT, counted - units(record.get("system_qty"), "system_qty")


ADAPTER: Final = Adapter(
    system="wms",
    source_system=SOURCE,
    codes=frozenset(TXN_TYPES),
    line_oriented=True,
    normalize=json_normalizer(_map),
)
