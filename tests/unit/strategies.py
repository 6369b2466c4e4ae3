"""Hypothesis strategies: small worlds where keys and references collide often."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from transforms import events as ev
from transforms.events import Event
from transforms.timeutil import HOUR_MS, parse_iso

T0 = parse_iso("2026-05-11T00:00:00Z")
ITEMS = ("I1", "I2")
LOCATIONS = ("L1", "L2", "L3")
REFS = ("R1", "R2", "R3")
TYPES = sorted(ev.EVENT_TYPES)

hours = st.integers(min_value=0, max_value=120).map(lambda h: T0 + h * HOUR_MS)


@st.composite
def event_fields(draw: st.DrawFn, event_type: str | None = None) -> dict[str, Any]:
    """Fields of one valid event (without its event_id)."""
    kind = event_type or draw(st.sampled_from(TYPES))
    location = draw(st.sampled_from(LOCATIONS))
    low = -10 if kind == ev.ADJUSTMENT else 0
    fields: dict[str, Any] = {
        "event_type": kind,
        "item_id": draw(st.sampled_from(ITEMS)),
        "location_id": location,
        "quantity": draw(st.integers(min_value=low, max_value=20)),
        "occurred_at": draw(hours),
    }
    if kind in ev.REFERENCE_TYPES:
        fields["reference_id"] = draw(st.sampled_from(REFS))
    elif kind == ev.RECEIPT:
        fields["reference_id"] = draw(st.none() | st.sampled_from(REFS))
    if kind == ev.TRANSFER_SHIPPED:
        fields["to_location_id"] = draw(st.sampled_from([x for x in LOCATIONS if x != location]))
    if kind in (ev.ASN, ev.TRANSFER_SHIPPED):
        fields["expected_at"] = draw(hours) if kind == ev.ASN else draw(st.none() | hours)
    if kind == ev.ASN:
        fields["confidence"] = draw(st.none() | st.sampled_from((0.3, 0.8, 1.0)))
    if kind == ev.RESERVATION_CREATED:
        fields["expires_at"] = draw(st.none() | hours)
    return fields


def make_event(index: int, fields: dict[str, Any]) -> Event:
    return Event(event_id=f"e{index}", **fields)


@st.composite
def event_logs(draw: st.DrawFn, max_size: int = 40) -> list[Event]:
    """A log of valid events with unique ids."""
    drawn = draw(st.lists(event_fields(), max_size=max_size))
    return [make_event(i, fields) for i, fields in enumerate(drawn)]
