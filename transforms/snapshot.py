"""The ATP snapshot of one key: the contract's quantities, derived from state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from state.model import KeyState
from transforms.timeutil import format_iso

TRANSFER: Final = "TRANSFER"
ASN: Final = "ASN"

QUANTITY_FIELDS: Final = (
    "on_hand",
    "quarantined",
    "allocated",
    "reserved",
    "safety_stock",
    "in_transit",
    "inbound",
    "available",
)
"""The contract's quantities of a snapshot, in the contract's order."""


def available_of(
    on_hand: int, quarantined: int, allocated: int, reserved: int, safety_stock: int
) -> int:
    """The contract's ``available``: never negative."""
    return max(0, on_hand - quarantined - allocated - reserved - safety_stock)


@dataclass(frozen=True, slots=True)
class SupplyEntry:
    """Open supply a promise can wait for: a transfer in transit or an ASN still inbound."""

    reference_id: str
    kind: str  # TRANSFER or ASN
    quantity: int
    expected_at: int | None
    confidence: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "reference_id": self.reference_id,
            "kind": self.kind,
            "quantity": self.quantity,
            "expected_at": None if self.expected_at is None else format_iso(self.expected_at),
            "confidence": self.confidence,
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    item_id: str
    location_id: str
    on_hand: int
    quarantined: int
    allocated: int
    reserved: int
    safety_stock: int
    in_transit: int
    inbound: int
    available: int
    version: int
    revision: int
    duplicates: int
    as_of: int | None
    last_event_id: str | None
    correlation_id: str | None
    supply: tuple[SupplyEntry, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The JSON-lines form: contract fields first, times as ISO-8601 UTC."""
        return {
            "item_id": self.item_id,
            "location_id": self.location_id,
            "on_hand": self.on_hand,
            "quarantined": self.quarantined,
            "allocated": self.allocated,
            "reserved": self.reserved,
            "safety_stock": self.safety_stock,
            "in_transit": self.in_transit,
            "inbound": self.inbound,
            "available": self.available,
            "version": self.version,
            "as_of": None if self.as_of is None else format_iso(self.as_of),
            "revision": self.revision,
            "duplicates": self.duplicates,
            "last_event_id": self.last_event_id,
            "correlation_id": self.correlation_id,
            "supply": [entry.to_json() for entry in self.supply],
        }


def supply_entries(state: KeyState) -> tuple[SupplyEntry, ...]:
    """Open supply lines, ordered by reference for a stable encoding."""
    entries: list[SupplyEntry] = []
    for ref in sorted(state.supply):
        line = state.supply[ref]
        if line.in_transit > 0:
            entries.append(SupplyEntry(ref, TRANSFER, line.in_transit, line.transfer_expected_at))
        if line.inbound > 0:
            entries.append(
                SupplyEntry(ref, ASN, line.inbound, line.asn_expected_at, line.asn_confidence)
            )
    return tuple(entries)


def available_now(state: KeyState) -> int:
    """``available`` of a state, from its running totals (O(1))."""
    return available_of(
        state.on_hand,
        state.quarantined,
        state.allocated_total,
        state.reserved_total,
        state.safety_stock,
    )


def quantities(state: KeyState) -> dict[str, int]:
    """The contract quantities of a state, for exception records and explanations."""
    allocated, reserved = state.allocated_total, state.reserved_total
    return {
        "on_hand": state.on_hand,
        "quarantined": state.quarantined,
        "allocated": allocated,
        "reserved": reserved,
        "safety_stock": state.safety_stock,
        "in_transit": state.in_transit,
        "inbound": state.inbound,
        "available": available_of(
            state.on_hand, state.quarantined, allocated, reserved, state.safety_stock
        ),
    }


def snapshot_of(state: KeyState, item_id: str, location_id: str, as_of: int | None) -> Snapshot:
    """The snapshot of a key at the engine clock ``as_of`` (expire first: see fold.expire)."""
    q = quantities(state)
    return Snapshot(
        item_id=item_id,
        location_id=location_id,
        on_hand=q["on_hand"],
        quarantined=q["quarantined"],
        allocated=q["allocated"],
        reserved=q["reserved"],
        safety_stock=q["safety_stock"],
        in_transit=q["in_transit"],
        inbound=q["inbound"],
        available=q["available"],
        version=state.version,
        revision=state.revision,
        duplicates=state.duplicates,
        as_of=as_of,
        last_event_id=state.last_event_id,
        correlation_id=state.last_correlation_id,
        supply=supply_entries(state),
    )
