"""Exception records: conditions a planner should act on (not errors in the input)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from transforms.timeutil import format_iso

NEGATIVE_ON_HAND: Final = "NEGATIVE_ON_HAND"
OVERSOLD: Final = "OVERSOLD"
SHIPMENT_WITHOUT_DEMAND: Final = "SHIPMENT_WITHOUT_DEMAND"
RESERVATION_CONFLICT: Final = "RESERVATION_CONFLICT"
SUPPLY_OVERDUE: Final = "SUPPLY_OVERDUE"

KINDS: Final = (
    NEGATIVE_ON_HAND,
    OVERSOLD,
    SHIPMENT_WITHOUT_DEMAND,
    RESERVATION_CONFLICT,
    SUPPLY_OVERDUE,
)


@dataclass(frozen=True, slots=True)
class ExceptionRecord:
    """One exception at a key, with the quantities after the event (or timer) that raised it."""

    kind: str
    item_id: str
    location_id: str
    reason: str
    at: int  # event time: the event's occurred_at, or the clock for timer-driven ones
    event_id: str | None = None
    reference_id: str | None = None
    quantities: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "item_id": self.item_id,
            "location_id": self.location_id,
            "reason": self.reason,
            "at": format_iso(self.at),
            "event_id": self.event_id,
            "reference_id": self.reference_id,
            "quantities": self.quantities,
        }
