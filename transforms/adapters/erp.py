"""ERP goods movements: one SAP-style material document per record (docs/adapters.md, "ERP").

A material document holds lines; each line moves a quantity of a material into (debit,
``S``) or out of (credit, ``H``) one stock type at one plant. The plant is the
location. Its movement type says what happened, so it decides which canonical event
carries the change of on-hand stock; the line's stock type decides the quarantine:
quality inspection and blocked stock are on hand but not sellable. A transfer posting
between stock types (321, 343, ...) has a line for each side, and only the quarantine
moves.

Lines are summed per event type, key and reference, so that the contract's
per-reference rules see one event per document (a second shipment of one order
would count as a split shipment). Within a document, events that lower ``available``
come before those that raise it, so a reader between the two never sees stock that is
not there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from transforms import events as ev
from transforms.adapters import reasons
from transforms.adapters.common import (
    Adapter,
    MappingError,
    Options,
    Result,
    code,
    dead,
    each,
    event,
    finish,
    load_object,
    local_millis,
    optional_text,
    text,
    units,
)

SOURCE: Final = "ERP"

# What a movement type does at plant level.
RECEIPT: Final = "receipt"  # into stock from a supplier (or a supplying plant)
ADJUST: Final = "adjust"  # into or out of stock, nothing else to track
SHIPMENT: Final = "shipment"  # out to a customer, against a sales order
TRANSFER_ISSUE: Final = "transfer-issue"  # out to another plant, in transit
PLANT_TRANSFER: Final = "plant-transfer"  # one step: out of one plant, into another
IN_PLANT: Final = "in-plant"  # between storage locations or stock types of one plant
REJECT: Final = "reject"  # understood, but the contract cannot express it


@dataclass(frozen=True, slots=True)
class Movement:
    code: str
    meaning: str
    kind: str
    direction: str | None
    """``S`` or ``H`` on every line; None when a document has a line for each side."""
    reverses: str | None = None
    stock_types: tuple[str, str] | None = None
    """For a transfer posting between stock types: (the ``H`` side's, the ``S`` side's)."""


MOVEMENTS: Final = {
    m.code: m
    for m in (
        Movement("101", "goods receipt for purchase order", RECEIPT, "S"),
        Movement("102", "reversal of goods receipt", ADJUST, "H", "101"),
        Movement("122", "return delivery to supplier", ADJUST, "H"),
        Movement("123", "reversal of return delivery", ADJUST, "S", "122"),
        Movement("201", "goods issue to cost center", ADJUST, "H"),
        Movement("202", "reversal of goods issue to cost center", ADJUST, "S", "201"),
        Movement("261", "goods issue for order", ADJUST, "H"),
        Movement("262", "reversal of goods issue for order", ADJUST, "S", "261"),
        Movement("301", "transfer posting plant to plant", PLANT_TRANSFER, None),
        Movement("302", "reversal of plant-to-plant transfer", PLANT_TRANSFER, None, "301"),
        Movement("311", "transfer posting storage location to storage location", IN_PLANT, None),
        Movement("312", "reversal of storage location transfer", IN_PLANT, None, "311"),
        Movement("321", "quality inspection to unrestricted", IN_PLANT, None, None, ("02", "01")),
        Movement("322", "unrestricted to quality inspection", IN_PLANT, None, "321", ("01", "02")),
        Movement("343", "blocked to unrestricted", IN_PLANT, None, None, ("07", "01")),
        Movement("344", "unrestricted to blocked", IN_PLANT, None, "343", ("01", "07")),
        Movement("349", "blocked to quality inspection", IN_PLANT, None, None, ("07", "02")),
        Movement("350", "quality inspection to blocked", IN_PLANT, None, "349", ("02", "07")),
        Movement("551", "withdrawal for scrapping", ADJUST, "H"),
        Movement("552", "reversal of scrapping", ADJUST, "S", "551"),
        Movement("601", "goods issue for delivery", SHIPMENT, "H"),
        Movement("602", "reversal of goods issue for delivery", ADJUST, "S", "601"),
        Movement("641", "goods issue for stock transport order", TRANSFER_ISSUE, "H"),
        Movement("642", "reversal of goods issue for stock transport", REJECT, "S", "641"),
        Movement("701", "inventory difference: gain", ADJUST, "S"),
        Movement("702", "inventory difference: loss", ADJUST, "H"),
    )
}

# InventoryStockType -> held (on hand, not sellable)?
STOCK_TYPES: Final = {"01": False, "02": True, "07": True}
STOCK_TYPE_NAMES: Final = {"01": "unrestricted", "02": "quality inspection", "07": "blocked"}

# InventorySpecialStockType: stock that is not the plant's own, free stock. ATP counts
# own stock only, so these lines are left out (ignored, SPECIAL_STOCK).
SPECIAL_STOCKS: Final = {
    "E": "sales order stock",
    "K": "supplier consignment",
    "O": "parts provided to a supplier",
    "Q": "project stock",
    "V": "returnable packaging at a customer",
    "W": "consignment at a customer",
}


@dataclass(frozen=True, slots=True)
class _Line:
    number: str
    movement: Movement
    item: str
    plant: str
    debit: bool
    held: bool
    quantity: int
    other_plant: str | None
    purchase_order: str | None
    sales_order: str | None
    reversed: str | None


@dataclass(slots=True)
class _Group:
    first_line: str
    quantity: int
    correlation: str | None


# Phases: events that lower available first, so no reader sees stock that is not there.
_PHASE: Final = {
    ev.QUALITY_HOLD: 0,
    ev.SHIPMENT: 1,
    ev.TRANSFER_SHIPPED: 1,
    ev.RECEIPT: 2,
    ev.TRANSFER_RECEIVED: 2,
    ev.QUALITY_RELEASE: 3,
}


_QUARANTINE: Final = "quarantine"  # a group's marker: the net change of held stock
_NETTED: Final = frozenset({ev.QUALITY_HOLD, ev.QUALITY_RELEASE, ev.ADJUSTMENT})


def _items(header: dict[str, Any]) -> list[dict[str, Any]]:
    """The lines: OData v2 nests them as ``{"results": [...]}``; a plain list also works."""
    value = header.get("to_MaterialDocumentItem")
    if isinstance(value, dict):
        value = value.get("results")
    if not value:
        raise MappingError(reasons.MISSING_FIELD, "to_MaterialDocumentItem has no lines")
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise MappingError(reasons.INVALID_FIELD, "to_MaterialDocumentItem must hold objects")
    return value


_ODATA_DATE: Final = re.compile(r"/Date\((-?\d+)\)/")
_ODATA_TIME: Final = re.compile(r"PT(\d{1,2})H(\d{1,2})M(\d{1,2})S")


def _created_at(header: dict[str, Any], options: Options) -> int:
    """CreationDate and CreationTime, in the ERP's time zone; ISO or OData v2 forms."""
    day_text, time_text = text(header, "CreationDate"), text(header, "CreationTime")
    try:
        odata = _ODATA_DATE.fullmatch(day_text)
        day = (
            (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(odata.group(1)))).date()
            if odata
            else date.fromisoformat(day_text)
        )
    except ValueError:
        raise MappingError(
            reasons.INVALID_FIELD, f"CreationDate is not a date: {day_text!r}"
        ) from None
    try:
        duration = _ODATA_TIME.fullmatch(time_text)
        clock = (
            time(int(duration[1]), int(duration[2]), int(duration[3]))
            if duration
            else time.fromisoformat(time_text)
        )
    except ValueError:
        raise MappingError(
            reasons.INVALID_FIELD, f"CreationTime is not a time: {time_text!r}"
        ) from None
    return local_millis(datetime.combine(day, clock), options)


def _line(item: dict[str, Any], options: Options) -> _Line | str:
    """A parsed line, or the reason it is left out."""
    number = text(item, "MaterialDocumentItem")
    movement_type = code(item, "GoodsMovementType", MOVEMENTS)
    movement = MOVEMENTS[movement_type]
    special = optional_text(item, "InventorySpecialStockType")
    if special is not None:
        code(item, "InventorySpecialStockType", SPECIAL_STOCKS)
    stock_type = code(item, "InventoryStockType", STOCK_TYPES)
    direction = code(item, "DebitCreditCode", {"S": "debit", "H": "credit"})
    quantity = units(item.get("QuantityInBaseUnit"), "QuantityInBaseUnit")
    line = _Line(
        number=number,
        movement=movement,
        item=text(item, "Material"),
        plant=text(item, "Plant"),
        debit=direction == "S",
        held=STOCK_TYPES[stock_type],
        quantity=quantity,
        other_plant=optional_text(item, "IssuingOrReceivingPlant"),
        purchase_order=optional_text(item, "PurchaseOrder"),
        sales_order=optional_text(item, "SalesOrder"),
        reversed=_reversed(item),
    )
    if movement.kind == REJECT:
        raise MappingError(
            reasons.NOT_MAPPABLE,
            f"{movement_type} ({movement.meaning}): the contract has no event that takes "
            "shipped quantity back from a transfer; correct it at both plants by hand",
        )
    if movement.direction is not None and direction != movement.direction:
        raise MappingError(
            reasons.DIRECTION_MISMATCH,
            f"{movement_type} ({movement.meaning}) posts {movement.direction}, not {direction}",
        )
    if movement.stock_types is not None:
        expected = movement.stock_types[1 if line.debit else 0]
        if stock_type != expected:
            raise MappingError(
                reasons.STOCK_TYPE_MISMATCH,
                f"{movement_type} ({movement.meaning}): the {direction} line must be in "
                f"{STOCK_TYPE_NAMES[expected]} stock ({expected}), not {stock_type}",
            )
    if movement.kind in {PLANT_TRANSFER, TRANSFER_ISSUE} or (
        movement.kind == RECEIPT and line.other_plant is not None
    ):
        if line.other_plant is None:
            raise MappingError(reasons.MISSING_FIELD, "IssuingOrReceivingPlant is missing")
        if movement.kind != PLANT_TRANSFER and line.purchase_order is None:
            raise MappingError(
                reasons.MISSING_FIELD, "PurchaseOrder (stock transport order) is missing"
            )
    if movement.kind == SHIPMENT and line.sales_order is None:
        raise MappingError(reasons.MISSING_FIELD, "SalesOrder is missing")
    if special is not None:
        return reasons.SPECIAL_STOCK
    if movement_type in options.skip_codes:
        return reasons.SKIPPED_CODE
    return line


def _reversed(item: dict[str, Any]) -> str | None:
    document = optional_text(item, "ReversedMaterialDocument")
    year = optional_text(item, "ReversedMaterialDocumentYear")
    return None if document is None else f"{document}/{year or ''}".rstrip("/")


def _check_balance(lines: list[_Line]) -> None:
    """Both sides of a transfer posting must be in the document: the adapter sees one
    document at a time, and half a transfer would create or destroy stock."""
    sums: dict[tuple[str, ...], int] = {}
    for line in lines:
        if line.movement.kind == IN_PLANT:
            key: tuple[str, ...] = (line.movement.code, line.item, line.plant)
        elif line.movement.kind == PLANT_TRANSFER:
            key = (line.movement.code, line.item)
        else:
            continue
        sums[key] = sums.get(key, 0) + (line.quantity if line.debit else -line.quantity)
    unbalanced = [key for key, total in sums.items() if total]
    if unbalanced:
        raise MappingError(
            reasons.UNBALANCED_DOCUMENT,
            "transfer posting lines do not balance for "
            + ", ".join("/".join(key) for key in unbalanced),
        )


def _on_hand_event(
    line: _Line, document: str, reference_document: str | None
) -> tuple[str, str | None, str | None, int] | None:
    """(event type, reference, destination, signed quantity) of a line's on-hand change."""
    kind, q = line.movement.kind, line.quantity
    if kind == IN_PLANT:
        return None
    if kind == RECEIPT:
        if line.other_plant is not None:  # a stock transport order arriving
            return ev.TRANSFER_RECEIVED, line.purchase_order, None, q
        # The delivery note of an ASN-notified receipt is the ASN's shipment id.
        return ev.RECEIPT, reference_document or line.purchase_order, None, q
    if kind == SHIPMENT:
        return ev.SHIPMENT, line.sales_order, None, q
    if kind == TRANSFER_ISSUE:
        return ev.TRANSFER_SHIPPED, line.purchase_order, line.other_plant, q
    if kind == PLANT_TRANSFER:
        if line.debit:
            return ev.TRANSFER_RECEIVED, document, None, q
        return ev.TRANSFER_SHIPPED, document, line.other_plant, q
    return ev.ADJUSTMENT, None, None, q if line.debit else -q


def _map(raw: bytes, options: Options) -> list[Result]:
    try:
        header = load_object(raw)
        if set(header) == {"d"} and isinstance(header["d"], dict):  # OData v2 envelope
            header = header["d"]
        year, number = text(header, "MaterialDocumentYear"), text(header, "MaterialDocument")
        occurred_at = _created_at(header, options)
        reference_document = optional_text(header, "ReferenceDocument")
        parsed = each(
            _items(header),
            lambda item: _line(item, options),
            lambda i, item: f"line {item.get('MaterialDocumentItem') or i + 1}",
        )
        lines = [line for line in parsed if isinstance(line, _Line)]
        _check_balance(lines)
    except MappingError as err:
        return [dead(raw, err)]

    document = f"{number}/{year}"
    groups: dict[tuple[str, str, str, str | None, str | None], _Group] = {}

    def add(key: tuple[str, str, str, str | None, str | None], line: _Line, q: int) -> None:
        group = groups.get(key)
        if group is None:
            groups[key] = _Group(line.number, q, line.reversed or document)
        else:
            group.quantity += q

    for line in lines:
        change = _on_hand_event(line, document, reference_document)
        if change is not None:
            event_type, reference, destination, q = change
            add((event_type, line.item, line.plant, reference, destination), line, q)
        if line.held:  # quarantined stock moves with the line; netted per key
            held = line.quantity if line.debit else -line.quantity
            add((_QUARANTINE, line.item, line.plant, None, None), line, held)

    out: list[tuple[int, dict[str, Any]]] = []
    for (kind, item, plant, reference, destination), group in groups.items():
        quantity = group.quantity
        event_type = kind
        if kind == _QUARANTINE:
            event_type = ev.QUALITY_HOLD if quantity > 0 else ev.QUALITY_RELEASE
        if quantity == 0 and event_type in _NETTED:
            continue  # lines that cancel out within the document change nothing
        record = event(
            event_id=f"{SOURCE}:{year}:{number}:{group.first_line}:{event_type}",
            event_type=event_type,
            source_system=SOURCE,
            occurred_at=occurred_at,
            item_id=item,
            location_id=plant,
            quantity=quantity if event_type == ev.ADJUSTMENT else abs(quantity),
            reference_id=reference,
            to_location_id=destination,
            correlation_id=group.correlation,
        )
        out.append((_phase(event_type, quantity), record))
    out.sort(key=lambda pair: pair[0])  # stable: line order within a phase
    skipped = [line for line in parsed if isinstance(line, str)]
    ignored = skipped[0] if skipped else reasons.NO_ATP_EFFECT
    return [finish(raw, (record for _, record in out), ignored=ignored)]


def _phase(event_type: str, quantity: int) -> int:
    if event_type == ev.ADJUSTMENT:
        return 1 if quantity < 0 else 2
    return _PHASE[event_type]


ADAPTER: Final = Adapter(
    system="erp",
    source_system=SOURCE,
    codes=frozenset(MOVEMENTS),
    line_oriented=True,
    normalize=_map,
)
