"""EDI X12 856 ship notices (ASNs): supply on its way to us (docs/adapters.md, "EDI 856").

An 856 is a tree of HL levels: the shipment (S), its orders (O), packs (P) or tares
(T), and items (I). Each item level says what (LIN, the buyer's part number) and how
many (SN1); where to (N1*ST) and when (DTM*017, estimated delivery) are inherited from
the nearest level above that says so. The shipment's id (BSN02) is the ASN reference:
a receipt counts against it when the ERP's delivery note is that id, and a replacement
ASN for the same shipment replaces its quantities, as the contract says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Final

from transforms import events as ev
from transforms.adapters import reasons, x12
from transforms.adapters.common import (
    Adapter,
    MappingError,
    Options,
    Result,
    each,
    each_unit,
    event,
    finish,
    key_name,
    local_millis,
    units,
    zone,
)
from transforms.validation import Violation

SOURCE: Final = "EDI"

# BSN01 transaction set purpose.
PURPOSES: Final = {
    "00": "original",
    "05": "replace",
    "07": "duplicate",
    "01": "cancellation",  # every listed item's ASN quantity becomes 0
}
# HL03 hierarchical level codes.
LEVELS: Final = {"S": "shipment", "O": "order", "P": "pack", "T": "tare", "I": "item"}
SHIP_TO_QUALIFIERS: Final = {"92": "assigned by buyer"}  # N103: only our own codes map
ITEM_QUALIFIER: Final = "BP"  # LIN: buyer's part number, our SKU

# DTM04 time codes; LT (local) is the source's own time zone.
_HOURS: Final = {"ES": -5, "ED": -4, "CS": -6, "CD": -5, "MS": -7, "MD": -6, "PS": -8, "PD": -7}
TIME_CODES: Final[dict[str, tzinfo | None]] = {
    "UT": UTC,
    "GM": UTC,
    "ET": zone("America/New_York"),
    "CT": zone("America/Chicago"),
    "MT": zone("America/Denver"),
    "PT": zone("America/Los_Angeles"),
    **{code: timezone(timedelta(hours=hours)) for code, hours in _HOURS.items()},
    "LT": None,
}


@dataclass(slots=True)
class _Level:
    id: str
    code: str
    parent: _Level | None
    segments: list[x12.Segment] = field(default_factory=list)

    def lineage(self) -> list[_Level]:
        """This level, then each level above it, up to the heading."""
        out: list[_Level] = []
        level: _Level | None = self
        while level is not None:
            out.append(level)
            level = level.parent
        return out


def _find(level: _Level, tag: str, qualifier: str | None = None) -> x12.Segment | None:
    """The nearest segment with ``tag`` (and element 01 ``qualifier``) at or above a level."""
    for holder in level.lineage():
        for segment in holder.segments:
            if segment.tag == tag and (qualifier is None or segment.el(1) == qualifier):
                return segment
    return None


def _moment(day: str, clock: str, where: str, tz: tzinfo | None, options: Options) -> int:
    """CCYYMMDD and HHMM[SS[D..]] as epoch millis."""
    if len(day) != 8 or not day.isdigit() or len(clock) < 4 or not clock.isdigit():
        raise MappingError(reasons.INVALID_FIELD, f"{where}: not a date and time: {day} {clock}")
    try:
        moment = datetime(
            int(day[:4]),
            int(day[4:6]),
            int(day[6:]),
            int(clock[:2]),
            int(clock[2:4]),
            int(clock[4:6] or 0),
            tzinfo=tz,
        )
    except ValueError:
        raise MappingError(reasons.INVALID_FIELD, f"{where}: not a date: {day} {clock}") from None
    return local_millis(moment, options)


def _dtm(segment: x12.Segment, options: Options) -> int:
    code = segment.el(4)
    if code and code not in TIME_CODES:
        raise MappingError(reasons.UNKNOWN_CODE, f"DTM*{segment.el(1)}: time code {code!r}")
    tz = TIME_CODES.get(code) if code else None
    return _moment(segment.el(2), segment.el(3) or "0000", f"DTM*{segment.el(1)}", tz, options)


def _tree(ts: x12.TransactionSet) -> tuple[_Level, list[_Level]]:
    """The heading (segments before the first HL) and the HL levels, parents checked."""
    heading = _Level("", "heading", None)
    levels: dict[str, _Level] = {}
    current = heading
    for segment in ts.segments[2:-1]:  # after ST and BSN, before SE
        if segment.tag != "HL":
            current.segments.append(segment)
            continue
        number, parent_id, level_code = segment.el(1), segment.el(2), segment.el(3)
        if level_code not in LEVELS:
            raise MappingError(reasons.UNKNOWN_CODE, f"HL*{number}: level code {level_code!r}")
        if not number or number in levels:
            raise MappingError(reasons.HL_STRUCTURE, f"HL id {number!r} is missing or repeated")
        if level_code == "S":
            if parent_id or any(level.code == "S" for level in levels.values()):
                raise MappingError(reasons.HL_STRUCTURE, f"HL*{number}: one shipment level, first")
            parent = heading
        elif parent_id not in levels:
            raise MappingError(
                reasons.HL_STRUCTURE, f"HL*{number}: parent {parent_id!r} is not an earlier HL"
            )
        else:
            parent = levels[parent_id]
        current = levels[number] = _Level(number, level_code, parent)
    if not levels or next(iter(levels.values())).code != "S":
        raise MappingError(reasons.HL_STRUCTURE, "the first HL must be the shipment level (S)")
    return heading, list(levels.values())


Line = tuple[str, str, int, int, str | None]
"""(item, ship-to location, quantity, expected delivery, purchase order)."""


def _item(level: _Level, options: Options) -> Line:
    lin = next((s for s in level.segments if s.tag == "LIN"), None)
    if lin is None:
        raise MappingError(reasons.MISSING_FIELD, "no LIN segment")
    pairs = dict(zip(lin.elements[1::2], lin.elements[2::2], strict=False))
    item = pairs.get(ITEM_QUALIFIER, "").strip()
    if not item:
        raise MappingError(
            reasons.MISSING_FIELD,
            f"LIN has no buyer's part number ({ITEM_QUALIFIER}); "
            f"qualifiers present: {', '.join(sorted(k for k in pairs if k)) or 'none'}",
        )
    sn1 = next((s for s in level.segments if s.tag == "SN1"), None)
    if sn1 is None:
        raise MappingError(reasons.MISSING_FIELD, "no SN1 segment (quantity shipped)")
    quantity = units(sn1.el(2), "SN102")
    each_unit(sn1.el(3), "SN103")
    ship_to = _find(level, "N1", "ST")
    if ship_to is None:
        raise MappingError(reasons.MISSING_FIELD, "no ship-to party (N1*ST) at or above the item")
    if ship_to.el(3) not in SHIP_TO_QUALIFIERS:
        raise MappingError(
            reasons.UNKNOWN_CODE,
            f"N1*ST identifies the location by qualifier {ship_to.el(3)!r}; only 92 "
            "(assigned by buyer) is one of our location ids",
        )
    if not ship_to.el(4):
        raise MappingError(reasons.MISSING_FIELD, "N1*ST has no location id (N104)")
    delivery = _find(level, "DTM", "017")
    if delivery is None:
        raise MappingError(
            reasons.MISSING_FIELD, "no estimated delivery date (DTM*017) at or above the item"
        )
    order = _find(level, "PRF")
    return item, ship_to.el(4), quantity, _dtm(delivery, options), order.el(1) if order else None


def _asn(ts: x12.TransactionSet, options: Options) -> Result:
    source = {**ts.envelope.source(), "transaction_set_control_number": ts.control_number}
    source["line"] = ts.line
    try:
        if ts.segments[0].el(1) != "856":
            raise MappingError(
                reasons.UNSUPPORTED_TRANSACTION_SET,
                f"transaction set {ts.segments[0].el(1)!r} is not an 856 ship notice",
            )
        bsn = ts.segments[1]
        if bsn.tag != "BSN":
            raise MappingError(reasons.X12_SYNTAX, f"856 must start with BSN, not {bsn.tag}")
        purpose = bsn.el(1)
        if purpose not in PURPOSES:
            raise MappingError(reasons.UNKNOWN_CODE, f"BSN01 purpose code {purpose!r}")
        if purpose in options.skip_codes:
            return Result(ts.raw, ignored=reasons.SKIPPED_CODE, source=source)
        shipment = bsn.el(2)
        if not shipment:
            raise MappingError(reasons.MISSING_FIELD, "BSN02 shipment identification is missing")
        occurred_at = _moment(bsn.el(3), bsn.el(4), "BSN03/BSN04", None, options)
        _, levels = _tree(ts)
        items = [level for level in levels if level.code == "I"]
        if not items:
            raise MappingError(reasons.MISSING_FIELD, "no item level (HL*I)")
        lines = each(items, lambda level: _item(level, options), lambda _, lv: f"HL*{lv.id}")
    except MappingError as err:
        return Result(ts.raw, violations=err.violations, source=source)

    # One ASN per shipment and key: a later ASN for the same reference replaces the
    # earlier one, so the items of every order and pack are summed first.
    totals: dict[tuple[str, str], list[Any]] = {}
    for item, location, quantity, expected_at, order in lines:
        entry = totals.setdefault((item, location), [0, expected_at, order])
        entry[0] += quantity
        entry[1] = max(entry[1], expected_at)
    sender = ts.envelope.sender
    return finish(
        ts.raw,
        (
            event(
                event_id=f"{SOURCE}:{sender}:{shipment}:{bsn.el(3)}{bsn.el(4)}:"
                f"{key_name(item, location)}",
                event_type=ev.ASN,
                source_system=SOURCE,
                occurred_at=occurred_at,
                item_id=item,
                location_id=location,
                quantity=0 if purpose == "01" else quantity,
                reference_id=shipment,
                expected_at=expected_at,
                correlation_id=order,
            )
            for (item, location), (quantity, expected_at, order) in totals.items()
        ),
        source=source,
    )


def _normalize(data: bytes, options: Options) -> list[Result]:
    out: list[Result] = []
    for unit in x12.transaction_sets(data):
        if isinstance(unit, x12.Broken):
            out.append(
                Result(
                    unit.raw, violations=unit.violations, source={**unit.source, "line": unit.line}
                )
            )
        else:
            out.append(_asn(unit, options))
    if not out:  # an empty message is not an interchange; it must not vanish
        return [Result(data, violations=(Violation(reasons.X12_SYNTAX, "no interchange"),))]
    return out


ADAPTER: Final = Adapter(
    system="edi856",
    source_system=SOURCE,
    codes=frozenset(PURPOSES),
    line_oriented=False,
    normalize=_normalize,
)
