"""The serving store on a real redis-server: compare-and-set writes and the indexes."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from state.serving import SnapshotStore, snapshot_key

pytestmark = pytest.mark.integration


def snap(
    item: str, location: str, revision: int, available: int, version: int | None = None
) -> dict[str, Any]:
    return {
        "item_id": item,
        "location_id": location,
        "available": available,
        "version": revision if version is None else version,
        "revision": revision,
    }


def test_newer_revisions_win_and_older_ones_are_ignored(redis_client: redis.Redis) -> None:
    store = SnapshotStore(redis_client)
    assert store.write([snap("SKU-1", "DC1", 5, 50)]) == 1
    assert store.write([snap("SKU-1", "DC1", 4, 40), snap("SKU-1", "DC1", 5, 41)]) == 0
    assert store.get("SKU-1", "DC1") == snap("SKU-1", "DC1", 5, 50)
    assert store.write([snap("SKU-1", "DC1", 6, 60)]) == 1
    assert store.get("SKU-1", "DC1") == snap("SKU-1", "DC1", 6, 60)


def test_a_replayed_batch_never_moves_a_snapshot_backwards(redis_client: redis.Redis) -> None:
    store = SnapshotStore(redis_client)
    history = [snap("SKU-1", "DC1", r, r * 10) for r in range(1, 11)]
    store.write(history)
    store.write(history[:7])  # a restore replays from an older checkpoint
    stored = store.get("SKU-1", "DC1")
    assert stored is not None and stored["revision"] == 10


def test_more_events_win_whatever_the_revision(redis_client: redis.Redis) -> None:
    """A restored attempt may count its expiry instants differently from the one it rolled
    back: at the same version the revision orders writes; a higher version always wins."""
    store = SnapshotStore(redis_client)
    assert store.write([snap("SKU-1", "DC1", 12, 50, version=8)]) == 1  # the rolled-back one
    assert store.write([snap("SKU-1", "DC1", 11, 51, version=8)]) == 0  # replayed, same events
    assert store.write([snap("SKU-1", "DC1", 12, 52, version=9)]) == 1  # one event further
    assert store.get("SKU-1", "DC1") == snap("SKU-1", "DC1", 12, 52, version=9)
    assert store.write([snap("SKU-1", "DC1", 13, 53, version=9)]) == 1  # an expiry after it
    assert store.write([snap("SKU-1", "DC1", 40, 54, version=8)]) == 0  # fewer events: stale
    assert store.get("SKU-1", "DC1") == snap("SKU-1", "DC1", 13, 53, version=9)


def test_indexes_list_all_locations_of_an_item_and_all_keys(redis_client: redis.Redis) -> None:
    store = SnapshotStore(redis_client)
    store.write(
        [snap("SKU-2", "ST001", 1, 3), snap("SKU-1", "DC2", 1, 2), snap("SKU-1", "DC1", 2, 7)]
    )
    assert store.items() == ["SKU-1", "SKU-2"]
    assert store.locations("SKU-1") == ["DC1", "DC2"]
    assert [(s["item_id"], s["location_id"]) for s in store.all_snapshots()] == [
        ("SKU-1", "DC1"),
        ("SKU-1", "DC2"),
        ("SKU-2", "ST001"),
    ]
    assert store.get("SKU-9", "DC1") is None


def test_keys_of_one_item_share_a_cluster_slot() -> None:
    from redis.crc import key_slot

    slots = {key_slot(snapshot_key("SKU-1", loc).encode()) for loc in ("DC1", "DC2", "ST001")}
    assert len(slots) == 1
