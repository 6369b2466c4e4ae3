"""Promise sourcing across locations and channels: each location is asked with ``promise``."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.replay import Replayer
from state.snapshot_json import SnapshotFormatError, snapshot_from_json
from tests.unit.strategies import LOCATIONS, T0, event_logs, hours
from transforms.channels import ChannelPolicy, channel_available
from transforms.events import Event
from transforms.promise import (
    BACKORDER,
    CONDITIONAL_ON_INBOUND,
    CONDITIONAL_ON_TRANSFER,
    IMMEDIATE,
    promise,
)
from transforms.snapshot import ASN, TRANSFER, Snapshot, SupplyEntry
from transforms.sourcing import CLASS_RANK, empty_snapshot, promise_line
from transforms.timeutil import HOUR_MS

settings.register_profile("ci", max_examples=200, deadline=None)
settings.load_profile("ci")


def snap(location: str, available: int, *supply: SupplyEntry) -> Snapshot:
    return dataclasses.replace(
        empty_snapshot("I1", location), on_hand=available, available=available, supply=supply
    )


def asn(ref: str, quantity: int, hours_out: int, confidence: float = 0.9) -> SupplyEntry:
    return SupplyEntry(ref, ASN, quantity, T0 + hours_out * HOUR_MS, confidence)


def transfer(ref: str, quantity: int, hours_out: int) -> SupplyEntry:
    return SupplyEntry(ref, TRANSFER, quantity, T0 + hours_out * HOUR_MS)


def test_one_candidate_answers_as_promise_does() -> None:
    s = snap("L1", 5, asn("A1", 10, 3))
    for quantity in (1, 5, 6, 15, 16):
        sourced = promise_line("I1", {"L1": s}, ["L1"], quantity, T0)
        expected = promise(s, quantity, T0)
        assert sourced.promise == expected
        assert sourced.location_id == (None if expected.promise_class == BACKORDER else "L1")


def test_earliest_date_wins_then_surer_class_then_callers_order() -> None:
    snapshots = {
        "L1": snap("L1", 0, asn("A1", 10, 5)),
        "L2": snap("L2", 0, transfer("T1", 10, 2)),
        "L3": snap("L3", 0, asn("A3", 10, 2)),
    }
    sourced = promise_line("I1", snapshots, ["L1", "L3", "L2"], 4, T0)
    assert (sourced.location_id, sourced.promise.promise_class) == ("L2", CONDITIONAL_ON_TRANSFER)
    assert sourced.promise.date == T0 + 2 * HOUR_MS
    snapshots["L4"] = snap("L4", 4)
    assert promise_line("I1", snapshots, ["L1", "L4"], 4, T0).location_id == "L4"
    twins = {"L1": snap("L1", 9), "L2": snap("L2", 9)}
    assert promise_line("I1", twins, ["L2", "L1"], 3, T0).location_id == "L2"
    assert promise_line("I1", twins, ["L1", "L2"], 3, T0).location_id == "L1"


def test_a_line_is_never_split_and_missing_locations_count_as_zero() -> None:
    snapshots = {"L1": snap("L1", 6), "L2": snap("L2", 6)}
    sourced = promise_line("I1", snapshots, ["L1", "L2", "L9"], 10, T0)
    assert (sourced.location_id, sourced.promise.promise_class) == (None, BACKORDER)
    assert sourced.promise.available == 6
    assert promise_line("I1", {}, ["L9"], 1, T0).promise.promise_class == BACKORDER
    assert promise_line("I1", snapshots, [], 1, T0).promise.promise_class == BACKORDER


def test_a_channel_caps_what_is_available_now_and_walks_supply_on_top() -> None:
    web = ChannelPolicy("web", ("L1", "L2"), share=Fraction(1, 2), buffer=1)
    snapshots = {
        "L1": snap("L1", 10, asn("A1", 20, 4)),
        "L2": snap("L2", 6),
        "L3": snap("L3", 100),
    }
    cap = channel_available(web, {k: v.available for k, v in snapshots.items()})
    assert cap == 7  # floor(16 / 2) - 1; L3 is not the channel's
    sourced = promise_line("I1", snapshots, ["L1", "L2", "L3"], 7, T0, channel=web)
    assert (sourced.location_id, sourced.promise.promise_class) == ("L1", IMMEDIATE)
    assert sourced.channel_available == 7
    sourced = promise_line("I1", snapshots, ["L3", "L1", "L2"], 8, T0, channel=web)
    assert (sourced.location_id, sourced.promise.promise_class) == ("L1", CONDITIONAL_ON_INBOUND)
    assert sourced.promise.date == T0 + 4 * HOUR_MS
    assert sourced.promise.available == 7


@given(
    event_logs(),
    st.integers(min_value=0, max_value=60),
    hours,
    st.floats(min_value=0, max_value=1),
    st.lists(st.sampled_from(LOCATIONS), unique=True),
    st.booleans(),
)
def test_the_chosen_location_answers_as_promise_and_none_is_better(
    log: list[Event],
    quantity: int,
    at: int,
    threshold: float,
    candidates: list[str],
    through_channel: bool,
) -> None:
    replayer = Replayer()
    for event in log:
        replayer.fold(event)
    snapshots = {s.location_id: s for s in replayer.finish().snapshots if s.item_id == "I1"}
    channel = ChannelPolicy("c", ("L1", "L2"), share=Fraction(3, 4), buffer=1)
    policy = channel if through_channel else None
    sourced = promise_line("I1", snapshots, candidates, quantity, at, threshold, channel=policy)

    def asked(location: str) -> tuple[bool, int, int]:
        s = snapshots.get(location) or empty_snapshot("I1", location)
        if policy is not None:
            assert sourced.channel_available is not None
            s = dataclasses.replace(s, available=min(s.available, sourced.channel_available))
        p = promise(s, quantity, at, threshold)
        return (p.date is None, p.date or 0, CLASS_RANK[p.promise_class])

    allowed = [c for c in candidates if policy is None or c in policy.locations]
    if sourced.location_id is None:
        assert sourced.promise.promise_class == BACKORDER
        assert all(asked(c)[0] for c in allowed)
    else:
        chosen = asked(sourced.location_id)
        assert chosen == (
            sourced.promise.date is None,
            sourced.promise.date or 0,
            CLASS_RANK[sourced.promise.promise_class],
        )
        assert all(chosen <= asked(c) for c in allowed)


@given(event_logs(), st.none() | hours)
def test_snapshots_come_back_from_their_json(log: list[Event], as_of: int | None) -> None:
    replayer = Replayer(as_of=as_of)
    for event in log:
        replayer.fold(event)
    for snapshot in replayer.finish().snapshots:
        assert snapshot_from_json(snapshot.to_json()) == snapshot


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"available": "3"}, "available must be an integer"),
        ({"as_of": "yesterday"}, "as_of is not an ISO-8601 time"),
        ({"supply": [{"kind": ASN}]}, "supply.reference_id and supply.kind must be strings"),
        ({"item_id": None}, "item_id and location_id must be strings"),
    ],
)
def test_a_malformed_stored_snapshot_is_refused(change: dict[str, object], message: str) -> None:
    document = {**snap("L1", 3).to_json(), **change}
    with pytest.raises(SnapshotFormatError, match=message):
        snapshot_from_json(document)
