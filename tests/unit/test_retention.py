"""Bounded per-key memory: what happens at the dedup, tombstone and supply bounds."""

from __future__ import annotations

import io

import fastavro

from state import codec
from state.codec import decode_state, encode_state
from state.model import KeyState, Retention
from transforms import events as ev
from transforms.events import Event
from transforms.fold import apply
from transforms.timeutil import DAY_MS, parse_iso

T0 = parse_iso("2026-05-01T00:00:00Z")


def event(event_id: str, kind: str, at: int, qty: int = 1, ref: str | None = None) -> Event:
    return Event(
        event_id,
        kind,
        "SKU-1",
        "DC1",
        qty,
        at,
        reference_id=ref,
        expected_at=at + DAY_MS if kind == ev.ASN else None,
    )


def fold(state: KeyState, events: list[Event], retention: Retention) -> KeyState:
    for e in events:
        apply(state, e, None, retention)
    return state


def test_dedup_cap_forgets_the_oldest_id_first() -> None:
    retention = Retention(dedup_max_ids=3)
    state = fold(KeyState(), [event(f"e{i}", ev.RECEIPT, T0 + i) for i in range(1, 5)], retention)
    assert len(state.seen) == 3
    fold(state, [event("e4", ev.RECEIPT, T0 + 4)], retention)  # still remembered
    assert (state.version, state.duplicates, state.on_hand) == (4, 1, 4)
    fold(state, [event("e1", ev.RECEIPT, T0 + 1)], retention)  # pushed out: applied again
    assert (state.version, state.duplicates, state.on_hand) == (5, 1, 5)


def test_dedup_horizon_is_event_time_at_the_key() -> None:
    retention = Retention(dedup_horizon_ms=DAY_MS)
    state = fold(
        KeyState(),
        [event("old", ev.RECEIPT, T0), event("new", ev.RECEIPT, T0 + 2 * DAY_MS)],
        retention,
    )
    assert "old" not in state.seen and "new" in state.seen
    redelivered = [event("old", ev.RECEIPT, T0), event("new", ev.RECEIPT, T0 + 2 * DAY_MS)]
    fold(state, redelivered, retention)
    assert (state.version, state.duplicates, state.on_hand) == (3, 1, 3)


def test_a_trim_bound_keeps_ids_the_key_clock_alone_would_forget() -> None:
    """The stream bounds trimming by its watermark: an event from another partition that
    runs days ahead moves the key's clock, not what the key remembers."""
    retention = Retention(dedup_horizon_ms=DAY_MS, tombstone_horizon_ms=DAY_MS)
    state = KeyState()
    apply(state, event("r1", ev.RESERVATION_CREATED, T0, ref="ORD-1"), None, retention, T0)
    apply(state, event("x1", ev.ORDER_CANCELED, T0, ref="ORD-2"), None, retention, T0)
    ahead = T0 + 10 * DAY_MS  # events from a partition read ten days ahead
    apply(state, event("t1", ev.RECEIPT, ahead), None, retention, T0)
    apply(state, event("x2", ev.ORDER_CANCELED, ahead, ref="ORD-3"), None, retention, T0)
    assert "r1" in state.seen and "ORD-2" in state.closed
    apply(state, event("r1", ev.RESERVATION_CREATED, T0, ref="ORD-1"), None, retention, T0)
    assert (state.version, state.duplicates) == (4, 1)
    # Once the watermark has passed the horizon, the memories forget as before.
    apply(state, event("x3", ev.ORDER_CANCELED, ahead, ref="ORD-4"), None, retention, ahead)
    assert "r1" not in state.seen and "ORD-2" not in state.closed


def test_dedup_memory_stays_bounded_on_a_hot_key() -> None:
    retention = Retention(dedup_max_ids=100, tombstone_max=50)
    state = KeyState()
    for i in range(5_000):
        apply(state, event(f"e{i}", ev.ORDER_CANCELED, T0 + i, ref=f"R{i}"), None, retention)
    assert (len(state.seen), len(state.closed)) == (100, 50)
    assert len(encode_state(state)) < 5_000


def test_tombstone_blocks_a_late_create_only_within_its_horizon() -> None:
    retention = Retention(tombstone_horizon_ms=30 * DAY_MS)
    within = fold(
        KeyState(),
        [
            event("c", ev.ORDER_CANCELED, T0, ref="R"),
            event("r", ev.RESERVATION_CREATED, T0 + 29 * DAY_MS, qty=4, ref="R"),
        ],
        retention,
    )
    assert within.reserved == {}
    beyond = fold(
        KeyState(),
        [
            event("c", ev.ORDER_CANCELED, T0, ref="R"),
            event("x", ev.ORDER_CANCELED, T0 + 31 * DAY_MS, ref="OTHER"),  # ages out "R"
            event("r", ev.RESERVATION_CREATED, T0 + 31 * DAY_MS, qty=4, ref="R"),
        ],
        retention,
    )
    assert beyond.reserved_total == 4


def test_fully_received_supply_is_swept_after_its_horizon() -> None:
    retention = Retention(supply_horizon_ms=30 * DAY_MS)
    state = fold(
        KeyState(),
        [
            event("a", ev.ASN, T0, qty=10, ref="A"),
            event("r", ev.RECEIPT, T0, qty=10, ref="A"),
            event("b", ev.ASN, T0 + 10 * DAY_MS, qty=5, ref="B"),  # open: never swept
        ],
        retention,
    )
    assert set(state.supply) == {"A", "B"}
    fold(state, [event("p", ev.RECEIPT, T0 + 31 * DAY_MS, qty=1, ref="PO")], retention)
    assert set(state.supply) == {"B", "PO"}
    assert state.inbound == 5
    # A replacement ASN for the forgotten id starts from zero received.
    fold(state, [event("a2", ev.ASN, T0 + 32 * DAY_MS, qty=10, ref="A")], retention)
    assert state.inbound == 15


def test_encoding_rejects_unknown_format_versions() -> None:
    data = encode_state(KeyState(on_hand=3))
    assert decode_state(data).on_hand == 3
    for bad in (b"", bytes([99]) + data[1:]):
        try:
            decode_state(bad)
        except ValueError as err:
            assert "format version" in str(err)
        else:
            raise AssertionError("accepted an unknown format")


def test_format_1_state_still_reads() -> None:
    """State saved by the release before the id memories were packed restores as it was."""
    state = KeyState(on_hand=3)
    state.seen.add("e1", T0)
    state.seen.add("e2", T0 + 1)
    state.closed.add("R1", T0)
    old = {
        **codec._to_record(state),
        "seen": [{"id": i, "at": at} for i, at in state.seen.entries()],
        "closed": [{"id": i, "at": at} for i, at in state.closed.entries()],
    }
    out = io.BytesIO(b"\x01")
    out.seek(1)
    fastavro.schemaless_writer(out, codec._format_1_schema(), old)
    restored = decode_state(out.getvalue())
    assert (restored.seen, restored.closed, restored.on_hand) == (state.seen, state.closed, 3)
    assert decode_state(encode_state(restored)) == restored
