"""Answers of the API, from snapshots read in the serving store.

Thin: the quantities come from the stored snapshots, the promise from
``transforms.sourcing`` (which asks ``transforms.promise`` per location) and the
channel's share from ``transforms.channels``. Nothing here decides a quantity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, NamedTuple

import orjson

from api.models import PromiseRequest
from api.store import Read
from state.snapshot_json import snapshot_from_json
from transforms.channels import ChannelPolicy, Policy
from transforms.snapshot import QUANTITY_FIELDS, Snapshot
from transforms.sourcing import promise_line
from transforms.timeutil import format_iso, parse_iso


class LineError(ValueError):
    """A request line that cannot be answered as asked (unknown channel, say): a 422."""

    def __init__(self, loc: str, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


@dataclass(frozen=True, slots=True)
class Line:
    """A request line resolved against the policy: what to read and where to promise from."""

    request: PromiseRequest
    read: Read
    candidates: tuple[str, ...] | None  # None: every location read, in location order
    channel: ChannelPolicy | None
    at: int


def resolve(request: PromiseRequest, policy: Policy, default_at: int, where: str) -> Line:
    at = default_at if request.at is None else parse_iso(request.at)
    locations = None if request.locations is None else tuple(request.locations)
    if locations is not None and len(set(locations)) != len(locations):
        raise LineError(f"{where}.locations", "locations lists a location twice")
    if request.channel is None:
        return Line(request, Read(request.item_id, locations), locations, None, at)
    channel = next((c for c in policy.channels if c.channel == request.channel), None)
    if channel is None:
        known = ", ".join(c.channel for c in policy.channels) or "none"
        raise LineError(
            f"{where}.channel",
            f"unknown channel {request.channel!r} (the policy's channels: {known})",
        )
    if locations is not None:
        for location in locations:
            if location not in channel.locations:
                raise LineError(
                    f"{where}.locations",
                    f"location {location!r} does not serve channel {channel.channel!r}",
                )
    # The channel's ATP sums all of its locations, so all of them are read.
    read = Read(request.item_id, channel.locations)
    return Line(request, read, locations or channel.locations, channel, at)


class Decoded:
    """Stored snapshots decoded once: keyed by their JSON bytes, which never change meaning.

    A key's snapshot JSON is rewritten only with a newer revision, so equal bytes are the
    same snapshot; a hot key is parsed and checked once, not on every request.
    Bounded: past ``capacity`` entries the oldest eighth is dropped.
    """

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = max(8, capacity)
        self._entries: dict[bytes, Stored] = {}

    def __call__(self, raw: bytes) -> Stored:
        hit = self._entries.get(raw)
        if hit is None:
            document = orjson.loads(raw)
            snapshot = snapshot_from_json(document)
            used = {
                "location_id": snapshot.location_id,
                "version": snapshot.version,
                "revision": snapshot.revision,
                "as_of": document.get("as_of"),
            }
            hit = Stored(document, snapshot, used)
            if len(self._entries) >= self.capacity:
                for old in list(islice(self._entries, self.capacity // 8)):
                    del self._entries[old]
            self._entries[raw] = hit
        return hit

    def all(self, found: Mapping[str, bytes]) -> dict[str, Stored]:
        return {location: self(raw) for location, raw in found.items()}


class Stored(NamedTuple):
    """A stored snapshot: its JSON document, decoded, and how an answer cites it."""

    document: dict[str, Any]
    snapshot: Snapshot
    used: dict[str, Any]  # location_id, version, revision, as_of


def promise_answer(line: Line, stored: Mapping[str, Stored]) -> dict[str, Any]:
    request = line.request
    snapshots = {location: s.snapshot for location, s in stored.items()}
    candidates = line.candidates if line.candidates is not None else tuple(sorted(snapshots))
    sourced = promise_line(
        request.item_id,
        snapshots,
        candidates,
        request.quantity,
        line.at,
        request.confidence,
        channel=line.channel,
    )
    answer = sourced.promise
    return {
        "item_id": request.item_id,
        "quantity": request.quantity,
        "class": answer.promise_class,
        "date": None if answer.date is None else format_iso(answer.date),
        "location_id": sourced.location_id,
        "available": answer.available,
        "channel": request.channel,
        "channel_available": sourced.channel_available,
        "at": format_iso(line.at),
        "confidence": request.confidence,
        "supply_used": list(answer.supply_used),
        "snapshots": [stored[location].used for location in sorted(stored)],
    }


def ship_complete_date(answers: Sequence[dict[str, Any]]) -> str | None:
    """The latest line date, or None when any line is a backorder."""
    dates: list[str | None] = [a["date"] for a in answers]
    known = [d for d in dates if d is not None]
    if len(known) < len(dates):
        return None
    return max(known, key=parse_iso)


def age_ms(as_of: str | None, now_ms: int) -> int | None:
    return None if as_of is None else now_ms - parse_iso(as_of)


def snapshot_answer(document: dict[str, Any], now_ms: int) -> dict[str, Any]:
    as_of = document.get("as_of")
    return {"snapshot": document, "as_of": as_of, "age_ms": age_ms(as_of, now_ms)}


def item_answer(
    item_id: str, found: Mapping[str, bytes], decoded: Decoded, now_ms: int
) -> dict[str, Any]:
    # Decoding checks every stored snapshot: a malformed one fails loudly, never counts 0.
    pairs = [decoded(found[location]) for location in sorted(found)]
    snapshots = [s.snapshot for s in pairs]
    network = {f: sum(getattr(s, f) for s in snapshots) for f in QUANTITY_FIELDS}
    times = [s.as_of for s in snapshots if s.as_of is not None]
    oldest = None if not times else format_iso(min(times))
    return {
        "item_id": item_id,
        "locations": [snapshot_answer(s.document, now_ms) for s in pairs],
        "network": network,
        "as_of": oldest,
        "age_ms": age_ms(oldest, now_ms),
    }
