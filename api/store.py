"""Async reads of the serving store (layout: ``state.serving``), one round trip per request.

Runs as the read-only ACL user. An item's every location is read by one read-only
script (``EVAL_RO``), so all of its snapshots come from the same instant: a network
total never mixes a location before a write with another after it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import redis.asyncio as aioredis

from state.serving import locations_key, snapshot_key

# KEYS: the item's location set. ARGV: the item's snapshot key prefix.
# Returns location, snapshot JSON, location, snapshot JSON, ...
_ITEM_SCRIPT: Final = """#!lua flags=no-writes
local out = {}
for _, location in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local snapshot = redis.call('HGET', ARGV[1] .. location, 'snapshot')
  if snapshot then
    out[#out + 1] = location
    out[#out + 1] = snapshot
  end
end
return out
"""


@dataclass(frozen=True, slots=True)
class Read:
    """Snapshots of one item: at the given locations, or (None) at every location."""

    item_id: str
    locations: tuple[str, ...] | None = None


def _prefix(item_id: str) -> str:
    return snapshot_key(item_id, "")


class ReadStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    @classmethod
    def connect(
        cls,
        url: str,
        username: str | None,
        password: str | None,
        max_connections: int,
        timeout_s: float,
    ) -> ReadStore:
        options: dict[str, Any] = {
            "max_connections": max_connections,
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
        }
        if username is not None:
            options.update(username=username, password=password)
        return cls(aioredis.Redis.from_url(url, **options))

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def read(self, reads: Sequence[Read]) -> list[dict[str, bytes]]:
        """For each read, location -> snapshot JSON (missing snapshots are left out)."""
        if len(reads) == 1 and reads[0].locations is not None and len(reads[0].locations) == 1:
            # One key: a plain HGET costs less than a one-command pipeline.
            item, location = reads[0].item_id, reads[0].locations[0]
            reply = self.client.hget(snapshot_key(item, location), "snapshot")
            raw = await cast(Awaitable[bytes | None], reply)
            return [{} if raw is None else {location: raw}]
        pipe = self.client.pipeline(transaction=False)
        for read in reads:
            if read.locations is None:
                pipe.eval_ro(_ITEM_SCRIPT, 1, locations_key(read.item_id), _prefix(read.item_id))
            else:
                for location in read.locations:
                    pipe.hget(snapshot_key(read.item_id, location), "snapshot")
        replies = iter(await pipe.execute())
        out: list[dict[str, bytes]] = []
        for read in reads:
            if read.locations is None:
                flat = next(replies)
                found = {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}
            else:
                found = {}
                for location in read.locations:
                    raw = next(replies)
                    if raw is not None:
                        found[location] = raw
            out.append(found)
        return out

    async def close(self) -> None:
        await self.client.aclose()
