"""Sourcing a promise: which location answers a request, under an optional channel policy.

The contract's promise rules (``transforms.promise``) answer for one key. A request may
name several locations, or none (every location of the item), and may sell through a
channel. The choices made here, where the contract is silent (see docs/api.md):

- each candidate location is asked with ``promise``; the earliest date wins, then the
  surer class (IMMEDIATE, then CONDITIONAL_ON_TRANSFER, then CONDITIONAL_ON_INBOUND),
  then the caller's order of locations. A line is never split across locations;
- a location without a snapshot counts as zero, as in channel ATP;
- through a channel, only the channel's locations are candidates, and what is available
  now is capped by the channel's ATP (``channel_available`` over all its locations):
  a location promises at most ``min(available, channel ATP)`` immediately, and open
  supply is walked on top of that as usual.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from transforms.channels import ChannelPolicy, channel_available
from transforms.fold import DEFAULT_GRACE_MS
from transforms.promise import (
    BACKORDER,
    CONDITIONAL_ON_INBOUND,
    CONDITIONAL_ON_TRANSFER,
    DEFAULT_CONFIDENCE,
    IMMEDIATE,
    Promise,
    promise,
)
from transforms.snapshot import Snapshot

CLASS_RANK: Final = {
    IMMEDIATE: 0,
    CONDITIONAL_ON_TRANSFER: 1,
    CONDITIONAL_ON_INBOUND: 2,
    BACKORDER: 3,
}


@dataclass(frozen=True, slots=True)
class Sourced:
    """The answer for one request line."""

    location_id: str | None  # None for a backorder
    promise: Promise
    channel_available: int | None  # the channel's ATP, when sold through a channel


def empty_snapshot(item_id: str, location_id: str) -> Snapshot:
    """A key with no snapshot: every quantity zero, no supply."""
    return Snapshot(
        item_id=item_id,
        location_id=location_id,
        on_hand=0,
        quarantined=0,
        allocated=0,
        reserved=0,
        safety_stock=0,
        in_transit=0,
        inbound=0,
        available=0,
        version=0,
        revision=0,
        duplicates=0,
        as_of=None,
        last_event_id=None,
        correlation_id=None,
    )


def _rank(answer: Promise, position: int) -> tuple[bool, int, int, int]:
    return (answer.date is None, answer.date or 0, CLASS_RANK[answer.promise_class], position)


def promise_line(
    item_id: str,
    snapshots: Mapping[str, Snapshot],
    candidates: Sequence[str],
    quantity: int,
    at: int,
    threshold: float = DEFAULT_CONFIDENCE,
    grace_ms: int = DEFAULT_GRACE_MS,
    channel: ChannelPolicy | None = None,
) -> Sourced:
    """Promise ``quantity`` of an item from the best of ``candidates`` (location ids).

    ``snapshots`` maps location ids to the item's snapshots; through a channel it must
    hold every location of the channel that has one, since the channel's ATP sums them.
    """
    cap: int | None = None
    if channel is not None:
        cap = channel_available(channel, {loc: s.available for loc, s in snapshots.items()})
        candidates = [loc for loc in candidates if loc in channel.locations]
    best: tuple[tuple[bool, int, int, int], str, Promise] | None = None
    most_available = 0
    for position, location in enumerate(candidates):
        snapshot = snapshots.get(location) or empty_snapshot(item_id, location)
        if cap is not None and snapshot.available > cap:
            snapshot = dataclasses.replace(snapshot, available=cap)
        answer = promise(snapshot, quantity, at, threshold, grace_ms)
        most_available = max(most_available, answer.available)
        rank = _rank(answer, position)
        if best is None or rank < best[0]:
            best = (rank, location, answer)
    if best is None or best[2].promise_class == BACKORDER:
        return Sourced(None, Promise(BACKORDER, None, quantity, most_available), cap)
    return Sourced(best[1], best[2], cap)
