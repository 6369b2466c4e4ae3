"""Property-based tests of the contract's invariants, on the fold and the replay."""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipelines.replay import Replayer
from state.codec import decode_state, encode_state
from state.model import KeyState
from tests.unit.strategies import T0, event_fields, event_logs, hours, make_event
from transforms import events as ev
from transforms.channels import ChannelPolicy, channel_available
from transforms.events import Event, Key, keys_touched
from transforms.fold import apply, expire
from transforms.promise import BACKORDER, IMMEDIATE, promise
from transforms.snapshot import Snapshot, available_of, snapshot_of
from transforms.timeutil import HOUR_MS
from transforms.validation import parse_event

settings.register_profile("ci", max_examples=200, deadline=None)
settings.load_profile("ci")


def replay(log: list[Event], as_of: int | None = None) -> dict[Key, Snapshot]:
    replayer = Replayer(as_of=as_of)
    for event in log:
        replayer.fold(event)
    return {(s.item_id, s.location_id): s for s in replayer.finish().snapshots}


def without(snapshots: dict[Key, Snapshot], *fields: str) -> dict[Key, dict[str, Any]]:
    return {
        key: {k: v for k, v in snap.to_json().items() if k not in fields}
        for key, snap in snapshots.items()
    }


@given(event_logs(), st.data())
def test_redelivered_events_never_change_state(log: list[Event], data: st.DataObject) -> None:
    assume(log)
    redelivered = list(log)
    for _ in range(data.draw(st.integers(1, 10))):
        original = data.draw(st.sampled_from(log))
        earliest = redelivered.index(original) + 1
        position = data.draw(st.integers(earliest, len(redelivered)))
        redelivered.insert(position, original)
    assert without(replay(redelivered), "duplicates") == without(replay(log), "duplicates")


@given(event_logs(), st.data())
def test_version_counts_valid_unique_events(log: list[Event], data: st.DataObject) -> None:
    as_of = data.draw(st.none() | hours)
    doubled = log + log[: data.draw(st.integers(0, len(log)))]
    counted: dict[Key, set[str]] = {}
    for event in doubled:
        if as_of is None or event.occurred_at <= as_of:
            for key in keys_touched(event):
                counted.setdefault(key, set()).add(event.event_id)
    snapshots = replay(doubled, as_of)
    assert {k: s.version for k, s in snapshots.items()} == {k: len(v) for k, v in counted.items()}
    total_duplicates = sum(s.duplicates for s in snapshots.values())
    applied = sum(len(v) for v in counted.values())
    routed = sum(len(keys_touched(e)) for e in doubled if as_of is None or e.occurred_at <= as_of)
    assert total_duplicates == routed - applied


@given(event_logs(), st.data())
def test_available_is_never_negative_and_follows_the_formula(
    log: list[Event], data: st.DataObject
) -> None:
    snapshots = replay(log, data.draw(st.none() | hours))
    for snap in snapshots.values():
        assert snap.available >= 0
        assert snap.available == available_of(
            snap.on_hand, snap.quarantined, snap.allocated, snap.reserved, snap.safety_stock
        )
        assert min(snap.quarantined, snap.allocated, snap.reserved) >= 0
        assert min(snap.in_transit, snap.inbound) >= 0


def _swap_pair(
    data: st.DataObject, first_type: str, second_type: str, log: list[Event]
) -> tuple[list[Event], list[Event]]:
    """The log with ``first`` then ``second`` for one reference at one key, and swapped."""
    first = data.draw(event_fields(first_type))
    second = data.draw(event_fields(second_type))
    second["item_id"] = first["item_id"]
    second["reference_id"] = first["reference_id"]
    # Both at the key where the pair interacts (a shipment's destination for transfers).
    second["location_id"] = first.get("to_location_id", first["location_id"])
    position = data.draw(st.integers(0, len(log)))
    a, b = make_event(1000, first), make_event(1001, second)
    return (
        [*log[:position], a, b, *log[position:]],
        [*log[:position], b, a, *log[position:]],
    )


@given(event_logs(), st.data())
def test_receipt_before_its_asn_equals_the_other_order(
    log: list[Event], data: st.DataObject
) -> None:
    in_order, swapped = _swap_pair(data, ev.ASN, ev.RECEIPT, log)
    assert without(replay(in_order), "last_event_id") == without(replay(swapped), "last_event_id")


@given(event_logs(), st.data())
def test_receipt_before_its_transfer_shipment_equals_the_other_order(
    log: list[Event], data: st.DataObject
) -> None:
    in_order, swapped = _swap_pair(data, ev.TRANSFER_SHIPPED, ev.TRANSFER_RECEIVED, log)
    assert without(replay(in_order), "last_event_id") == without(replay(swapped), "last_event_id")


@given(event_logs(), st.data(), st.sampled_from([ev.ORDER_CANCELED, ev.RESERVATION_RELEASED]))
def test_cancel_before_its_create_equals_create_then_cancel(
    log: list[Event], data: st.DataObject, closing: str
) -> None:
    in_order, swapped = _swap_pair(data, ev.RESERVATION_CREATED, closing, log)
    assert without(replay(in_order), "last_event_id", "correlation_id") == without(
        replay(swapped), "last_event_id", "correlation_id"
    )


@given(event_logs(), hours)
def test_each_key_depends_only_on_its_own_events(log: list[Event], as_of: int) -> None:
    everything = replay(log, as_of)
    for key, snap in everything.items():
        own = [e for e in log if key in keys_touched(e)]
        assert replay(own, as_of)[key] == snap


@given(event_logs())
def test_state_survives_encoding_between_every_event(log: list[Event]) -> None:
    plain: dict[Key, KeyState] = {}
    encoded: dict[Key, bytes] = {}
    for event in log:
        for key in keys_touched(event):
            _, plain_outcome = apply(plain.setdefault(key, KeyState()), event, key[1])
            state = decode_state(encoded[key]) if key in encoded else KeyState()
            _, outcome = apply(state, event, key[1])
            encoded[key] = encode_state(state)
            assert outcome == plain_outcome
    for key, state in plain.items():
        restored = decode_state(encoded[key])
        assert restored == state
        assert restored.reserved_total == sum(r.quantity for r in state.reserved.values())
        assert restored.allocated_total == sum(state.allocated.values())


@given(event_logs(), hours, hours)
def test_expiry_is_monotone_and_idempotent(log: list[Event], t1: int, t2: int) -> None:
    early, late = sorted((t1, t2))
    for event in log:
        for key in keys_touched(event):
            state_a, state_b = KeyState(), KeyState()
            for e in (x for x in log if key in keys_touched(x)):
                apply(state_a, e, key[1])
                apply(state_b, e, key[1])
            expire(state_a, early)
            expire(state_a, late)
            expire(state_a, late)
            expire(state_b, late)
            snap_a = snapshot_of(state_a, *key, late)
            snap_b = snapshot_of(state_b, *key, late)
            assert snap_a.reserved == snap_b.reserved == state_b.reserved_total
            assert snap_a.version == snap_b.version
        break  # one key per example keeps this fast


@given(
    st.dictionaries(st.sampled_from(["L1", "L2", "L3", "L4"]), st.integers(0, 10_000)),
    st.integers(0, 100),
    st.integers(0, 50),
)
def test_channel_available_is_bounded_and_exact(
    available: dict[str, int], percent: int, buffer: int
) -> None:
    from fractions import Fraction

    policy = ChannelPolicy("c", ("L1", "L2", "L3"), Fraction(percent, 100), buffer)
    value = channel_available(policy, available)
    total = sum(available.get(loc, 0) for loc in policy.locations)
    assert 0 <= value <= total
    assert value == max(0, (percent * total) // 100 - buffer)
    more = {**available, "L1": available.get("L1", 0) + 1}
    assert channel_available(policy, more) >= value


@given(event_logs(), st.integers(0, 200), hours)
def test_promise_is_consistent_with_available(log: list[Event], quantity: int, at: int) -> None:
    for snap in replay(log).values():
        answer = promise(snap, quantity, at)
        assert (answer.promise_class == IMMEDIATE) == (quantity <= snap.available)
        if answer.promise_class == BACKORDER:
            assert answer.date is None
        else:
            assert answer.date is not None and answer.date >= at
            if quantity > 0:
                smaller = promise(snap, quantity - 1, at)
                assert smaller.date is not None and smaller.date <= answer.date


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "event_id",
                "event_type",
                "item_id",
                "location_id",
                "quantity",
                "occurred_at",
                "reference_id",
                "to_location_id",
                "expected_at",
                "expires_at",
                "confidence",
                "channel",
            ]
        ),
        json_values | st.sampled_from(sorted(ev.EVENT_TYPES)),
    )
)
def test_validation_never_raises_on_arbitrary_records(record: dict[str, Any]) -> None:
    result = parse_event(record)
    assert isinstance(result, Event | list)
    if isinstance(result, list):
        assert result, "an invalid record lists at least one reason"


def test_strategies_reach_every_event_type() -> None:
    seen: set[str] = set()

    @given(event_logs(max_size=60))
    @settings(max_examples=50, derandomize=True)  # the same 50 logs every run
    def collect(log: list[Event]) -> None:
        seen.update(e.event_type for e in log)

    collect()
    assert seen == ev.EVENT_TYPES
    assert T0 + HOUR_MS > T0
