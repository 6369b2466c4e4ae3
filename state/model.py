"""The per-key ATP state: plain data the fold reads and writes."""

from __future__ import annotations

from dataclasses import dataclass, field

from state.memory import StampedSet
from transforms.timeutil import DAY_MS


@dataclass(frozen=True, slots=True)
class Retention:
    """How long per-key memory lasts, in event time, and how much of it a key may hold.

    A redelivery older than the dedup horizon (or pushed out by the cap) is applied
    again; a tombstone older than its horizon no longer blocks a late create; a fully
    received supply line is dropped after its horizon. See docs/semantics.md.
    """

    dedup_horizon_ms: int = 7 * DAY_MS
    dedup_max_ids: int = 5_000
    tombstone_horizon_ms: int = 30 * DAY_MS
    tombstone_max: int = 5_000
    supply_horizon_ms: int = 30 * DAY_MS


DEFAULT_RETENTION = Retention()


@dataclass(slots=True)
class Reservation:
    """A soft reservation by the OMS or a cart; ``expires_at`` in epoch millis."""

    quantity: int
    expires_at: int | None = None


@dataclass(slots=True)
class SupplyLine:
    """Supply under one reference id: an ASN, a transfer, and receipts counted against them."""

    asn_quantity: int | None = None
    asn_expected_at: int | None = None
    asn_confidence: float | None = None
    shipped: int = 0
    transfer_expected_at: int | None = None
    received: int = 0
    asn_overdue_reported: bool = False
    transfer_overdue_reported: bool = False
    touched_at: int = 0

    @property
    def in_transit(self) -> int:
        return max(0, self.shipped - self.received)

    @property
    def inbound(self) -> int:
        if self.asn_quantity is None:
            return 0
        return max(0, self.asn_quantity - self.received)


@dataclass(slots=True)
class KeyState:
    """Everything the fold remembers for one ``(item_id, location_id)``."""

    on_hand: int = 0
    quarantined: int = 0
    safety_stock: int = 0
    reserved: dict[str, Reservation] = field(default_factory=dict)
    allocated: dict[str, int] = field(default_factory=dict)
    supply: dict[str, SupplyLine] = field(default_factory=dict)
    closed: StampedSet = field(default_factory=StampedSet)
    seen: StampedSet = field(default_factory=StampedSet)
    version: int = 0
    revision: int = 0
    duplicates: int = 0
    clock: int | None = None
    last_event_id: str | None = None
    last_correlation_id: str | None = None
    oversold: bool = False
    supply_swept_at: int = 0
    # Running sums of ``reserved`` and ``allocated``, kept by the fold so that the
    # oversold check is O(1) on hot keys. Derived data: never encoded, rebuilt on decode.
    reserved_total: int = 0
    allocated_total: int = 0

    def recount(self) -> KeyState:
        """Rebuild the running sums from the reference maps."""
        self.reserved_total = sum(r.quantity for r in self.reserved.values())
        self.allocated_total = sum(self.allocated.values())
        return self

    @property
    def in_transit(self) -> int:
        return sum(line.in_transit for line in self.supply.values())

    @property
    def inbound(self) -> int:
        return sum(line.inbound for line in self.supply.values())
