"""Answers of the API, from snapshots read in the serving store.

Thin: the quantities come from the stored snapshots, the promise from
``transforms.sourcing`` (which asks ``transforms.promise`` per location) and the
channel's share from ``transforms.channels``. Nothing here decides a quantity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


def decode(found: Mapping[str, bytes]) -> dict[str, Snapshot]:
    return {location: snapshot_from_json(orjson.loads(raw)) for location, raw in found.items()}


def promise_answer(line: Line, snapshots: Mapping[str, Snapshot]) -> dict[str, Any]:
    request = line.request
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
        "snapshots": [
            {
                "location_id": location,
                "version": snapshot.version,
                "revision": snapshot.revision,
                "as_of": None if snapshot.as_of is None else format_iso(snapshot.as_of),
            }
            for location, snapshot in sorted(snapshots.items())
        ],
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


def item_answer(item_id: str, found: Mapping[str, bytes], now_ms: int) -> dict[str, Any]:
    documents = [orjson.loads(found[location]) for location in sorted(found)]
    for document in documents:
        snapshot_from_json(document)  # a malformed stored snapshot fails loudly, not as 0
    network = {f: sum(int(d[f]) for d in documents) for f in QUANTITY_FIELDS}
    times = [d["as_of"] for d in documents if d.get("as_of") is not None]
    oldest = min(times, key=parse_iso) if times else None
    return {
        "item_id": item_id,
        "locations": [snapshot_answer(d, now_ms) for d in documents],
        "network": network,
        "as_of": oldest,
        "age_ms": age_ms(oldest, now_ms),
    }
