"""Promise: when can ``q`` units of an item be promised at a location, and how sure is it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from transforms.fold import DEFAULT_GRACE_MS
from transforms.snapshot import TRANSFER, Snapshot, SupplyEntry

IMMEDIATE: Final = "IMMEDIATE"
CONDITIONAL_ON_TRANSFER: Final = "CONDITIONAL_ON_TRANSFER"
CONDITIONAL_ON_INBOUND: Final = "CONDITIONAL_ON_INBOUND"
BACKORDER: Final = "BACKORDER"

DEFAULT_CONFIDENCE: Final = 0.8


@dataclass(frozen=True, slots=True)
class Promise:
    promise_class: str
    date: int | None  # epoch millis; None for a backorder
    quantity: int
    available: int
    supply_used: tuple[str, ...] = ()  # reference ids walked, in order


def _confidence(entry: SupplyEntry) -> float:
    return 1.0 if entry.confidence is None else entry.confidence


def usable_supply(
    supply: tuple[SupplyEntry, ...], at: int, threshold: float, grace_ms: int
) -> list[SupplyEntry]:
    """Supply a promise may wait for, in date order (transfers first on a tie).

    Excluded: ASNs below the confidence threshold (an ASN without a confidence counts as
    1.0), entries with no expected date, and overdue entries (expected more than the
    grace period before ``at``), which would give a date in the past.
    """
    usable = [
        entry
        for entry in supply
        if entry.expected_at is not None
        and entry.quantity > 0
        and entry.expected_at + grace_ms >= at
        and (entry.kind == TRANSFER or _confidence(entry) >= threshold)
    ]
    usable.sort(key=lambda e: (e.expected_at, e.kind != TRANSFER, e.reference_id))
    return usable


def promise(
    snapshot: Snapshot,
    quantity: int,
    at: int,
    threshold: float = DEFAULT_CONFIDENCE,
    grace_ms: int = DEFAULT_GRACE_MS,
) -> Promise:
    """Apply the contract's promise rules to one key's snapshot at time ``at``."""
    if quantity < 0:
        raise ValueError("quantity must not be negative")
    if quantity <= snapshot.available:
        return Promise(IMMEDIATE, at, quantity, snapshot.available)
    covered = snapshot.available
    used: list[SupplyEntry] = []
    for entry in usable_supply(snapshot.supply, at, threshold, grace_ms):
        covered += entry.quantity
        used.append(entry)
        if covered >= quantity:
            assert entry.expected_at is not None
            only_transfers = all(e.kind == TRANSFER for e in used)
            return Promise(
                CONDITIONAL_ON_TRANSFER if only_transfers else CONDITIONAL_ON_INBOUND,
                max(at, entry.expected_at),
                quantity,
                snapshot.available,
                tuple(e.reference_id for e in used),
            )
    return Promise(BACKORDER, None, quantity, snapshot.available)
