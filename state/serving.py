"""The serving store: ATP snapshots in Redis, written with compare-and-set on version, then
revision.

Layout (hash tags keep everything of one item in one Redis Cluster slot):

- ``atp:{<item>}:snap:<location>``: hash with ``revision`` and ``snapshot`` (JSON);
- ``atp:{<item>}:locations``: set of the item's locations;
- ``atp:items``: set of all items.

A write that is not newer than the stored snapshot is ignored: newer is a higher
``version`` (events applied, the same in every attempt and engine), or the same version and
a higher ``revision`` (expiries at that version). Replays after a restore and
at-least-once redeliveries can never move a snapshot backwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlsplit

import orjson
import redis

ITEMS_KEY: Final = "atp:items"

# KEYS: snapshot hash, the item's location set. ARGV: revision, snapshot JSON, location.
# The stream job's JVM sink runs the same script (pipelines/jvm/.../RedisSnapshotSink.java).
CAS_SCRIPT: Final = """
local current = redis.call('HGET', KEYS[1], 'revision')
if current then
  -- Newer means a higher version (events applied), then a higher revision (timer-driven
  -- changes at that version): an attempt a restore rolled back may have counted its expiry
  -- instants differently, never its events.
  local old = redis.call('HGET', KEYS[1], 'snapshot')
  local version = tonumber(string.match(ARGV[2], '"version":(%d+)'))
  local old_version = old and tonumber(string.match(old, '"version":(%d+)'))
  if version and old_version and version ~= old_version then
    if version < old_version then return 0 end
  elseif tonumber(current) >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], 'revision', ARGV[1], 'snapshot', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
"""


def snapshot_key(item_id: str, location_id: str) -> str:
    return f"atp:{{{item_id}}}:snap:{location_id}"


def locations_key(item_id: str) -> str:
    return f"atp:{{{item_id}}}:locations"


def redis_client(url: str, **options: Any) -> redis.Redis:
    """A client as the URL says. A URL that names an ACL user without a password
    (``redis://atp-writer@host:6379/0``) takes it from ``ATP_REDIS_PASSWORD``, else from the
    file ``ATP_REDIS_PASSWORD_FILE``: a password stays out of command lines and logs."""
    parts = urlsplit(url)
    if parts.username and parts.password is None and "password" not in options:
        password = os.environ.get("ATP_REDIS_PASSWORD")
        if not password and os.environ.get("ATP_REDIS_PASSWORD_FILE"):
            password = Path(os.environ["ATP_REDIS_PASSWORD_FILE"]).read_text().strip()
        if password:
            options["password"] = password
    return redis.Redis.from_url(url, **options)


class SnapshotStore:
    """Reads and versioned writes of snapshots (JSON dicts in the replay's format)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._sha: str | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SnapshotStore:
        return cls(redis_client(url, **options))

    def write(self, snapshots: Iterable[dict[str, Any]]) -> int:
        """Write snapshots in one round trip; return how many were newer than the store."""
        return self.write_encoded(
            (s["item_id"], s["location_id"], s["revision"], orjson.dumps(s).decode())
            for s in snapshots
        )

    def write_encoded(self, snapshots: Iterable[tuple[str, str, int, str]]) -> int:
        """Like ``write``, for snapshots already in JSON: (item, location, revision, JSON)."""
        batch = list(snapshots)
        try:
            return self._write(batch)
        except redis.exceptions.NoScriptError:  # the server restarted and lost its scripts
            self._sha = None
            return self._write(batch)

    def _write(self, batch: list[tuple[str, str, int, str]]) -> int:
        if self._sha is None:
            self._sha = cast(str, self.client.script_load(CAS_SCRIPT))
        # EVALSHA in a plain pipeline: redis-py's Script objects would add a SCRIPT EXISTS
        # round trip to every pipeline.
        pipe = self.client.pipeline(transaction=False)
        for item, location, revision, document in batch:
            pipe.evalsha(
                self._sha,
                2,
                snapshot_key(item, location),
                locations_key(item),
                str(revision),
                document,
                location,
            )
            pipe.sadd(ITEMS_KEY, item)
        results = pipe.execute()
        return sum(1 for r in results[::2] if r == 1)

    def get(self, item_id: str, location_id: str) -> dict[str, Any] | None:
        raw = cast(bytes | None, self.client.hget(snapshot_key(item_id, location_id), "snapshot"))
        return None if raw is None else _loads(raw)

    def _members(self, key: str) -> list[str]:
        return sorted(_text(m) for m in cast(set[bytes], self.client.smembers(key)))

    def locations(self, item_id: str) -> list[str]:
        return self._members(locations_key(item_id))

    def items(self) -> list[str]:
        return self._members(ITEMS_KEY)

    def item_snapshots(self, item_id: str) -> list[dict[str, Any]]:
        """Every location's snapshot of an item, sorted by location."""
        locations = self.locations(item_id)
        pipe = self.client.pipeline(transaction=False)
        for location in locations:
            pipe.hget(snapshot_key(item_id, location), "snapshot")
        return [_loads(raw) for raw in pipe.execute() if raw is not None]

    def all_snapshots(self) -> Iterator[dict[str, Any]]:
        """Every snapshot, sorted by (item_id, location_id)."""
        for item in self.items():
            yield from self.item_snapshots(item)


def _loads(raw: bytes | str) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    return value


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
